"""The demo's service: its ASGI application, its backends, its hot-reloaded config.

Endpoints (all GET, JSON answers)::

    /                       where to look
    /hello?name=N&delay=S   a greeting from the live config, after S seconds (<= 60)
    /fanout                 calls backends a, b, c at once (an errgroup under the
                            request deadline); &slow=b makes b miss the deadline,
                            &fail=c makes c fail: the others are cancelled, and the
                            answer says what happened to each
    /config                 the config as the service sees it now

Every request is reported to the event tracker once it has been answered.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from .. import context, errgroup
from .. import time as gtime
from ..atomic import CopyOnWrite
from ..chan import Chan
from ..context import Context
from ..tracker import Tracker, TrackerClosed
from ._ctx import from_context
from ._http import Receive, Scope, Send

__all__ = ["Config", "ConfigWatcher", "DemoService", "load_config"]

log = logging.getLogger("goconc.demo")

_MAX_DELAY: Final = 60.0


@dataclass(frozen=True)
class Config:
    """The demo's configuration; frozen, so a loaded value is never changed in place."""

    greeting: str = "hello"
    deadline: float = 0.5  # seconds a /fanout request may take
    backends: Mapping[str, float] = field(
        default_factory=lambda: {"a": 0.05, "b": 0.08, "c": 0.03}  # latency, seconds
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "greeting": self.greeting,
            "deadline": self.deadline,
            "backends": dict(self.backends),
        }


