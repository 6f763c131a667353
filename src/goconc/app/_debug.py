"""The debug server: Go's pprof port for a goconc process.

Its own port, separate from the application's, serving::

    /                      this list
    /healthz               200 while the process serves (liveness)
    /readyz                200 while the App is running, 503 before and while stopping
    /debug/goroutines      runtime.dump(), a Go-style goroutine dump (?format=json)
    /debug/vars            JSON: goroutines, runtime.statistics() (mutex contention,
                           pools, tracker counters...), GC, threads, uptime, app info
    /metrics               Prometheus exposition (prometheus-client): the default
                           registry plus goconc_* gauges from runtime.statistics()
    /debug/profile         a sampling profile of all threads: ?seconds=N (default 10)
                           &hz=100 &format=collapsed|speedscope|svg (501 on a
                           free-threaded build, where it could crash the process)

Safety by default: it exposes stacks, variables and profiles, so it binds to
a loopback address only; any other address raises ``ValueError`` unless
``allow_remote=True`` is given explicitly, and then ``token=`` requires
``Authorization: Bearer <token>`` on every request.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import hmac
import ipaddress
import json
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from .. import context, runtime
from .. import sync as _sync  # noqa: F401 - registers the "sync" statistics (mutexes, pools)
from ..chan import Chan
from ..context import Context
from ._ctx import from_context
from ._http import HTTPServer, Receive, Scope, Send, split_address
from ._profile import MAX_SECONDS, UNAVAILABLE, sample

__all__ = ["DebugServer", "debug_app"]

_IMPORTED_AT = time.time()

_INDEX = """goconc debug server

/healthz              liveness
/readyz               readiness of the App
/debug/goroutines     goroutine dump (?format=json)
/debug/vars           runtime variables as JSON
/metrics              Prometheus metrics
/debug/profile        sampling profile: ?seconds=10&hz=100&format=collapsed|speedscope|svg
"""


class DebugServer:
    """A server for the debug endpoints (see the module notes), for an App's ``servers``.

    ``address`` must be loopback unless ``allow_remote=True``; ``token``
    then protects every endpoint with a bearer token.  Raises
    ``ValueError``/``TypeError`` naming the argument otherwise.  It is not
    registered with the App's registrar (``endpoint()`` is None); ``url``
    says where it listens once ``ready``.

    ::

        App(name="svc", servers=[HTTPServer(asgi, ":8080"), DebugServer("127.0.0.1:8001")])
    """

    def __init__(
        self,
        address: str = "127.0.0.1:0",
        *,
        allow_remote: bool = False,
        token: str | None = None,
        name: str | None = None,
    ) -> None:
        host, _ = split_address(address)
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"address: the debug server exposes stacks, variables and profiles, so it "
                f"binds to loopback only; got {address!r} (pass allow_remote=True, "
                "with token=..., to expose it)"
            )
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty str or None")
        self.name = name or f"debug {address}"
        self.asgi = debug_app(token=token)
        self._http = HTTPServer(self.asgi, address, name=self.name, lifespan="off")
        self.ready: Chan[None] = self._http.ready

    def __repr__(self) -> str:
        return f"<DebugServer {self.name!r}>"

    @property
    def url(self) -> str | None:
        """``http://host:port`` once listening, else None."""
        return self._http.url

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound (host, port) once listening, else None."""
        return self._http.address

    def endpoint(self) -> str | None:
        """None: a debug port is not a service endpoint to register."""
        return None

    async def start(self, ctx: Context) -> None:
        """Serve until stopped (see :class:`~goconc.app.HTTPServer`)."""
        await self._http.start(ctx)

    async def stop(self, ctx: Context) -> None:
        """Stop gracefully within ``ctx``'s deadline."""
        await self._http.stop(ctx)


ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def debug_app(*, token: str | None = None) -> ASGI:
    """The debug endpoints as an ASGI application, to mount in another server.

    A request's App is found from ``scope["goconc.ctx"]`` when the server is
    a goconc HTTPServer; elsewhere /readyz reports ready and /debug/vars has
    no app section.
    """
    expected = None if token is None else f"Bearer {token}".encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if expected is not None:
            got = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(got, expected):
                await _send(send, 401, b"unauthorized\n", extra=[(b"www-authenticate", b"Bearer")])
                return
        if scope["method"] not in ("GET", "HEAD"):
            await _send(send, 405, b"method not allowed\n", extra=[(b"allow", b"GET, HEAD")])
            return
        route = _ROUTES.get(scope["path"].rstrip("/") or "/")
        if route is None:
            await _send(send, 404, b"not found; see /\n")
            return
        ctx = scope.get("goconc.ctx")
        req = _Request(
            {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()},
            dict(scope["headers"]),
            ctx if isinstance(ctx, Context) else None,
        )
        status, ctype, body = await route(req)
        await _send(send, status, body, ctype, head=scope["method"] == "HEAD")

    return app


