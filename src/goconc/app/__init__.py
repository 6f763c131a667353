"""An application's lifecycle: start servers, register, wait, stop in order.

:class:`App` is go-kratos's ``App`` for Python: it starts every server
concurrently, waits until each one is *ready* (listening, endpoint known),
registers the service instance, and then runs until a signal, :meth:`App.stop`,
the parent context ending, or a server failing.  Then it stops everything in
order, within a stop timeout it enforces itself.

The order, exactly::

    before_start hooks (in order; the first error ends run, nothing started)
    start every server concurrently (an errgroup: the first failure stops all)
    wait until every server is ready
    register the instance with the registrar (under registrar_timeout)
    after_start hooks (in order)
    ... running: wait for a signal, stop(), ctx ending or a server failing ...
    before_stop hooks (all of them)
    deregister
    stop every server concurrently with stop(ctx)
    after_stop hooks (all of them)

The stop deadline.  The stop sequence starts a clock of ``stop_timeout``
seconds; each step (a hook, deregistration, the servers' stops) gets a
context whose deadline is that stop deadline, and the App waits for the step
until then: a step still running is cancelled (a task) or abandoned (a
thread) and reported as a :class:`StopTimeout`.  No step is skipped: a step
reached after the deadline gets ``STOP_GRACE`` seconds (its cue to
force-close, flush or dead-letter rather than drain).  So ``run`` returns
about ``stop_timeout`` seconds after a stop began at the latest, plus
``STOP_GRACE`` per step that had to run late.  A second signal ends every
wait at once.

Unlike go-kratos's App:

* a server that fails to start is reported by its own error, never by the
  "context canceled" its failure caused elsewhere;
* a failing registration or after_start hook stops the servers that started:
  nothing is left running when ``run`` returns;
* cancelling the parent context runs the whole stop sequence, in order;
* every hook error is reported (``AppError`` lists all errors, in order);
* the stop deadline is enforced by the App itself (see above): a server
  whose ``stop`` ignores its context cannot hang ``run``;
* signals are handled from the start of ``run`` (a signal during start-up
  stops the App at once), and a second signal forces a prompt exit.

Hooks are ``fn(ctx)``, plain or ``async``; servers' ``start``/``stop`` may be
plain (run on a goroutine thread) or ``async`` (run as tasks on the App's
loop).  Every ctx the App hands out carries the App: ``from_context(ctx)``.

Threads (blocking)::

    app = App(name="svc", servers=[HTTPServer(asgi, "0.0.0.0:8080")],
              registrar=FileRegistry(path), stop_timeout=15)
    app.run()                    # until SIGINT/SIGTERM; raises AppError on failure

asyncio::

    await app.arun()             # app.stop() from any thread or task ends it
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from .. import context, errgroup
from ..chan import Chan, aselect
from ..context import Context
from ..runtime import go_named
from ._ctx import from_context, new_context
from ._debug import DebugServer
from ._http import ASGIApp, HTTPServer, HTTPServerStatistics

if TYPE_CHECKING:
    from ..registry import Registrar, ServiceInstance

__all__ = [
    "ASGIApp",
    "App",
    "AppError",
    "BasicServer",
    "DebugServer",
    "ForcedStop",
    "HTTPServer",
    "HTTPServerStatistics",
    "Hook",
    "STOP_GRACE",
    "Server",
    "StopTimeout",
    "from_context",
    "new_context",
]

log = logging.getLogger("goconc.app")

#: A lifecycle hook: called with a Context; may be a coroutine function.
Hook = Callable[[Context], Any]

# App states; the state only moves forward.
_NEW: Final = "new"
_STARTING: Final = "starting"
_RUNNING: Final = "running"
_STOPPING: Final = "stopping"
_STOPPED: Final = "stopped"

#: The time a stop step reached after the stop deadline still gets (its context's
#: deadline is then this far away): enough to force-close, flush or dead-letter.
STOP_GRACE: Final = 0.5

_DEFAULT_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class BasicServer(Protocol):
    """What the App needs of a server: ``start(ctx)`` and ``stop(ctx)``.

    ``start`` serves until stopped (it returns once ``stop`` has taken
    effect) and raises if it cannot serve; ``stop`` stops gracefully within
    ``ctx``'s deadline and must tolerate being called before ``start`` has
    done anything and after ``start`` failed.  Either may be ``async``.  A
    server without ``ready`` is taken as ready once its ``start`` has begun.
    """

    def start(self, ctx: Context) -> object: ...

    def stop(self, ctx: Context) -> object: ...


@runtime_checkable
class Server(BasicServer, Protocol):
    """A server that also reports readiness and where it is reached.

    ``ready`` is a channel closed once the server really serves (listening,
    its port known); ``endpoint()`` then returns the URL to register, or
    None for a server that must not be registered (the debug server).
    """

    ready: Chan[None]

    def endpoint(self) -> str | None: ...


class AppError(ExceptionGroup[Exception]):
    """Everything that went wrong in one run of an App, in the order it happened.

    ``exceptions[0]`` is the error that ended the App (a server's own
    start error, a hook's error...); later ones happened while stopping.
    Each error carries a note naming the server or hook it came from.
    """

    def derive(self, excs: Sequence[Exception]) -> AppError:  # type: ignore[override]
        return AppError(self.message, excs)


class StopTimeout(TimeoutError):
    """Part of the stop sequence had not finished by the stop deadline."""


class ForcedStop(Exception):
    """A second signal forced the App to exit without waiting for the rest of the stop."""


class App:
    """An application: identity, servers, hooks, registration, signals, stop timeout.

    ``id`` defaults to a random UUID; ``metadata`` is copied (read-only);
    ``endpoints``, if given, are registered instead of the servers' own.
    ``signals`` are handled while ``run`` runs, in the main thread only (the
    only thread Python delivers signals to): the default pair is skipped
    elsewhere, and an explicit non-empty tuple raises ``ValueError`` there.
    ``registrar_timeout`` bounds each of register and deregister;
    ``stop_timeout`` the stop sequence (see the module notes; None: no
    bound, a second signal being then the way out).  ``ctx`` is
    the parent context (``context.background()`` by default); its ending
    stops the App.

    Raises ``TypeError``/``ValueError`` naming the argument for bad ones.
    An App runs once.
    """

    def __init__(
        self,
        *,
        id: str | None = None,  # the App's id, as kratos names it
        name: str = "",
        version: str = "",
        metadata: Mapping[str, str] | None = None,
        endpoints: Iterable[str] = (),
        servers: Iterable[BasicServer] = (),
        signals: Iterable[int] = _DEFAULT_SIGNALS,
        registrar: Registrar | None = None,
        registrar_timeout: float = 10.0,
        stop_timeout: float | None = 10.0,
        before_start: Iterable[Hook] | Hook = (),
        after_start: Iterable[Hook] | Hook = (),
        before_stop: Iterable[Hook] | Hook = (),
        after_stop: Iterable[Hook] | Hook = (),
        ctx: Context | None = None,
    ) -> None:
        self.id: str = _text("id", id) if id is not None else str(uuid.uuid4())
        self.name: str = _text("name", name)
        self.version: str = _text("version", version)
        self.metadata: Mapping[str, str] = MappingProxyType(_metadata(metadata))
        self._explicit_endpoints = tuple(_text("endpoints", e) for e in endpoints)
        self.servers: tuple[BasicServer, ...] = tuple(servers)
        for s in self.servers:
            if not (callable(getattr(s, "start", None)) and callable(getattr(s, "stop", None))):
                raise TypeError(f"servers: {s!r} has no start(ctx) and stop(ctx) methods")
        self._signals = _signals(signals)
        self._default_signals = self._signals == _DEFAULT_SIGNALS
        if registrar is not None and not (
            callable(getattr(registrar, "register", None))
            and callable(getattr(registrar, "deregister", None))
        ):
            raise TypeError(f"registrar: {registrar!r} has no register/deregister methods")
        self.registrar = registrar
        self.registrar_timeout = _seconds("registrar_timeout", registrar_timeout)
        self.stop_timeout = None if stop_timeout is None else _seconds("stop_timeout", stop_timeout)
        self._hooks = {
            "before_start": _hooks("before_start", before_start),
            "after_start": _hooks("after_start", after_start),
            "before_stop": _hooks("before_stop", before_stop),
            "after_stop": _hooks("after_stop", after_stop),
        }
        parent = context.background() if ctx is None else ctx
        if not isinstance(parent, Context):
            raise TypeError(f"ctx must be a goconc Context, got {type(parent).__name__}")
        #: The context every hook and server gets (a descendant of): it carries the App.
        self._info_ctx = new_context(parent, self)
        # Cancelled by stop(), a first signal, or the parent ending: "stop now".
        self._run_ctx, self._cancel_run = context.with_cancel_cause(self._info_ctx)
        # Cancelled by a second signal: "stop waiting for anything".
        self._force_ctx, self._force = context.with_cancel_cause(context.background())
        #: Closed once the App is running (servers ready, registered, after_start done).
        self.ready: Chan[None] = Chan()
        #: Closed once run()/arun() has returned.
        self.done: Chan[None] = Chan()
        self._mu = threading.Lock()
        # guarded by _mu: _state moves forward only (new, starting, running, stopping,
        # stopped); _errors grows in the order things went wrong; _endpoints is set
        # once every server is ready; _signalled counts signals received while running.
        self._state: str = _NEW
        self._errors: list[Exception] = []
        self._endpoints: tuple[str, ...] = self._explicit_endpoints
        self._instance: ServiceInstance | None = None
        self._signalled = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<App {self.name!r} id={self.id} {self.state}>"

    # -- public ----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"new"``, ``"starting"``, ``"running"``, ``"stopping"`` or ``"stopped"``."""
        with self._mu:
            return self._state

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoints registered: the explicit ones, else the servers' once ready."""
        with self._mu:
            return self._endpoints

    @property
    def instance(self) -> ServiceInstance | None:
        """The service instance registered (None before registration)."""
        with self._mu:
            return self._instance

    def stop(self) -> None:
        """Ask the App to stop; returns at once, from any thread or task.

        ``run`` then runs the stop sequence and returns.  Before ``run``, it
        makes ``run`` return at once without starting anything.
        """
        self._cancel_run(_StopRequested("app.stop() called"))

    def run(self) -> None:
        """Run the App on a new event loop in this thread until it stops.

        Returns None after a clean stop; raises :class:`AppError` listing
        every error otherwise.  Raises ``RuntimeError`` if called twice or
        from a thread that runs an event loop (use ``await app.arun()``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("App.run() would block the running event loop; await app.arun()")
        asyncio.run(self.arun())

    async def arun(self) -> None:
        """The asyncio form of :meth:`run`: run the App on the running loop."""
        with self._mu:
            if self._state != _NEW:
                raise RuntimeError(f"app {self.name!r}: run called twice")
            self._state = _STARTING
            self._loop = asyncio.get_running_loop()
        restore = self._install_signals()
        try:
            await _Run(self).run()
        finally:
            restore()
            with self._mu:
                self._state = _STOPPED
                errors = list(self._errors)
            self.done.close()
        if errors:
            raise AppError(f"app {self.name!r}: {_summary(errors)}", errors)

    # -- signals -------------------------------------------------------------------

    def _install_signals(self) -> Callable[[], None]:
        if not self._signals:
            return lambda: None
        if threading.current_thread() is not threading.main_thread():
            if self._default_signals:
                return lambda: None
            raise ValueError("signals can only be handled by an App run in the main thread")
        loop = asyncio.get_running_loop()

        def handler(signum: int, frame: FrameType | None) -> None:
            # Runs in the main thread between two bytecodes, maybe while this very
            # thread holds a lock: take none, hand the work to the loop.
            loop.call_soon_threadsafe(self._on_signal, signum)

        previous = {s: signal.signal(s, handler) for s in self._signals}

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)

        return restore

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        with self._mu:
            self._signalled += 1
            first = self._signalled == 1
        if first:
            log.info("app %r: %s received, stopping (send it again to force)", self.name, name)
            self._cancel_run(_StopRequested(f"{name} received"))
        else:
            log.warning("app %r: %s received again, forcing the stop", self.name, name)
            self._force(ForcedStop(f"stop forced by a second {name}"))

    # -- used by _Run ----------------------------------------------------------------

    def _fail(self, what: str, err: Exception) -> None:
        err.add_note(f"in app {self.name!r}: {what}")
        with self._mu:
            self._errors.append(err)
        # Raised by run() with everything else at the end; logged now for the record.
        log.info("app %r: %s failed: %r", self.name, what, err)


class _StopRequested(Exception):
    """The cause of a requested stop (stop(), a signal)."""


class _Job:
    """A hook, a server's stop or a registrar call, run in a goroutine of its own.

    Coroutine functions run as tasks on the App's loop (and can be cancelled
    when abandoned); plain ones on a goroutine thread.
    """

    def __init__(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        self.what = what
        self.error: Exception | None = None
        self.task: asyncio.Task[Any] | None = None
        self.abandoned = False
        if _is_async(fn):
            self.g = go_named(what, self._arun, fn, args)
        else:
            self.g = go_named(what, self._run, fn, args)

    async def _arun(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.task = asyncio.current_task()
        if self.abandoned:
            return  # given up on before it even began
        try:
            await fn(*args)
        except asyncio.CancelledError:
            if not self.abandoned:
                self.error = RuntimeError(f"{self.what} was cancelled")
        except Exception as e:
            self.error = e

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self.abandoned:
            return
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                _close(result)
                raise TypeError(f"{self.what}: a plain function returned an awaitable")
        except Exception as e:
            self.error = e

    async def join(self, deadline: float | None, force: Context) -> bool:
        """Wait until done (True), or until ``deadline``/``force`` (False)."""
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            await self.g.ajoin(timeout=timeout, ctx=force)
        except (TimeoutError, context.Canceled):
            if not self.g.done():
                return False
        return True

    def abandon(self) -> None:
        self.abandoned = True
        if self.task is not None:
            self.task.cancel()


class _Started:
    """One server as started by the App."""

    def __init__(self, server: BasicServer) -> None:
        self.server = server
        self.name = _server_name(server)
        self.begun: Chan[None] = Chan()  # closed when its start has begun
        # Set once start has returned, by the goroutine that ran it; read by the App after
        # joining the group (which orders the write before the read), or after giving up
        # on it (a stale False then only means "still running", which it was).
        self.returned = False
        self.task: asyncio.Task[Any] | None = None
        self.abandoned = False


class _Run:
    """One run of an App: the lifecycle as straight-line code."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.started: list[_Started] = []
        self.group: errgroup.Group | None = None
        self.registered = False  # register succeeded, or was interrupted (outcome unknown)
        self.began = False  # before_start hooks all succeeded: the stop sequence must run

    async def run(self) -> None:
        app = self.app
        if app._run_ctx.err() is not None:
            return  # stopped before it ran
        if not await self._hooks("before_start", app._run_ctx, stop_on_error=True):
            return  # nothing was started
        self.began = True
        self.group, gctx = errgroup.with_context(app._run_ctx)
        try:
            if await self._start_servers(gctx):
                await self._register(gctx)
            running = gctx.err() is None and app._run_ctx.err() is None
            if running and await self._hooks("after_start", gctx, stop_on_error=True):
                with app._mu:
                    app._state = _RUNNING
                app.ready.close()
                log.info("app %r: running %s", app.name, ", ".join(app.endpoints))
                await gctx.done.arecv_ok(ctx=app._force_ctx)
        except context.Canceled:
            pass  # forced while starting: the stop sequence below skips what it must
        finally:
            # Also reached when the task running arun() is cancelled: that too stops
            # the App gracefully, and whatever watches the run context sees it.
            app._cancel_run(_StopRequested("stopping"))
            with app._mu:
                app._state = _STOPPING
            await self._stop_sequence()

    # -- starting --------------------------------------------------------------------

    async def _hooks(self, phase: str, ctx: Context, *, stop_on_error: bool) -> bool:
        """Run ``phase``'s hooks in order; False if one failed (with stop_on_error)."""
        for hook in self.app._hooks[phase]:
            job = _Job(f"{phase} hook {_name(hook)}", hook, ctx)
            if not await self._join_starting(job, ctx):
                return False
            if job.error is not None:
                self.app._fail(job.what, job.error)
                if stop_on_error:
                    return False
        return True

    async def _join_starting(self, job: _Job, abort: Context) -> bool:
        """Wait for a start-up step; once ``abort`` ends, for stop_timeout at most."""
        app = self.app
        if await job.join(None, abort):
            return True
        # A stop was requested: the step was given a context that ended; wait a while.
        limit = None if app.stop_timeout is None else time.monotonic() + app.stop_timeout
        if await job.join(limit, app._force_ctx):
            return True
        job.abandon()
        app._fail(job.what, _abandoned(job.what, app))
        return False

    async def _start_servers(self, gctx: Context) -> bool:
        """Start every server; True once all are ready, False if start-up was cut short."""
        app = self.app
        group = self.group
        assert group is not None
        start_ctx = context.without_cancel(app._info_ctx)
        for server in app.servers:
            rec = _Started(server)
            self.started.append(rec)
            if _is_async(server.start):
                group.go(self._astart, rec, start_ctx)
            else:
                group.go(self._start, rec, start_ctx)
        for rec in self.started:
            ready = getattr(rec.server, "ready", None)
            signal_ = ready if isinstance(ready, Chan) else rec.begun
            sel = await aselect(signal_, gctx.done, ctx=app._force_ctx)
            if sel.index == 1:
                return False
        endpoints = app._explicit_endpoints
        if not endpoints:
            found = []
            for rec in self.started:
                get = getattr(rec.server, "endpoint", None)
                if callable(get):
                    try:
                        url = get()
                    except Exception as e:
                        app._fail(f"endpoint() of server {rec.name}", e)
                        return False
                    if url is not None:
                        found.append(str(url))
            endpoints = tuple(found)
        with app._mu:
            app._endpoints = endpoints
        return True

    async def _astart(self, rec: _Started, ctx: Context) -> None:
        rec.task = asyncio.current_task()
        rec.begun.close()
        try:
            await rec.server.start(ctx)  # type: ignore[misc]
        except asyncio.CancelledError:
            if rec.abandoned:
                return
            err = RuntimeError(f"server {rec.name}: start was cancelled")
            self.app._fail(f"server {rec.name}", err)
            raise err from None
        except Exception as e:
            self.app._fail(f"server {rec.name}", e)
            raise
        finally:
            rec.returned = True

    def _start(self, rec: _Started, ctx: Context) -> None:
        rec.begun.close()
        try:
            result = rec.server.start(ctx)
            if inspect.isawaitable(result):
                _close(result)
                raise TypeError(f"server {rec.name}: a plain start() returned an awaitable")
        except Exception as e:
            self.app._fail(f"server {rec.name}", e)
            raise
        finally:
            rec.returned = True

    async def _register(self, gctx: Context) -> None:
        app = self.app
        if app.registrar is None:
            return
        from ..registry import ServiceInstance

        instance = ServiceInstance(
            id=app.id,
            name=app.name,
            version=app.version,
            metadata=dict(app.metadata),
            endpoints=app.endpoints,
        )
        with app._mu:
            app._instance = instance
        rctx, cancel = context.with_timeout(gctx, app.registrar_timeout)
        try:
            job = _Job("register", _registrar_call(app.registrar, "register"), instance, rctx)
            finished = await self._join_starting(job, gctx)
        finally:
            cancel()
        if not finished:
            self.registered = True  # interrupted: deregister to be safe
            return
        err = job.error
        if err is None:
            self.registered = True
            log.info("app %r: registered %s", app.name, instance)
        elif gctx.err() is not None and _is_ctx_error(err):
            # Cut short because a server failed or a stop was requested: that server's
            # error (or the stop) is the story, not this consequence of it.
            self.registered = True
        else:
            app._fail("register", err)
            app._cancel_run(err)  # nothing may be left running: stop what started

    # -- stopping --------------------------------------------------------------------

    async def _stop_sequence(self) -> None:
        app = self.app
        if not self.began:
            return
        timeout = app.stop_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        # Every stop step gets a child of `base`: it keeps the App's values, is not
        # cancelled with the parent (so stopping is graceful), and ends at once when
        # the stop is forced.
        base, cancel = context.with_cancel(context.without_cancel(app._info_ctx))
        unforce = context.after_func(app._force_ctx, cancel)
        try:
            await self._stop_hooks("before_stop", base, deadline)
            await self._deregister(base, deadline)
            await self._stop_servers(base, deadline)
            await self._stop_hooks("after_stop", base, deadline)
        finally:
            unforce()
            cancel()
        forced = context.cause(app._force_ctx)
        if isinstance(forced, ForcedStop):
            app._fail("stop", forced)

    def _forced(self) -> bool:
        return self.app._force_ctx.err() is not None

    async def _step(self, job: _Job, deadline: float | None) -> bool:
        """Wait for a stop step until ``deadline``; abandon it then (False)."""
        if await job.join(deadline, self.app._force_ctx):
            if job.error is not None:
                self.app._fail(job.what, job.error)
            return True
        job.abandon()
        if not self._forced():
            self.app._fail(job.what, _abandoned(job.what, self.app))
        return False

    async def _stop_hooks(self, phase: str, base: Context, deadline: float | None) -> None:
        for hook in self.app._hooks[phase]:
            if self._forced():
                return
            d = _step_deadline(deadline)
            with _child(base, d) as ctx:
                await self._step(_Job(f"{phase} hook {_name(hook)}", hook, ctx), d)

    async def _deregister(self, base: Context, deadline: float | None) -> None:
        app = self.app
        instance = app.instance
        if not self.registered or app.registrar is None or instance is None or self._forced():
            return
        limit = time.monotonic() + app.registrar_timeout
        d = _step_deadline(deadline)
        d = limit if d is None else min(d, limit)
        with _child(base, d) as ctx:
            call = _registrar_call(app.registrar, "deregister")
            job = _Job("deregister", call, instance, ctx)
            if await self._step(job, d) and job.error is None:
                log.info("app %r: deregistered", app.name)

    async def _stop_servers(self, base: Context, deadline: float | None) -> None:
        app = self.app
        if self._forced():
            await self._abandon_servers()
            return
        d = _step_deadline(deadline)
        with _child(base, d) as ctx:
            jobs = [
                (rec, _Job(f"stop server {rec.name}", rec.server.stop, ctx)) for rec in self.started
            ]
            stuck = []
            for rec, job in jobs:
                if not await job.join(d, app._force_ctx):
                    job.abandon()
                    stuck.append(rec.name)
                elif job.error is not None:
                    app._fail(job.what, job.error)
            group = self.group
            assert group is not None
            timeout = None if d is None else max(d - time.monotonic(), 0.0)
            try:
                await group.wait_async(timeout, ctx=app._force_ctx)
            except (TimeoutError, context.Canceled):
                pass
        late = await self._abandon_servers()
        late += [name for name in stuck if name not in late]
        if late and not self._forced():
            app._fail(
                "stop servers",
                StopTimeout(
                    f"server(s) {', '.join(late)} still running at the stop deadline "
                    f"({app.stop_timeout}s): cancelled (tasks) or abandoned (threads)"
                ),
            )

    async def _abandon_servers(self) -> list[str]:
        """Cancel the start tasks of servers still running; name every one still running."""
        late = [rec for rec in self.started if not rec.returned]
        for rec in late:
            rec.abandoned = True
            if rec.task is not None:
                rec.task.cancel()
        tasks = [rec.task for rec in late if rec.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
        return [rec.name for rec in late]


def _step_deadline(deadline: float | None) -> float | None:
    """A stop step's deadline: the stop deadline, or a short grace once it has passed."""
    if deadline is None:
        return None
    return max(deadline, time.monotonic() + STOP_GRACE)


def _child(base: Context, deadline: float | None) -> context.CancelPair:
    if deadline is None:
        return context.with_cancel(base)
    return context.with_deadline(base, deadline)


# -- helpers ---------------------------------------------------------------------------


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _is_ctx_error(err: BaseException) -> bool:
    return isinstance(err, context.Canceled | context.DeadlineExceeded)


def _abandoned(what: str, app: App) -> StopTimeout:
    return StopTimeout(f"{what} still running at the stop deadline ({app.stop_timeout}s)")


def _registrar_call(registrar: Registrar, method: str) -> Callable[..., Any]:
    fn = getattr(registrar, method)
    if _is_async(fn):

        async def acall(instance: ServiceInstance, ctx: Context) -> None:
            await fn(instance, ctx=ctx)

        return acall

    def call(instance: ServiceInstance, ctx: Context) -> None:
        fn(instance, ctx=ctx)

    return call


def _summary(errors: Sequence[BaseException]) -> str:
    first = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{type(first).__name__}: {first}{more}"


def _server_name(server: object) -> str:
    name = getattr(server, "name", None)
    return name if isinstance(name, str) and name else type(server).__name__


def _name(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def _text(arg: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, got {type(value).__name__}")
    return value


def _metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping of str to str, got {type(metadata).__name__}")
    out = dict(metadata)
    for k, v in out.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata must map str to str, got {k!r}: {v!r}")
    return out


def _seconds(arg: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{arg} must be a number of seconds, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{arg} must be > 0 seconds, got {value!r}")
    return float(value)


def _signals(signals: Iterable[int]) -> tuple[signal.Signals, ...]:
    out = []
    for s in signals:
        try:
            sig = signal.Signals(s)
        except (ValueError, TypeError):
            raise ValueError(f"signals: unknown signal {s!r}") from None
        if sig in (getattr(signal, "SIGKILL", None), getattr(signal, "SIGSTOP", None)):
            raise ValueError(f"signals: {sig.name} cannot be caught")
        out.append(sig)
    return tuple(out)


def _hooks(arg: str, hooks: Iterable[Hook] | Hook) -> tuple[Hook, ...]:
    items: tuple[Any, ...] = (hooks,) if callable(hooks) else tuple(hooks)
    for h in items:
        if not callable(h):
            raise TypeError(f"{arg}: a hook must be callable as hook(ctx), got {h!r}")
    return items