def load_config(path: Path) -> Config:
    """Read and check a config file; raises ``ValueError`` saying what is wrong."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"config {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config {path}: a JSON object is expected")
    default = Config()
    greeting = raw.get("greeting", default.greeting)
    deadline = raw.get("deadline", default.deadline)
    backends = raw.get("backends", default.backends)
    if not isinstance(greeting, str):
        raise ValueError(f"config {path}: greeting must be a string")
    if not _positive(deadline):
        raise ValueError(f"config {path}: deadline must be a positive number of seconds")
    if not isinstance(backends, dict) or not backends:
        raise ValueError(f"config {path}: backends must map names to latencies in seconds")
    if not all(isinstance(k, str) and _positive(v) for k, v in backends.items()):
        raise ValueError(f"config {path}: backends must map names to latencies in seconds")
    return Config(greeting, float(deadline), {k: float(v) for k, v in backends.items()})


def _positive(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


class ConfigWatcher:
    """An App server (plain, thread-run) that reloads the config file when it changes.

    A change is noticed within ``interval`` seconds; a file that does not
    parse is reported and ignored (the service keeps the last good config).
    """

    name = "config"

    def __init__(self, path: Path, value: CopyOnWrite[Config], interval: float = 0.25) -> None:
        self.path = path
        self.value = value
        self.interval = interval
        self._stop: Chan[None] = Chan()
        self.reloads = 0  # only the watcher's goroutine writes it

    def start(self, ctx: Context) -> None:
        seen = _stamp(self.path)
        while True:
            try:
                self._stop.recv_ok(timeout=self.interval)
                return
            except TimeoutError:
                pass
            stamp = _stamp(self.path)
            if stamp == seen:
                continue
            seen = stamp
            try:
                config = load_config(self.path)
            except ValueError as e:
                log.warning("%s; keeping the previous config", e)
                continue
            self.value.store(config)
            self.reloads += 1
            print(f"config reloaded: {json.dumps(config.to_json())}", flush=True)

    def stop(self, ctx: Context) -> None:
        self._stop.close()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class BackendError(Exception):
    """A simulated backend failed."""


class DemoService:
    """The demo's ASGI application (see the module notes)."""

    def __init__(self, config: CopyOnWrite[Config], tracker: Tracker) -> None:
        self.config = config
        self.tracker = tracker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        t0 = time.monotonic()
        ctx: Context = scope.get("goconc.ctx") or context.background()
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
        path = scope["path"]
        try:
            status, body = await self._route(ctx, scope["method"], path, query)
        except (ValueError, TypeError) as e:
            status, body = 400, {"error": str(e)}
        await _send_json(send, status, body)
        await self._report(ctx, path, status, time.monotonic() - t0)

    async def _route(
        self, ctx: Context, method: str, path: str, query: dict[str, str]
    ) -> tuple[int, Any]:
        if method != "GET":
            return 405, {"error": "only GET"}
        if path == "/":
            return 200, self._index(ctx)
        if path == "/hello":
            return await self._hello(ctx, query)
        if path == "/fanout":
            return await self._fanout(ctx, query)
        if path == "/config":
            return 200, self.config.load().to_json()
        return 404, {"error": f"no such path {path}; see /"}

    def _index(self, ctx: Context) -> dict[str, Any]:
        app = from_context(ctx)
        return {
            "service": app.name if app else "demo",
            "instance": app.id if app else None,
            "try": ["/hello?name=gopher", "/fanout", "/fanout?slow=b", "/fanout?fail=c", "/config"],
        }

    async def _hello(self, ctx: Context, query: dict[str, str]) -> tuple[int, Any]:
        delay = float(query.get("delay", "0"))
        if not 0 <= delay <= _MAX_DELAY:
            raise ValueError(f"delay must be in [0, {_MAX_DELAY:g}] seconds")
        if delay:
            await gtime.asleep(delay, ctx=ctx)
        name = query.get("name", "world")
        app = from_context(ctx)
        greeting = self.config.load().greeting
        return 200, {"message": f"{greeting}, {name}!", "instance": app.id if app else None}

    async def _fanout(self, ctx: Context, query: dict[str, str]) -> tuple[int, Any]:
        config = self.config.load()
        deadline = float(query.get("deadline", config.deadline))
        if not _positive(deadline):
            raise ValueError("deadline must be a positive number of seconds")
        slow = set(filter(None, query.get("slow", "").split(",")))
        fail = set(filter(None, query.get("fail", "").split(",")))
        outcomes: dict[str, dict[str, Any]] = {}
        t0 = time.monotonic()
        with context.with_timeout(ctx, deadline) as rctx:
            g, gctx = errgroup.with_context(rctx)
            for name, latency in sorted(config.backends.items()):
                if name in slow:
                    latency += deadline * 4  # surely past the deadline
                g.go(_call_backend, gctx, name, latency, name in fail, outcomes)
            err = await g.wait_async()
        body = {
            "deadline_ms": round(deadline * 1000),
            "elapsed_ms": _ms(t0),
            "backends": {k: outcomes[k] for k in sorted(outcomes)},
        }
        if err is None:
            return 200, body
        body["error"] = f"{type(err).__name__}: {err}"
        return (504 if isinstance(err, context.DeadlineExceeded) else 502), body

    async def _report(self, ctx: Context, path: str, status: int, seconds: float) -> None:
        event = {"path": path, "status": status, "ms": round(seconds * 1000, 3)}
        try:
            await self.tracker.aevent(ctx, event, timeout=5.0)
        except (TrackerClosed, TimeoutError, context.Canceled) as e:
            log.error("request event not reported (%r): %s", e, event)


async def _call_backend(
    ctx: Context, name: str, latency: float, fail: bool, outcomes: dict[str, dict[str, Any]]
) -> None:
    """A simulated backend call: ``latency`` seconds of waiting that ``ctx`` cuts short."""
    t0 = time.monotonic()
    try:
        if fail:
            await gtime.asleep(latency / 2, ctx=ctx)
            raise BackendError(f"backend {name} failed")
        await gtime.asleep(latency, ctx=ctx)
        outcomes[name] = {"status": "ok", "ms": _ms(t0)}
    except context.DeadlineExceeded:
        outcomes[name] = {"status": "deadline exceeded", "ms": _ms(t0)}
        raise
    except context.Canceled:
        outcomes[name] = {"status": "cancelled (another backend failed)", "ms": _ms(t0)}
        raise
    except BackendError as e:
        outcomes[name] = {"status": f"failed: {e}", "ms": _ms(t0)}
        raise


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


async def _send_json(send: Send, status: int, body: Any) -> None:
    data = (json.dumps(body, indent=2) + "\n").encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