@dataclasses.dataclass(frozen=True)
class _Request:
    query: dict[str, str]
    headers: dict[bytes, bytes]
    ctx: Context | None  # the request's context (carries the App), if the server gave one


Route = Callable[[_Request], Awaitable[tuple[int, str, bytes]]]
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


async def _index(req: _Request) -> tuple[int, str, bytes]:
    return 200, _TEXT, _INDEX.encode()


async def _healthz(req: _Request) -> tuple[int, str, bytes]:
    return 200, _TEXT, b"ok\n"


async def _readyz(req: _Request) -> tuple[int, str, bytes]:
    app = from_context(req.ctx) if req.ctx is not None else None
    if app is None or app.state == "running":
        return 200, _TEXT, b"ready\n"
    return 503, _TEXT, f"not ready: app {app.name!r} is {app.state}\n".encode()


async def _goroutines(req: _Request) -> tuple[int, str, bytes]:
    if req.query.get("format") == "json":
        infos = [dataclasses.asdict(g) for g in runtime.goroutines()]
        return 200, _JSON, _dumps(infos)
    return 200, _TEXT, runtime.dump().encode()


async def _vars(req: _Request) -> tuple[int, str, bytes]:
    return 200, _JSON, _dumps(variables(req.ctx))


async def _metrics(req: _Request) -> tuple[int, str, bytes]:
    encoder, ctype = choose_encoder(req.headers.get(b"accept", b"").decode("latin-1"))
    return 200, ctype, encoder(_METRICS)


async def _profile(req: _Request) -> tuple[int, str, bytes]:
    try:
        seconds = float(req.query.get("seconds", "10"))
        hz = float(req.query.get("hz", "100"))
        fmt = req.query.get("format", "collapsed")
        if not 0 < seconds <= MAX_SECONDS or not math.isfinite(seconds):
            raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}]")
        if not 1 <= hz <= 1000:
            raise ValueError("hz must be in [1, 1000]")
        if fmt not in ("collapsed", "speedscope", "svg"):
            raise ValueError("format must be collapsed, speedscope or svg")
    except ValueError as e:
        return 400, _TEXT, f"bad request: {e}\n".encode()
    if UNAVAILABLE is not None:
        return 501, _TEXT, f"{UNAVAILABLE}\n".encode()
    interval = min(1.0 / hz, seconds)
    # Sample on a thread of its own; the request's context (cancelled when the request
    # ends or is cancelled) stops it early.
    g = runtime.go_named("debug profile", _sample_quietly, seconds, interval, req.ctx)
    prof = await g.ajoin()
    if prof is None:
        return 503, _TEXT, b"profile interrupted\n"
    if fmt == "speedscope":
        return 200, _JSON, _dumps(prof.speedscope())
    if fmt == "svg":
        return 200, "image/svg+xml", prof.svg().encode()
    return 200, _TEXT, prof.collapsed().encode()


def _sample_quietly(seconds: float, interval: float, ctx: Context | None) -> Any:
    try:
        return sample(seconds, interval, ctx=ctx)
    except (context.Canceled, context.DeadlineExceeded):
        return None


_ROUTES: dict[str, Route] = {
    "/": _index,
    "/healthz": _healthz,
    "/readyz": _readyz,
    "/debug/goroutines": _goroutines,
    "/debug/vars": _vars,
    "/metrics": _metrics,
    "/debug/profile": _profile,
}


