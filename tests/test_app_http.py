"""goconc.app.HTTPServer: an ASGI app on uvicorn in-process, ready/endpoint, graceful stop."""

from __future__ import annotations

import asyncio
import errno
import http.client
import socket
import threading
import time
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import context
from goconc.app import App, AppError, HTTPServer, from_context
from goconc.app._http import split_address

pytestmark = pytest.mark.goconc_leaks


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers ``/?d=SECONDS`` after that delay; lifespan messages complete at once."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = dict(p.split("=") for p in scope["query_string"].decode().split("&") if "=" in p)
    await asyncio.sleep(float(query.get("d", "0")))
    app = from_context(scope["goconc.ctx"])
    body = f"ok {app.name if app else '-'}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def gated(gate: asyncio.Event) -> Any:
    """``slow_app``, except that ``/?gate`` requests stay in flight until ``gate`` is set.

    A test holds requests in flight with it for as long as it needs (however
    slowly their client threads got to connect), instead of betting on a delay.
    """

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["query_string"] == b"gate":
            await gate.wait()
        await slow_app(scope, receive, send)

    return app


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def background_get(port: int, path: str, results: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(get(port, path))
        except OSError as e:
            results.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t


class Running:
    """An HTTPServer started on this loop, stopped (and awaited) on exit."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HTTPServer:
        self.task = asyncio.create_task(self.server.start(context.background()))
        await self.server.ready.arecv_ok(timeout=WAIT)
        return self.server

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        with context.with_timeout(context.background(), WAIT) as ctx:
            await self.server.stop(ctx)
        await asyncio.wait_for(self.task, WAIT)


def port_of(server: HTTPServer) -> int:
    address = server.address
    assert address is not None
    return address[1]


async def wait_until(predicate: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_serves_an_asgi_app_and_is_ready_with_its_real_port_and_endpoint() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app, "127.0.0.1:0")
        assert server.endpoint() is None and server.address is None
        async with Running(server):
            port = port_of(server)
            assert port != 0
            assert server.endpoint() == f"http://127.0.0.1:{port}"
            assert await asyncio.to_thread(get, port) == (200, b"ok -")
            assert server.statistics().requests == 1

    run_async(main())


def test_graceful_stop_lets_requests_in_flight_finish() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        server = HTTPServer(gated(gate))
        task = asyncio.create_task(server.start(context.background()))
        await server.ready.arecv_ok(timeout=WAIT)
        port = port_of(server)
        results: list[Any] = []
        threads = [background_get(port, "/?gate", results) for _ in range(20)]
        await wait_until(lambda: server.statistics().active == 20)
        with context.with_timeout(context.background(), WAIT) as ctx:
            stopping = asyncio.create_task(server.stop(ctx))
            await wait_until(lambda: server.statistics().state == "stopping")
            gate.set()  # the 20 requests in flight at the stop now finish
            await asyncio.wait_for(stopping, WAIT)
        await asyncio.wait_for(task, WAIT)
        for t in threads:
            t.join(WAIT)
        assert results == [(200, b"ok -")] * 20
        stats = server.statistics()
        assert (stats.drained, stats.cancelled, stats.active, stats.state) == (20, 0, 0, "stopped")

    run_async(main())


def test_stop_refuses_new_connections_while_draining() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        server = HTTPServer(gated(gate))
        task = asyncio.create_task(server.start(context.background()))
        await server.ready.arecv_ok(timeout=WAIT)
        port = port_of(server)
        results: list[Any] = []
        t = background_get(port, "/?gate", results)
        await wait_until(lambda: server.statistics().active == 1)
        with context.with_timeout(context.background(), WAIT) as ctx:
            stopping = asyncio.create_task(server.stop(ctx))
            await wait_until(lambda: server.statistics().state == "stopping")
            with pytest.raises(ConnectionRefusedError):
                await asyncio.to_thread(get, port)
            gate.set()  # the request in flight finishes, and the stop with it
            await asyncio.wait_for(stopping, WAIT)
        await asyncio.wait_for(task, WAIT)
        t.join(WAIT)
        assert results == [(200, b"ok -")]

    run_async(main())


def test_requests_still_running_at_the_deadline_are_cancelled_with_503() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        server = HTTPServer(gated(gate))
        task = asyncio.create_task(server.start(context.background()))
        await server.ready.arecv_ok(timeout=WAIT)
        port = port_of(server)
        results: list[Any] = []
        quick = [background_get(port, "/?gate", results) for _ in range(3)]
        stuck = [background_get(port, f"/?d={WAIT * 3}", results) for _ in range(3)]
        await wait_until(lambda: server.statistics().active == 6)
        t0 = time.monotonic()
        with context.with_timeout(context.background(), 2.0) as ctx:
            stopping = asyncio.create_task(server.stop(ctx))
            await wait_until(lambda: server.statistics().state == "stopping")
            gate.set()  # the quick ones finish within the deadline; the stuck ones cannot
            await asyncio.wait_for(stopping, WAIT)
        # Ended by the deadline, not by the stuck handlers (which would take WAIT * 3).
        assert time.monotonic() - t0 < WAIT
        await asyncio.wait_for(task, WAIT)
        for t in quick + stuck:
            t.join(WAIT)
        statuses = sorted(r[0] for r in results)
        assert statuses == [200, 200, 200, 503, 503, 503]
        stats = server.statistics()
        assert (stats.drained, stats.cancelled) == (3, 3)

    run_async(main())


def test_a_cancelled_stop_context_forces_the_stop_at_once() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app)
        task = asyncio.create_task(server.start(context.background()))
        await server.ready.arecv_ok(timeout=WAIT)
        results: list[Any] = []
        t = background_get(port_of(server), f"/?d={WAIT * 3}", results)
        await wait_until(lambda: server.statistics().active == 1)
        ctx, cancel = context.with_cancel(context.background())
        stopping = asyncio.create_task(server.stop(ctx))
        await asyncio.sleep(0.05)
        cancel()
        with pytest.raises(context.Canceled):
            await asyncio.wait_for(stopping, WAIT)
        await asyncio.wait_for(task, WAIT)
        t.join(WAIT)
        assert [r[0] for r in results] == [503]

    run_async(main())


def test_idle_keep_alive_connections_do_not_hold_up_the_stop() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app)
        task = asyncio.create_task(server.start(context.background()))
        await server.ready.arecv_ok(timeout=WAIT)
        conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=WAIT)
        await asyncio.to_thread(conn.request, "GET", "/")
        resp = await asyncio.to_thread(conn.getresponse)
        assert resp.status == 200 and resp.read() == b"ok -"
        assert server.statistics().connections == 1  # kept alive, idle
        t0 = time.monotonic()
        with context.with_timeout(context.background(), WAIT) as ctx:
            await server.stop(ctx)
        await asyncio.wait_for(task, WAIT)
        assert time.monotonic() - t0 < WAIT / 2
        conn.close()

    run_async(main())


def test_stop_may_come_from_another_thread_and_event_loop() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app)
        task = asyncio.create_task(server.start(context.background()))
        await server.ready.arecv_ok(timeout=WAIT)

        def stop_elsewhere() -> None:
            with context.with_timeout(context.background(), WAIT) as ctx:
                asyncio.run(server.stop(ctx))

        await asyncio.to_thread(stop_elsewhere)
        await asyncio.wait_for(task, WAIT)
        assert server.statistics().state == "stopped"

    run_async(main())


def test_a_bind_error_is_raised_by_start_as_the_oserror_it_is() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HTTPServer(slow_app, f"127.0.0.1:{port}")
        with pytest.raises(OSError) as ei:
            run_async(server.start(context.background()))
        assert ei.value.errno == errno.EADDRINUSE
        assert f"127.0.0.1:{port}" in str(ei.value)
        # stop after a failed start returns at once
        run_async(server.stop(context.background()))


def test_a_server_that_fails_to_bind_stops_the_other_and_run_reports_the_bind_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        good = HTTPServer(slow_app, "127.0.0.1:0", name="good")
        bad = HTTPServer(slow_app, f"127.0.0.1:{port}", name="bad")
        app = App(name="svc", servers=[good, bad], signals=(), stop_timeout=WAIT)
        with pytest.raises(AppError) as ei:
            run_async(app.arun())
        (err,) = ei.value.exceptions
        assert isinstance(err, OSError) and err.errno == errno.EADDRINUSE
        assert "server bad" in "".join(err.__notes__)
        assert good.statistics().state == "stopped"
        good_address = good.address
        if good_address is not None:  # it may have been stopped before it listened
            with pytest.raises(ConnectionRefusedError):
                get(good_address[1])


def test_stop_before_start_makes_start_return_without_listening() -> None:
    server = HTTPServer(slow_app)
    run_async(server.stop(context.background()))
    run_async(server.start(context.background()))
    assert server.address is None


def test_start_twice_raises() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app)
        async with Running(server):
            with pytest.raises(RuntimeError, match="twice"):
                await server.start(context.background())

    run_async(main())


def test_the_lifespan_protocol_runs_at_start_and_stop() -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def main() -> None:
        async with Running(HTTPServer(app, lifespan="on")):
            assert events == ["lifespan.startup"]
        assert events == ["lifespan.startup", "lifespan.shutdown"]

    run_async(main())


def test_a_failing_lifespan_startup_is_an_error_of_start() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    server = HTTPServer(app, lifespan="on")
    with pytest.raises(RuntimeError, match="startup failed"):
        run_async(server.start(context.background()))


def test_in_an_app_requests_reach_the_app_through_their_context() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app)
        app = App(name="svc", servers=[server], signals=(), stop_timeout=WAIT)
        run = asyncio.create_task(app.arun())
        await app.ready.arecv_ok(timeout=WAIT)
        assert app.endpoints == (server.endpoint(),)
        assert await asyncio.to_thread(get, port_of(server)) == (200, b"ok svc")
        app.stop()
        await asyncio.wait_for(run, WAIT)

    run_async(main())


def test_an_unspecified_host_is_advertised_as_a_reachable_address() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app, "0.0.0.0:0")
        async with Running(server):
            endpoint = server.endpoint()
            assert endpoint is not None and "0.0.0.0" not in endpoint
            assert server.url == f"http://0.0.0.0:{port_of(server)}"

    run_async(main())


def test_the_endpoint_can_be_given_explicitly() -> None:
    async def main() -> None:
        server = HTTPServer(slow_app, endpoint="https://api.example.com")
        async with Running(server):
            assert server.endpoint() == "https://api.example.com"

    run_async(main())


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        (":8080", ("0.0.0.0", 8080)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_addresses_are_host_colon_port(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["8080", "host:", "host:http", "h:70000", "::1:80"])
def test_a_malformed_address_raises_naming_it(address: str) -> None:
    with pytest.raises(ValueError, match="address"):
        HTTPServer(slow_app, address)


def test_bad_arguments_raise() -> None:
    with pytest.raises(TypeError, match="ASGI"):
        HTTPServer("not an app")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lifespan"):
        HTTPServer(slow_app, lifespan="sometimes")
