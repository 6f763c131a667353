"""goconc.app.DebugServer and the profiler: endpoints, loopback-only by default, tokens."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY, Counter
from prometheus_client.parser import text_string_to_metric_families

from conftest import WAIT, run_async
from goconc import Chan, context, runtime
from goconc.app import App, DebugServer, HTTPServer, new_context
from goconc.app._debug import debug_app
from goconc.app._profile import UNAVAILABLE, Profile, sample
from goconc.tracker import CallableSink, Tracker

pytestmark = pytest.mark.goconc_leaks


async def call(
    asgi: Any,
    path: str,
    *,
    query: str = "",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    ctx: context.Context | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Call an ASGI app in-process and collect its response."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": headers or [],
    }
    if ctx is not None:
        scope["goconc.ctx"] = ctx
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = dict(message["headers"])
        else:
            out["body"] += message.get("body", b"")

    await asgi(scope, receive, send)
    return out["status"], out["headers"], out["body"]


def get(asgi: Any, path: str, **kw: Any) -> tuple[int, dict[bytes, bytes], bytes]:
    return run_async(call(asgi, path, **kw))


# -- safety ----------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["0.0.0.0:8001", ":8001", "10.1.2.3:8001", "[::]:8001"])
def test_a_non_loopback_address_is_refused_by_default(address: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DebugServer(address)


@pytest.mark.parametrize("address", ["127.0.0.1:0", "127.0.0.2:0", "[::1]:0", "localhost:0"])
def test_loopback_addresses_are_accepted(address: str) -> None:
    assert DebugServer(address).endpoint() is None


def test_a_non_loopback_address_is_accepted_when_explicitly_allowed() -> None:
    DebugServer("0.0.0.0:0", allow_remote=True, token="s3cret")


def test_a_token_is_required_as_a_bearer_header_on_every_endpoint() -> None:
    asgi = debug_app(token="s3cret")
    for path in ["/healthz", "/debug/vars", "/metrics", "/debug/goroutines"]:
        assert get(asgi, path)[0] == 401
        assert get(asgi, path, headers=[(b"authorization", b"Bearer wrong")])[0] == 401
        status, _, _ = get(asgi, path, headers=[(b"authorization", b"Bearer s3cret")])
        assert status == 200
    status, headers, _ = get(asgi, "/healthz")
    assert headers[b"www-authenticate"] == b"Bearer"


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        DebugServer(token="")


# -- endpoints -----------------------------------------------------------------------------


def test_healthz_and_an_index_and_unknown_paths() -> None:
    asgi = debug_app()
    assert get(asgi, "/healthz")[::2] == (200, b"ok\n")
    status, _, body = get(asgi, "/")
    assert status == 200 and b"/debug/profile" in body
    assert get(asgi, "/nope")[0] == 404
    assert get(asgi, "/healthz", method="POST")[0] == 405
    status, _, body = get(asgi, "/healthz", method="HEAD")
    assert (status, body) == (200, b"")


def test_readyz_follows_the_app_state() -> None:
    asgi = debug_app()
    app = App(name="svc", signals=())
    ctx = new_context(context.background(), app)
    status, _, body = get(asgi, "/readyz", ctx=ctx)
    assert status == 503 and b"new" in body
    assert get(asgi, "/readyz")[0] == 200  # outside an App: ready while it serves


def test_goroutines_is_the_runtime_dump_as_text_or_json() -> None:
    release: Chan[None] = Chan()
    g = runtime.go_named("parked-for-the-dump", release.recv_ok, timeout=WAIT)
    try:
        deadline = time.monotonic() + WAIT
        while not any(
            i.name == "parked-for-the-dump" and i.state == "blocked" for i in runtime.goroutines()
        ):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        asgi = debug_app()
        status, headers, body = get(asgi, "/debug/goroutines")
        assert status == 200 and headers[b"content-type"].startswith(b"text/plain")
        assert b"parked-for-the-dump" in body and b"[chan receive]" in body
        status, _, body = get(asgi, "/debug/goroutines", query="format=json")
        infos = json.loads(body)
        mine = [i for i in infos if i["name"] == "parked-for-the-dump"]
        assert mine and mine[0]["state"] == "blocked"
    finally:
        release.close()
        g.join(timeout=WAIT)


def test_vars_reports_goroutines_statistics_gc_uptime_and_the_app() -> None:
    delivered: list[Any] = []
    app = App(name="svc", version="9", metadata={"k": "v"}, signals=())
    ctx = new_context(context.background(), app)
    with Tracker(CallableSink(delivered.extend), name="vars-test") as tracker:
        tracker.event(ctx, {"n": 1}, timeout=WAIT)
        # The worker counts an event a moment after taking it from the channel.
        deadline = time.monotonic() + WAIT
        while tracker.statistics().accepted != 1:
            assert time.monotonic() < deadline, tracker.statistics()
            time.sleep(0.005)
        status, headers, body = get(debug_app(), "/debug/vars", ctx=ctx)
    assert status == 200 and headers[b"content-type"] == b"application/json"
    data = json.loads(body)
    assert data["goroutines"]["goroutines"] >= 0
    assert set(data["goroutines"]["by_kind"]) == {"thread", "task"}
    assert "runtime" in data["statistics"]
    assert data["statistics"]["tracker:vars-test"]["accepted"] == 1
    assert len(data["gc"]["counts"]) == 3 and data["gc"]["generations"]
    assert data["process"]["uptime_seconds"] > 0
    assert data["app"]["name"] == "svc" and data["app"]["version"] == "9"
    assert data["app"]["metadata"] == {"k": "v"} and data["app"]["state"] == "new"


def test_metrics_are_a_prometheus_exposition_with_goconc_gauges_and_the_default_registry() -> None:
    counter = Counter("goconc_debug_test_requests", "a metric of the program itself")
    counter.inc(3)
    try:
        status, headers, body = get(debug_app(), "/metrics")
    finally:
        REGISTRY.unregister(counter)
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["goconc_debug_test_requests"].samples[0].value == 3
    by_kind = families["goconc_runtime_by_kind"]
    assert {s.labels["key"] for s in by_kind.samples} == {"thread", "task"}
    assert "goconc_runtime_goroutines" in families
    assert "python_gc_objects_collected" in families  # prometheus-client's own collectors


def test_metrics_negotiates_openmetrics() -> None:
    accept = [(b"accept", b"application/openmetrics-text; version=1.0.0")]
    status, headers, body = get(debug_app(), "/metrics", headers=accept)
    assert status == 200 and headers[b"content-type"].startswith(b"application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


# -- the profile ------------------------------------------------------------------------


# Sampling reads other threads' running frames, which can crash a free-threaded
# interpreter: there the profile refuses (tested below), elsewhere it samples.
samples = pytest.mark.skipif(UNAVAILABLE is not None, reason="no sampling profile here")


@pytest.mark.skipif(UNAVAILABLE is None, reason="the sampling profile is available here")
def test_the_profile_refuses_on_a_free_threaded_build() -> None:
    with pytest.raises(RuntimeError, match="free-threaded"):
        sample(0.1, 0.01)
    status, _, body = get(debug_app(), "/debug/profile", query="seconds=0.1")
    assert status == 501 and b"free-threaded" in body


def spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(100))


@samples
def test_sample_sees_every_thread_with_its_name_and_stack() -> None:
    stop = threading.Event()
    t = threading.Thread(target=spin, args=(stop,), name="spinner")
    t.start()
    try:
        prof = sample(0.3, 0.01)
    finally:
        stop.set()
        t.join(WAIT)
    assert prof.samples >= 3
    spinning = [s for s in prof.stacks if s[0] == "spinner"]
    assert spinning and any("spin (" in frame for s in spinning for frame in s)
    assert all(s[0] != threading.current_thread().name for s in prof.stacks)  # not itself
    lines = prof.collapsed().splitlines()
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in lines)
    assert any(line.startswith("spinner;") for line in lines)


def test_profile_renders_as_speedscope_json_and_a_flame_graph_svg() -> None:
    prof = Profile({("main", "a (x.py:1)", "b (x.py:5)"): 3, ("main", "a (x.py:1)"): 1}, 0.01, 0.04)
    doc = prof.speedscope()
    assert doc["$schema"].endswith("file-format-schema.json")
    frames = doc["shared"]["frames"]
    assert {"name": "b", "file": "x.py", "line": 5} in frames
    (p,) = doc["profiles"]
    assert p["type"] == "sampled" and p["name"] == "main"
    assert sum(p["weights"]) == pytest.approx(40.0)
    assert all(all(0 <= i < len(frames) for i in s) for s in p["samples"])
    svg = prof.svg()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "b (x.py:5): 3 samples (75.00%)" in svg


@samples
def test_sample_stops_early_when_its_context_ends() -> None:
    ctx, cancel = context.with_cancel(context.background())
    threading.Timer(0.1, cancel).start()
    t0 = time.monotonic()
    with pytest.raises(context.Canceled):
        sample(WAIT, 0.01, ctx=ctx)
    assert time.monotonic() - t0 < WAIT / 2


@pytest.mark.parametrize(("seconds", "interval"), [(0, 0.01), (-1, 0.01), (1e9, 1), (1, 0), (1, 2)])
def test_sample_rejects_bad_durations(seconds: float, interval: float) -> None:
    with pytest.raises(ValueError):
        sample(seconds, interval)


@samples
@pytest.mark.parametrize("fmt", ["collapsed", "speedscope", "svg"])
def test_the_profile_endpoint_serves_each_format(fmt: str) -> None:
    status, headers, body = get(debug_app(), "/debug/profile", query=f"seconds=0.1&format={fmt}")
    assert status == 200
    if fmt == "speedscope":
        assert json.loads(body)["profiles"]
    elif fmt == "svg":
        assert headers[b"content-type"] == b"image/svg+xml" and body.startswith(b"<svg")
    else:
        assert b"MainThread;" in body


@pytest.mark.parametrize(
    "query", ["seconds=0", "seconds=abc", "seconds=100000", "hz=0", "format=pprof"]
)
def test_the_profile_endpoint_rejects_bad_parameters(query: str) -> None:
    status, _, body = get(debug_app(), "/debug/profile", query=query)
    assert status == 400 and body.startswith(b"bad request")


@samples
def test_a_profile_is_cut_short_when_its_request_context_ends() -> None:
    ctx, cancel = context.with_cancel(context.background())

    async def main() -> tuple[int, dict[bytes, bytes], bytes]:
        asyncio.get_running_loop().call_later(0.1, cancel)
        return await call(debug_app(), "/debug/profile", query=f"seconds={WAIT}", ctx=ctx)

    t0 = time.monotonic()
    status, _, _ = run_async(main())
    assert status == 503 and time.monotonic() - t0 < WAIT / 2


# -- in an App, over HTTP ------------------------------------------------------------------


def http_get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address[0], address[1], timeout=WAIT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_in_an_app_it_serves_over_http_and_is_not_registered() -> None:
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        debug = DebugServer("127.0.0.1:0")
        web = HTTPServer(asgi, "127.0.0.1:0", lifespan="off")
        app = App(name="svc", servers=[web, debug], signals=(), stop_timeout=WAIT)
        run = asyncio.create_task(app.arun())
        await app.ready.arecv_ok(timeout=WAIT)
        address = debug.address
        assert address is not None and debug.url == f"http://127.0.0.1:{address[1]}"
        assert app.endpoints == (web.endpoint(),)  # the debug port is not an endpoint
        assert await asyncio.to_thread(http_get, address, "/readyz") == (200, b"ready\n")
        status, body = await asyncio.to_thread(http_get, address, "/debug/vars")
        data = json.loads(body)
        assert status == 200 and data["app"]["state"] == "running"
        assert data["app"]["servers"][web.name]["requests"] == 0
        app.stop()
        await asyncio.wait_for(run, WAIT)

    run_async(main())


def test_any_statistics_source_becomes_gauges_fields_in_the_name_keys_as_labels() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class PoolStats:
        hits: int
        misses: int
        per_size: dict[str, float]

    runtime.register_statistics("test.pool", lambda: PoolStats(5, 2, {"small": 1.5, "big": 0.0}))
    try:
        _, _, body = get(debug_app(), "/metrics")
        _, _, vars_body = get(debug_app(), "/debug/vars")
    finally:
        runtime.unregister_statistics("test.pool")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["goconc_test_pool_hits"].samples[0].value == 5
    assert families["goconc_test_pool_misses"].samples[0].value == 2
    sizes = {s.labels["key"]: s.value for s in families["goconc_test_pool_per_size"].samples}
    assert sizes == {"small": 1.5, "big": 0.0}
    stats = json.loads(vars_body)["statistics"]["test.pool"]
    assert stats == {"hits": 5, "misses": 2, "per_size": {"small": 1.5, "big": 0.0}}


def test_vars_and_metrics_show_mutex_contention_and_pool_figures() -> None:
    from goconc import sync

    mu = sync.Mutex()
    mu.lock()
    waiter = runtime.go_named("contender", mu.lock, timeout=WAIT)
    deadline = time.monotonic() + WAIT
    while mu.statistics().waiting == 0:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    mu.unlock()
    waiter.join(timeout=WAIT)
    mu.unlock()
    pool = sync.Pool(new=dict)
    pool.put(pool.get())
    data = json.loads(get(debug_app(), "/debug/vars")[2])
    assert data["statistics"]["sync"]["mutex_contended"] >= 1
    assert data["statistics"]["sync"]["pool_gets"] >= 1
    families = {
        f.name: f for f in text_string_to_metric_families(get(debug_app(), "/metrics")[2].decode())
    }
    assert families["goconc_sync_mutex_contended"].samples[0].value >= 1