async def _send(
    send: Send,
    status: int,
    body: bytes,
    ctype: str = _TEXT,
    *,
    extra: list[tuple[bytes, bytes]] | None = None,
    head: bool = False,
) -> None:
    headers = [
        (b"content-type", ctype.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


# -- /debug/vars -----------------------------------------------------------------------


def variables(ctx: Context | None = None) -> dict[str, Any]:
    """What /debug/vars serves, as a JSON-ready dict."""
    stats = runtime.statistics()
    rt = stats.get("runtime")
    out: dict[str, Any] = {
        "goroutines": _jsonable(rt),
        "statistics": _jsonable(stats),
        "gc": {
            "enabled": gc.isenabled(),
            "counts": gc.get_count(),
            "thresholds": gc.get_threshold(),
            "generations": gc.get_stats(),
            "frozen": gc.get_freeze_count(),
        },
        "threads": threading.active_count(),
        "process": {
            "pid": os.getpid(),
            "python": sys.version,
            "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
            "uptime_seconds": round(_process_uptime(), 3),
            "cpu_seconds": round(time.process_time(), 3),
            "max_rss_kib": _max_rss_kib(),
            "hostname": socket.gethostname(),
        },
        "app": None,
    }
    app = from_context(ctx) if ctx is not None else None
    if app is not None:
        servers = {}
        for s in app.servers:
            stat = getattr(s, "statistics", None)
            name = getattr(s, "name", type(s).__name__)
            servers[str(name)] = _jsonable(stat()) if callable(stat) else None
        out["app"] = {
            "id": app.id,
            "name": app.name,
            "version": app.version,
            "metadata": dict(app.metadata),
            "endpoints": list(app.endpoints),
            "state": app.state,
            "servers": servers,
        }
    return out


def _process_uptime() -> float:
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as f:
            system_up = float(f.read().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        return system_up - int(fields[19]) / ticks
    except (OSError, ValueError, IndexError):
        return time.time() - _IMPORTED_AT  # no /proc: since goconc.app was imported


def _max_rss_kib() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, BaseException):
        return {"error": f"{type(value).__name__}: {value}"}
    return repr(value)


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, indent=2, default=repr) + "\n").encode()


# -- /metrics --------------------------------------------------------------------------


class _GoconcCollector:
    """goconc_* gauges, read from runtime.statistics() at each scrape.

    A dataclass's fields extend the metric's name; a mapping's keys become
    label values (``key``, ``key2``...), so names stay fixed while the
    things counted (per-kind goroutines, named pools) vary.
    """

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        arity: dict[str, int] = {}
        for source, value in runtime.statistics().items():
            for parts, labels, number in _flatten(value, ("goconc", source), ()):
                name = "_".join(_metric_part(p) for p in parts)
                if name not in families:
                    label_names = ["key" if i == 0 else f"key{i + 1}" for i in range(len(labels))]
                    families[name] = GaugeMetricFamily(
                        name,
                        f"goconc statistics {source}: {'.'.join(parts[2:])}",
                        labels=label_names,
                    )
                    arity[name] = len(labels)
                if arity[name] == len(labels):
                    families[name].add_metric(list(labels), number)
        yield from families.values()


class _Everything:
    """The default prometheus registry (the program's own metrics) plus goconc's."""

    def __init__(self) -> None:
        self._goconc = _GoconcCollector()

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self._goconc.collect()


_METRICS = _Everything()


def _flatten(
    value: Any, parts: tuple[str, ...], labels: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], float]]:
    if isinstance(value, bool | int | float):
        if not isinstance(value, float) or math.isfinite(value):
            yield parts, labels, float(value)
    elif isinstance(value, enum.Enum):
        return
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _flatten(getattr(value, f.name), (*parts, f.name), labels)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(v, parts, (*labels, str(k)))


def _metric_part(text: str) -> str:
    out = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text)
    return out.strip("_") or "x"


# -- safety ----------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addrs = {str(info[4][0]) for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)
