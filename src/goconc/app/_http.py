"""An App server hosting any ASGI application on uvicorn, in-process.

:class:`HTTPServer` runs uvicorn's HTTP protocol inside the current event loop
(no subprocess, no signal handling of its own: the :class:`~goconc.app.App`
owns signals).  It binds its socket itself, so a bind error is raised by
``start`` as the ``OSError`` it is, and it knows its real address (port 0
resolved) before it reports ready.

Graceful stop, as Go's ``http.Server.Shutdown``: ``stop(ctx)`` closes the
listening socket at once (new connections are refused), closes idle
keep-alive connections, and lets requests in flight finish; those still
running shortly before ``ctx``'s deadline (or as soon as ``ctx`` is
cancelled) are cancelled and their connections closed, so that the server
has stopped by the deadline.

Every request's ASGI scope carries ``scope["goconc.ctx"]``: a Context child
of the one given to ``start`` (so ``goconc.app.from_context`` finds the App
there), cancelled when the request's handling ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

import uvicorn

from .. import context
from ..chan import Chan

__all__ = ["ASGIApp", "HTTPServer", "HTTPServerStatistics", "split_address"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("goconc.app")

# Server states, guarded by HTTPServer._mu.
_NEW: Final = "new"
_STARTING: Final = "starting"
_SERVING: Final = "serving"
_STOPPING: Final = "stopping"
_STOPPED: Final = "stopped"

_POLL_MAX = 0.05  # the longest pause between two looks at the connections while draining
_RESERVE_MAX = 0.25  # time kept before the deadline to cancel what did not finish


@dataclass(frozen=True)
class HTTPServerStatistics:
    """A snapshot of an :class:`HTTPServer`.

    ``requests``: requests received since start; ``active``: being handled
    now; ``connections``: open connections; ``drained``: requests in flight
    when the stop began that then completed; ``cancelled``: requests
    cancelled because the stop deadline came (or the stop was forced).
    """

    state: str
    requests: int
    active: int
    connections: int
    drained: int
    cancelled: int


class HTTPServer:
    """Serve an ASGI application on ``address`` ("host:port") until stopped.

    ``start(ctx)`` binds, serves, and returns once a stop has completed; it
    raises the ``OSError`` of a failed bind and ``RuntimeError`` if the
    application's lifespan startup fails.  ``stop(ctx)`` stops gracefully
    within ``ctx``'s deadline (see the module notes) and may be called from
    any task, before ``start``, after ``start`` failed, and more than once.
    ``ready`` is a channel closed once the server listens; ``endpoint()``
    then gives the URL clients should use (``endpoint=`` overrides it).
    ``options`` are passed to ``uvicorn.Config`` (e.g. ``ssl_keyfile``,
    ``limit_concurrency``, ``timeout_keep_alive``, ``access_log``).

    A server serves once: it cannot be started again after it stopped.

    In an App::

        App(name="svc", servers=[HTTPServer(asgi_app, "0.0.0.0:8080")]).run()

    Alone, in asyncio::

        srv = HTTPServer(asgi_app, "127.0.0.1:0")
        task = asyncio.create_task(srv.start(context.background()))
        await srv.ready.arecv_ok()
        ...
        with context.with_timeout(context.background(), 10) as ctx:
            await srv.stop(ctx)
        await task
    """

    def __init__(
        self,
        app: ASGIApp,
        address: str = "127.0.0.1:0",
        *,
        name: str | None = None,
        endpoint: str | None = None,
        lifespan: str = "auto",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application, got {app!r}")
        self._host, self._port = split_address(address)
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', got {lifespan!r}")
        self._app = app
        self.name = name or f"http {address}"
        self._endpoint_override = endpoint
        self._config = uvicorn.Config(
            self._handle,
            host=self._host,
            port=self._port,
            lifespan=lifespan,  # type: ignore[arg-type]
            log_config=None,  # never reconfigure the process's logging
            interface="asgi3",  # the wrapper around the application is ASGI 3
            **dict(options or {}),
        )
        self.ready: Chan[None] = Chan()  # closed once listening
        self._finished: Chan[None] = Chan()  # closed once start has returned (or never will run)
        self._stop_req: Chan[None] = Chan()  # closed by the first stop()
        self._mu = threading.Lock()
        # guarded by _mu: the state moves forward only (new, starting, serving, stopping,
        # stopped); _started and _stop_requested turn True once and close _finished /
        # _stop_req respectively (each closed exactly once, under _mu); _stop_ctxs are
        # the contexts of every stop() call so far (the drain ends at the earliest
        # deadline or as soon as any of them is done); the counters only grow, except
        # _active (requests being handled now).
        self._state: str = _NEW
        self._started = False
        self._stop_requested = False
        self._cancelling = False  # set when this server cancels requests (stop deadline)
        self._finished_closed = False
        self._stop_ctxs: list[context.Context] = []
        self._base_ctx: context.Context = context.background()
        self._bound: tuple[str, int] | None = None
        self._requests = 0
        self._active = 0
        self._drained = 0
        self._cancelled = 0
        self._server: uvicorn.Server | None = None

    def __repr__(self) -> str:
        return f"<HTTPServer {self.name!r} {self._state}>"

    # -- the Server protocol -------------------------------------------------------

    def endpoint(self) -> str | None:
        """The URL of this server once it is ready, else None."""
        with self._mu:
            bound = self._bound
        if bound is None:
            return None
        if self._endpoint_override is not None:
            return self._endpoint_override
        scheme = "https" if self._config.is_ssl else "http"
        return f"{scheme}://{_host_for_url(_advertised_host(bound[0]))}:{bound[1]}"

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound (host, port) once listening (port 0 resolved), else None."""
        with self._mu:
            return self._bound

    @property
    def url(self) -> str | None:
        """``http://host:port`` of the bound socket, as the host was given, or None."""
        with self._mu:
            bound = self._bound
        if bound is None:
            return None
        scheme = "https" if self._config.is_ssl else "http"
        return f"{scheme}://{_host_for_url(bound[0])}:{bound[1]}"

    def statistics(self) -> HTTPServerStatistics:
        """Counters of requests and connections (see :class:`HTTPServerStatistics`)."""
        with self._mu:
            server = self._server
            conns = len(server.server_state.connections) if server is not None else 0
            return HTTPServerStatistics(
                self._state, self._requests, self._active, conns, self._drained, self._cancelled
            )

    async def start(self, ctx: context.Context) -> None:
        """Bind and serve until stopped; see the class notes."""
        with self._mu:
            if self._started:
                raise RuntimeError(f"{self.name}: start called twice")
            self._started = True
            if self._state == _STOPPED:
                return  # stopped before it started, as Go's Serve after Shutdown
            self._state = _STARTING
            self._base_ctx = ctx
        try:
            server = await self._startup()
        except BaseException:
            self._finish()
            raise
        try:
            await self._serve(server)
            await self._shutdown(server)
        except BaseException:
            self._abort(server)
            raise
        finally:
            self._finish()

    async def stop(self, ctx: context.Context) -> None:
        """Stop gracefully within ``ctx``'s deadline; return once stopped.

        Raises ``ctx.err()`` if the server has not stopped when ``ctx`` ends
        (it cancels its remaining requests shortly before the deadline, so a
        server whose handlers honour cancellation stops in time).
        """
        with self._mu:
            self._stop_ctxs.append(ctx)
            if not self._stop_requested:
                self._stop_requested = True
                self._stop_req.close()
            if self._state == _NEW:
                self._finish_locked()
        await self._finished.arecv_ok(ctx=ctx)

    # -- internals -------------------------------------------------------------------

    async def _startup(self) -> uvicorn.Server:
        sock = _bind(self._host, self._port, self._config.backlog)
        try:
            config = self._config
            config.load()
            server = uvicorn.Server(config)
            server.lifespan = config.lifespan_class(config)
            with self._mu:
                self._server = server
            try:
                await server.startup(sockets=[sock])
            except SystemExit:
                raise RuntimeError(f"{self.name}: the ASGI application's startup failed") from None
        except BaseException:
            sock.close()
            raise
        host, port = sock.getsockname()[:2]
        with self._mu:
            self._bound = (self._host if self._host else host, port)
            self._state = _SERVING
        self.ready.close()
        log.info("%s: serving on %s", self.name, self.url)
        return server

    async def _serve(self, server: uvicorn.Server) -> None:
        # Refresh uvicorn's Date header once a second until the first stop().
        while True:
            await server.on_tick(0)
            try:
                await self._stop_req.arecv_ok(timeout=1.0)
                return
            except TimeoutError:
                continue

    async def _shutdown(self, server: uvicorn.Server) -> None:
        with self._mu:
            self._state = _STOPPING
            began = time.monotonic()
            active = self._active
        state = server.server_state
        for listener in server.servers:
            listener.close()  # refuse new connections now
        for conn in list(state.connections):
            with contextlib.suppress(Exception):
                conn.shutdown()  # idle: close; busy: close after the response
        log.info("%s: stopping, %d request(s) in flight", self.name, active)
        cutoff = self._cutoff(began)
        pause = 0.001
        while (state.connections or state.tasks) and not self._forced():
            left = cutoff - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _POLL_MAX)
        if state.tasks:
            await self._cancel_remaining(server)
        if not self._forced():
            left = self._cutoff(began) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.lifespan.shutdown(), max(left, 0.0))
        for listener in server.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 0.1)

    async def _cancel_remaining(self, server: uvicorn.Server) -> None:
        state = server.server_state
        tasks = list(state.tasks)
        with self._mu:
            self._cancelling = True
        log.warning("%s: stop deadline: cancelling %d request(s)", self.name, len(tasks))
        for task in tasks:
            task.cancel()
        # Let the cancelled handlers unwind and uvicorn answer them, briefly.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 0.2)
        for conn in list(state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.close()

    def _abort(self, server: uvicorn.Server) -> None:
        # The start task itself was cancelled or failed: close everything now.
        with self._mu:
            self._cancelling = True
        for listener in server.servers:
            listener.close()
        for task in list(server.server_state.tasks):
            task.cancel()
        for conn in list(server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()

    def _cutoff(self, began: float) -> float:
        """When to stop waiting for requests: shortly before the earliest stop deadline."""
        with self._mu:
            deadlines = [d for d in (c.deadline() for c in self._stop_ctxs) if d is not None]
        if not deadlines:
            return math.inf
        deadline = min(deadlines)
        reserve = min(_RESERVE_MAX, max(deadline - began, 0.0) * 0.1)
        return deadline - reserve

    def _forced(self) -> bool:
        with self._mu:
            ctxs = list(self._stop_ctxs)
        return any(c.err() is not None for c in ctxs)

    def _finish(self) -> None:
        with self._mu:
            self._finish_locked()

    def _finish_locked(self) -> None:
        self._state = _STOPPED
        if not self._finished_closed:
            self._finished_closed = True
            self._finished.close()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        ctx, cancel = context.with_cancel(self._base_ctx)
        scope["goconc.ctx"] = ctx
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
            await send(message)

        with self._mu:
            self._requests += 1
            self._active += 1
        cancelled = False
        try:
            await self._app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            cancelled = True
            with self._mu:
                ours = self._cancelling
            if not ours or started or scope["type"] != "http":
                raise
            # Cancelled by this server's stop deadline before answering: say so
            # (503) rather than letting it look like an application error (500).
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await send(_UNAVAILABLE_START)
            await send(_UNAVAILABLE_BODY)
        finally:
            cancel()
            with self._mu:
                self._active -= 1
                if self._stop_requested:
                    if cancelled:
                        self._cancelled += 1
                    else:
                        self._drained += 1


_UNAVAILABLE_START: Final[Message] = {
    "type": "http.response.start",
    "status": 503,
    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
}
_UNAVAILABLE_BODY: Final[Message] = {
    "type": "http.response.body",
    "body": b"Service Unavailable: the server stopped before this request completed\n",
}


def split_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"``, ``"[v6]:port"`` or ``":port"`` (all interfaces).

    Raises ``ValueError`` naming ``address`` if it is malformed.
    """
    if not isinstance(address, str):
        raise TypeError(f"address must be a 'host:port' string, got {address!r}")
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"address must be 'host:port' with a port in 0..65535, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address: write an IPv6 host in brackets, got {address!r}")
    return host or "0.0.0.0", int(port_text)


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.create_server(sockaddr[:2], family=family, backlog=backlog)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        where = f"{_host_for_url(host)}:{port}"
        raise type(exc)(exc.errno, f"cannot listen on {where}: {reason}") from exc
    sock.setblocking(False)
    return sock


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _advertised_host(host: str) -> str:
    """Where other machines reach a server bound to ``host`` (resolves 0.0.0.0 and ::)."""
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host  # a name: advertise it as given
    if not unspecified:
        return host
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Connecting a UDP socket sends nothing; it only picks the outgoing interface.
        probe.connect(("2001:db8::1", 9) if ":" in host else ("192.0.2.1", 9))
        found: str = probe.getsockname()[0]
        return found
    except OSError:
        return "::1" if ":" in host else "127.0.0.1"
    finally:
        probe.close()
