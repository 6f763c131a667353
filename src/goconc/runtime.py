"""Goroutines: ``go()`` for threads and asyncio tasks alike, and what is running now.

``go(fn, *args, **kwargs)`` starts ``fn(*args, **kwargs)`` concurrently and
returns a :class:`Goroutine` handle at once:

* a coroutine function (or a coroutine object) becomes an asyncio task on the
  event loop running in the caller's thread, or, when none is running, on the
  runtime's own loop (one daemon thread, started on first use);
* any other callable runs on an OS thread of its own.  Threads are reused, as
  Go keeps idle Ms: a thread whose goroutine ended waits a few seconds
  (:func:`set_idle_timeout`) for the next ``go()``, so starting a thread
  goroutine usually costs one lock hand-off instead of a thread start.

Thread use::

    g = go(fetch, url)
    body = g.join(timeout=5)         # the result, or fetch's exception re-raised

asyncio use::

    g = go(fetch_async, url)         # a task on the running loop
    body = await g.ajoin(timeout=5)

Guarantees:

* An exception that escapes a goroutine is never silent: it is handed to the
  panic handler (by default logged with its traceback on the ``"goconc"``
  logger, naming the goroutine and where it was created) and kept on the
  handle, where ``join``/``ajoin`` re-raise it.  A task goroutine ending by
  ``CancelledError`` is not a panic (joining it raises ``CancelledError``).
* ``join`` works from any thread and ``ajoin`` from any task on any loop,
  whatever the goroutine's kind; both block through the one waiter
  (``goconc._park``), so they honour ``timeout=`` and ``ctx=`` like every
  goconc blocking call.
* Goroutine threads are daemon threads: as in Go, the program ends when its
  main thread does.  The runtime loop cancels its tasks at exit (bounded in
  time) and closes without warnings.

Observability: :func:`num_goroutine`, :func:`goroutines` (id, name, kind,
state, creation site, current stack), :func:`dump` (a Go-style text dump),
:func:`current`, and :func:`statistics` for the debug server.  The main
thread and threads or tasks not started by ``go()`` are not goroutines here,
and neither are the runtime's idle threads (named ``goconc-idle``) and loop
thread (``goconc-loop``); a thread running a goroutine is named
``goroutine-<id>``.

Costs: a task goroutine adds about 250 bytes and one done-callback to a bare
asyncio task; a thread goroutine handed to an idle thread costs a small
fraction of ``Thread.start()``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import threading
from asyncio import events
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType, FrameType, FunctionType, TracebackType
from typing import Any, Final, Generic, ParamSpec, TypeVar, cast, overload

from . import _park, _racehooks
from . import _runtime_loop as _rloop
from . import _runtime_stack as _stack
from . import _runtime_threads as _threads
from ._runtime_threads import get_idle_timeout, set_idle_timeout

__all__ = [
    "Goroutine",
    "GoroutineInfo",
    "RuntimeStatistics",
    "current",
    "dump",
    "get_idle_timeout",
    "go",
    "go_named",
    "goroutines",
    "num_goroutine",
    "register_statistics",
    "set_idle_timeout",
    "set_panic_handler",
    "statistics",
    "unregister_statistics",
]

T = TypeVar("T")
P = ParamSpec("P")

_log = logging.getLogger("goconc")

_RUNNING: Final = 0
_DONE: Final = 1
_CO_COROUTINE: Final = inspect.CO_COROUTINE

# Goroutines are joined and finished under one of these locks, chosen by id:
# a lock per goroutine would cost an allocation and ~50 bytes each.
_STRIPES: Final = tuple(threading.Lock() for _ in range(64))
_STRIPE_MASK: Final = len(_STRIPES) - 1

_reg_mu = threading.Lock()
# guarded by _reg_mu: every goroutine started and not yet finished, by id.
_registry: dict[int, Goroutine[Any]] = {}
# guarded by _reg_mu: the task of every live task goroutine -> its goroutine.
_by_task: dict[asyncio.Task[Any], Goroutine[Any]] = {}
_last_id = 0  # guarded by _reg_mu; ids are 1, 2, 3, ... in start order
_panics = 0  # guarded by _reg_mu; exceptions that escaped goroutines


class _Local(threading.local):
    # The thread goroutine running on this thread, if any.
    g: Goroutine[Any] | None = None
    # The task goroutine whose task is being created on this thread: an eager
    # task (asyncio.eager_task_factory) runs its first step inside create_task,
    # before the task can be looked up.
    starting: Goroutine[Any] | None = None


_tls = _Local()


class Goroutine(Generic[T]):
    """A handle to a goroutine started by :func:`go`.

    ``id`` is unique and increasing in start order; ``name`` defaults to the
    function's qualified name (see :func:`go_named`); ``kind`` is ``"thread"``
    or ``"task"``.  Handles are created only by ``go()``.
    """

    __slots__ = (
        "__weakref__",
        "_code",
        "_exc",
        "_ident",
        "_line",
        "_loop",
        "_parked",
        "_race",
        "_result",
        "_state",
        "_task",
        "_waiters",
        "id",
        "kind",
        "name",
    )

    def __init__(self, gid: int, name: str, kind: str, code: CodeType | None, line: int) -> None:
        self.id = gid
        self.name = name
        self.kind = kind
        # The stripe lock _STRIPES[id & mask] guards _state, _result, _exc and
        # _waiters; _result/_exc are written before _state becomes _DONE and
        # never change afterwards; _waiters is None once _state is _DONE.
        self._state = _RUNNING
        self._result: Any = None
        self._exc: tuple[BaseException, TracebackType | None] | None = None
        self._waiters: _park.WaitQueue | None = None
        # Where it runs: the task (and its loop) of a task goroutine, the OS
        # thread ident of a thread goroutine (0 until a thread picks it up).
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ident = 0
        # Where go() was called: formatted only when asked for.
        self._code = code
        self._line = line
        # Race detector only: the goroutine's final clock, acquired by joiners.
        self._race: Any = None
        # Free-threaded builds only: the waiter this thread goroutine is parked on
        # (set and cleared by goconc._park.park on the goroutine's own thread).
        self._parked: _park.Waiter | None = None

    def __repr__(self) -> str:
        state = "done" if self._state == _DONE else "running"
        return f"<Goroutine {self.id} {self.name!r} {self.kind} {state}>"

    @property
    def created_at(self) -> str:
        """Where ``go()`` was called: ``"file:line in function"``."""
        code = self._code
        if code is None:
            return "?"
        return f"{code.co_filename}:{self._line} in {code.co_qualname}"

    def done(self) -> bool:
        """True once the goroutine has returned or raised."""
        if self._state != _DONE:
            return False
        if _racehooks.enabled:  # seeing it done orders its end before what follows
            with _STRIPES[self.id & _STRIPE_MASK]:
                clock = self._race
            _racehooks.acquire_clock(clock)
        return True

    def result(self) -> T:
        """The goroutine's result, or its exception re-raised, without blocking.

        Raises ``RuntimeError`` if it has not finished yet (use ``join``).
        """
        if self._state != _DONE:
            raise RuntimeError(f"goconc: goroutine {self.id} has not finished")
        return self._outcome()

    def exception(self) -> BaseException | None:
        """The exception that ended the goroutine, or None; never blocks.

        Raises ``RuntimeError`` if it has not finished yet.
        """
        with _STRIPES[self.id & _STRIPE_MASK]:
            done, exc, clock = self._state == _DONE, self._exc, self._race
        if not done:
            raise RuntimeError(f"goconc: goroutine {self.id} has not finished")
        if _racehooks.enabled:
            _racehooks.acquire_clock(clock)
        return None if exc is None else exc[0]

    def join(self, timeout: float | None = None, ctx: _park.Ctx | None = None) -> T:
        """Block the calling thread until the goroutine ends; return its result.

        Re-raises the goroutine's exception.  Raises ``TimeoutError`` after
        ``timeout`` seconds and ``ctx.err()`` once ``ctx`` ends (the goroutine
        keeps running).  Raises ``RuntimeError`` for a join that could never
        return: a goroutine joining itself, or a blocking join of a task
        goroutine from the thread running its event loop (use ``ajoin``).

        Example::

            g = go(parse, path)
            try:
                doc = g.join(timeout=10)
            except TimeoutError:
                ...  # parse is still running; join again later or give up
        """
        if self._state != _DONE:
            self._check_join_blocking()
            _park.park(_JoinOp(self), timeout, ctx)
        else:
            _park.check_timeout(timeout)
            _park.raise_if_done(ctx)
        return self._outcome()

    async def ajoin(self, timeout: float | None = None, ctx: _park.Ctx | None = None) -> T:
        """Suspend the calling task until the goroutine ends; return its result.

        As :meth:`join`.  Cancelling the awaiting task stops the wait, not the
        goroutine.  Raises ``RuntimeError`` if a task goroutine awaits itself.

        Example::

            gs = [go(fetch, url) for url in urls]      # tasks, or threads for sync fetch
            pages = [await g.ajoin(ctx=ctx) for g in gs]
        """
        if self._state != _DONE:
            if self._task is not None and self._task is asyncio.current_task():
                raise RuntimeError(f"goconc: goroutine {self.id} cannot join itself")
            await _park.apark(_JoinOp(self), timeout, ctx)
        else:
            _park.check_timeout(timeout)
            _park.raise_if_done(ctx)
        return self._outcome()

    def _check_join_blocking(self) -> None:
        if current() is self:
            raise RuntimeError(f"goconc: goroutine {self.id} cannot join itself")
        if self.kind == "task":
            loop = events._get_running_loop()
            if loop is not None and loop is self._loop:
                raise RuntimeError(
                    f"goconc: a blocking join of task goroutine {self.id} on the thread "
                    "running its event loop would never return; use 'await g.ajoin()'"
                )

    def _outcome(self) -> T:
        # Read under the lock that published them: no reliance on the GIL
        # for the ordering of _state against _result/_exc.
        with _STRIPES[self.id & _STRIPE_MASK]:
            exc, result, clock = self._exc, self._result, self._race
        if _racehooks.enabled:  # the goroutine's end happens before what follows a join
            _racehooks.acquire_clock(clock)
        if exc is not None:
            raise exc[0].with_traceback(exc[1])
        return cast(T, result)

    def _finish(self, result: Any, exc: BaseException | None) -> None:
        """Publish the end: leave the registry, record the outcome, wake joiners.

        The registry is left first, so whoever sees the goroutine done (a join)
        no longer counts it in ``num_goroutine()``.
        """
        with _reg_mu:
            _registry.pop(self.id, None)
            task = self._task
            if task is not None:
                _by_task.pop(task, None)
        mu = _STRIPES[self.id & _STRIPE_MASK]
        with mu:
            self._result = result
            self._exc = None if exc is None else (exc, exc.__traceback__)
            self._state = _DONE
            waiters, self._waiters = self._waiters, None
        self._task = None
        if waiters is not None:
            waiters.wake_all()


class _JoinOp:
    """The waiter's view of a join: done once the goroutine has finished."""

    __slots__ = ("g",)
    reason = "goroutine join"

    def __init__(self, g: Goroutine[Any]) -> None:
        self.g = g

    def begin(self, w: _park.Waiter) -> bool:
        g = self.g
        with _STRIPES[g.id & _STRIPE_MASK]:
            if g._state == _DONE:
                return True
            q = g._waiters
            if q is None:
                q = g._waiters = _park.WaitQueue()
            q.push(w)
            return False

    def abort(self, w: _park.Waiter) -> None:
        g = self.g
        with _STRIPES[g.id & _STRIPE_MASK]:
            if g._waiters is not None:
                g._waiters.discard(w)

    def undo(self, w: _park.Waiter) -> None:
        """A join consumes nothing: there is nothing to give back."""


# ---------------------------------------------------------------- starting


@overload
def go(
    fn: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
) -> Goroutine[T]: ...
@overload
def go(fn: Awaitable[T], /) -> Goroutine[T]: ...
@overload
def go(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Goroutine[T]: ...
def go(fn: Any, /, *args: Any, **kwargs: Any) -> Goroutine[Any]:
    """Start ``fn(*args, **kwargs)`` as a goroutine and return its handle at once.

    A coroutine function, or a coroutine (any awaitable) passed directly,
    becomes an asyncio task: on the loop running in this thread, else on the
    runtime's own loop.  Any other callable runs on an OS thread (a reused
    idle one when there is one).  ``args``/``kwargs`` go to ``fn`` untouched;
    name a goroutine with :func:`go_named`.

    Raises ``TypeError`` at once for something neither callable nor
    awaitable, for arguments given with an awaitable, and for arguments the
    coroutine function does not accept.  ``fn``'s own exceptions go to the
    panic handler and to ``join``.

    Example::

        g = go(work, 1, key="a")             # a thread goroutine
        t = go(fetch_async, url)             # a task goroutine
        assert t.join(timeout=5) == expected # joinable from a thread or task
    """
    return _spawn(None, fn, args, kwargs, sys._getframe(1))


@overload
def go_named(
    name: str, fn: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
) -> Goroutine[T]: ...
@overload
def go_named(name: str, fn: Awaitable[T], /) -> Goroutine[T]: ...
@overload
def go_named(
    name: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> Goroutine[T]: ...
def go_named(name: str, fn: Any, /, *args: Any, **kwargs: Any) -> Goroutine[Any]:
    """As :func:`go`, naming the goroutine ``name`` (shown by ``goroutines()`` and ``dump()``).

    Example::

        go_named("janitor", sweep_forever, ctx)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return _spawn(name, fn, args, kwargs, sys._getframe(1))


def _spawn(
    name: str | None,
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    frame: FrameType | None,
) -> Goroutine[Any]:
    if _is_coroutine_function(fn):
        coro = fn(*args, **kwargs)
        return _spawn_task(name if name is not None else _name_of(fn), coro, frame)
    if not callable(fn):
        if not inspect.isawaitable(fn):
            raise TypeError(f"go: fn must be callable or awaitable, got {type(fn).__name__}")
        if args or kwargs:
            _close_if_coroutine(fn)
            raise TypeError("go: arguments cannot be given with an awaitable; pass the function")
        coro = fn if asyncio.iscoroutine(fn) else _await(fn)
        return _spawn_task(name if name is not None else _name_of(fn), coro, frame)
    g = _register(name if name is not None else _name_of(fn), "thread", frame)
    token = _racehooks.fork() if _racehooks.enabled else None
    try:
        _threads.start((_run_thread, g, fn, args, kwargs, token))
    except BaseException as e:
        g._finish(None, e)
        raise
    return g


def _spawn_task(name: str, coro: Any, frame: FrameType | None) -> Goroutine[Any]:
    g = _register(name, "task", frame)
    if _racehooks.enabled:
        coro = _race_task(g, _racehooks.fork(), coro)
    loop = events._get_running_loop()
    if loop is None:
        try:
            g._loop = _rloop.submit((g, coro))
        except BaseException as e:
            coro.close()
            g._finish(None, e)
            raise
    else:
        g._loop = loop
        try:
            _start_task(loop, (g, coro))
        except BaseException as e:  # the loop is closing
            coro.close()
            g._finish(None, e)
            raise
    return g


def _register(name: str, kind: str, frame: FrameType | None) -> Goroutine[Any]:
    global _last_id
    # created_at: the nearest caller outside goconc (go() called by
    # WaitGroup.go or errgroup is attributed to their caller).
    f = frame
    while f is not None and _in_goconc(f):
        f = f.f_back
    if f is None:
        f = frame
    code, line = (f.f_code, f.f_lineno or 0) if f is not None else (None, 0)
    with _reg_mu:
        _last_id += 1
        g: Goroutine[Any] = Goroutine(_last_id, name, kind, code, line)
        _registry[_last_id] = g
    return g


def _in_goconc(f: FrameType) -> bool:
    mod = f.f_globals.get("__name__")
    return isinstance(mod, str) and (mod == "goconc" or mod.startswith("goconc."))


def _is_coroutine_function(fn: Any) -> bool:
    if type(fn) is FunctionType:  # the common case, without inspect's unwrapping
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    if inspect.iscoroutinefunction(fn):
        return True
    # An instance whose class defines ``async def __call__``.
    return not isinstance(fn, type) and inspect.iscoroutinefunction(
        type(fn).__dict__.get("__call__")
    )


def _name_of(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str):
        return name
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None:
        return _name_of(inner)
    return type(fn).__qualname__


def _close_if_coroutine(obj: Any) -> None:
    if asyncio.iscoroutine(obj):
        obj.close()


async def _await(aw: Awaitable[T]) -> T:
    return await aw


async def _race_task(g: Goroutine[Any], token: Any, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` as goroutine ``g`` for the race detector (used only while it is on)."""
    _racehooks.start(token, g.id, g.name, g.created_at)
    try:
        return await coro
    finally:
        g._race = _racehooks.finish()


# ---------------------------------------------------------------- running


def _run_thread(w: _threads.Worker, job: tuple[Any, ...]) -> None:
    """Run a thread goroutine on worker ``w``'s thread (never raises)."""
    _, g, fn, args, kwargs, token = job
    g._ident = w.ident
    t = w.thread
    if t is not None:
        t.name = f"goroutine-{g.id}"
    _tls.g = g
    _park.here.holder = g
    result: Any = None
    exc: BaseException | None = None
    try:
        if token is not None:
            _racehooks.start(token, g.id, g.name, g.created_at)
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result.close()
            result = None
            raise TypeError(
                f"goroutine {g.id}: {g.name} returned a coroutine; pass the coroutine "
                "function (or the coroutine) to go() to run it as a task"
            )
    except BaseException as e:
        exc = e
    del job, fn, args, kwargs
    if token is not None:
        g._race = _racehooks.finish()
    try:
        if exc is not None:
            _panic(g, exc)
    finally:
        _tls.g = None
        _park.here.holder = None
        _threads.offer_idle(w)
        g._finish(result, exc)


def _start_task(loop: asyncio.AbstractEventLoop, item: tuple[Goroutine[Any], Any]) -> None:
    g, coro = item
    tls = _tls
    outer, tls.starting = tls.starting, g
    try:
        task = loop.create_task(coro, name=g.name)
    finally:
        tls.starting = outer
    with _reg_mu:
        _by_task[task] = g
    g._task = task
    task.add_done_callback(_task_done)


def _task_done(task: asyncio.Task[Any]) -> None:
    with _reg_mu:
        g = _by_task.get(task)
    if g is None:
        return
    result: Any = None
    exc: BaseException | None = None
    try:
        result = task.result()
    except asyncio.CancelledError as e:
        exc = e
    except BaseException as e:
        exc = e
        _panic(g, e)
    g._finish(result, exc)


def _start_submitted(loop: asyncio.AbstractEventLoop, item: tuple[Goroutine[Any], Any]) -> None:
    """Start a task goroutine submitted to the runtime loop (on that loop)."""
    try:
        _start_task(loop, item)
    except BaseException as e:  # cannot happen on a running loop; never silent if it does
        g, coro = item
        coro.close()
        _panic(g, e)
        g._finish(None, e)


def _drop_unstarted(item: tuple[Goroutine[Any], Any]) -> None:
    g, coro = item
    coro.close()
    g._finish(None, asyncio.CancelledError("goconc: the runtime loop shut down"))


_rloop.configure(_start_submitted, _drop_unstarted)


# ---------------------------------------------------------------- panics

PanicHandler = Callable[[Goroutine[Any], BaseException], object]


def _default_panic_handler(g: Goroutine[Any], exc: BaseException) -> None:
    _log.error(
        "goroutine %d (%s, %s, created at %s) raised %s",
        g.id,
        g.name,
        g.kind,
        g.created_at,
        type(exc).__name__,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


_panic_handler: PanicHandler = _default_panic_handler


def set_panic_handler(fn: PanicHandler | None) -> PanicHandler:
    """Replace what happens to an exception that escapes a goroutine; return the previous.

    ``fn(goroutine, exc)`` is called once per escaped exception, in the
    goroutine's thread (thread goroutines) or on its loop (task goroutines),
    before joiners are woken.  ``None`` restores the default, which logs the
    exception with its traceback on the ``"goconc"`` logger.  An exception
    raised by ``fn`` itself is logged, never propagated.

    Example::

        prev = runtime.set_panic_handler(lambda g, e: sentry.capture(e))
    """
    global _panic_handler
    if fn is None:
        fn = _default_panic_handler
    elif not callable(fn):
        raise TypeError(f"fn must be callable or None, got {type(fn).__name__}")
    with _reg_mu:
        prev, _panic_handler = _panic_handler, fn
    return prev


def _panic(g: Goroutine[Any], exc: BaseException) -> None:
    global _panics
    with _reg_mu:
        _panics += 1
        handler = _panic_handler
    try:
        handler(g, exc)
    except BaseException:
        _log.exception("goconc: the panic handler failed on goroutine %d", g.id)


# ---------------------------------------------------------------- introspection


def current() -> Goroutine[Any] | None:
    """The goroutine running this code, or None outside goroutines started by ``go()``.

    In a task goroutine, that goroutine; in a thread goroutine, that goroutine
    (also while an asyncio task that is not a goroutine runs in a loop of its
    own on that thread).
    """
    loop = events._get_running_loop()
    if loop is not None:
        task = asyncio.current_task(loop)
        if task is not None:
            g = _by_task.get(task)  # a single dict read: atomic, no lock needed
            if g is not None:
                return g
            g = _tls.starting
            if g is not None and g._task is None:
                return g
    return _tls.g


def num_goroutine() -> int:
    """How many goroutines started by ``go()`` have not finished yet."""
    return len(_registry)


@dataclass(frozen=True, slots=True)
class GoroutineInfo:
    """A snapshot of one live goroutine.

    ``kind`` is ``"thread"`` or ``"task"``; ``state`` is ``"running"``,
    ``"blocked"`` (parked in goconc; ``waiting_on`` says on what, e.g.
    ``"chan receive"``) or ``"done"`` (it finished while the snapshot was
    taken); ``created_at`` is ``"file:line in function"`` of the ``go()``
    call; ``stack`` its current frames formatted as by ``traceback``,
    outermost first.  On a free-threaded build a thread goroutine's stack is
    known only while it is parked in goconc (reading a running thread's frames
    could crash the interpreter there): otherwise it is empty.
    """

    id: int
    name: str
    kind: str
    state: str
    created_at: str
    stack: list[str] = field(default_factory=list)
    waiting_on: str | None = None


class _Snap:
    __slots__ = ("frames", "g", "reason", "state")

    def __init__(
        self,
        g: Goroutine[Any],
        state: str,
        reason: str | None,
        frames: Sequence[_stack.FrameLike],
    ) -> None:
        self.g = g
        self.state = state
        self.reason = reason
        self.frames = frames


_THREAD_STOP: Final = frozenset({_run_thread.__code__})
_RACE_TASK_CODE: Final = _race_task.__code__


def _snapshot() -> list[_Snap]:
    _reap_closed_loops()
    with _reg_mu:
        live = list(_registry.values())
    if _park.FRAMES_UNSAFE:
        return _snapshot_frames_unsafe(live)
    thread_frames = _stack.current_frames() if any(g.kind == "thread" for g in live) else {}
    me = events._get_running_loop()
    my_task = asyncio.current_task(me) if me is not None else None
    out: list[_Snap] = []
    for g in live:
        frames: list[FrameType] = []
        if g.kind == "thread":
            top = thread_frames.get(g._ident) if g._ident else None
            frames = _stack.thread_frames(top, _THREAD_STOP)
        else:
            task = g._task
            if task is not None and task is my_task:
                frames = _running_task_frames(task)
            elif task is not None:
                frames = _stack.coro_frames(task.get_coro())
            if frames and frames[0].f_code is _RACE_TASK_CODE:
                del frames[0]
        reason = _stack.blocked_reason(frames)
        state = "running" if reason is None else "blocked"
        if g._state == _DONE:
            state = "done"
        out.append(_Snap(g, state, reason, frames))
    return out


# How long a snapshot waits for another thread's event loop to read its tasks' frames.
_LOOP_LOOK_TIMEOUT: Final = 1.0


def _snapshot_frames_unsafe(live: list[Goroutine[Any]]) -> list[_Snap]:
    """``_snapshot`` where reading a running thread's frames could crash (free-threaded).

    A thread goroutine's stack is read while it is parked in goconc, holding
    its waiter's claim lock (see ``goconc._park``); a task goroutine's on the
    thread running its loop.  What is read is copied (``FrozenFrame``).  A
    thread goroutine that is not parked, and the tasks of a loop that does not
    answer within a second, show no stack and count as running.
    """
    me = threading.get_ident()
    my_loop = events._get_running_loop()
    my_task = asyncio.current_task(my_loop) if my_loop is not None else None
    found: dict[int, tuple[str | None, list[_stack.FrameLike]]] = {}
    by_loop: dict[asyncio.AbstractEventLoop, list[Goroutine[Any]]] = {}
    for g in live:
        if g.kind == "thread":
            found[g.id] = _parked_thread_frames(g, me)
        elif g._task is not None and g._task is my_task:
            found[g.id] = (None, list(_running_task_frames(g._task, depth=3)))
        elif g._task is not None and g._loop is not None:
            by_loop.setdefault(g._loop, []).append(g)
    for loop, gs in by_loop.items():
        found.update(_task_frames_on(loop, gs, my_loop))
    out: list[_Snap] = []
    for g in live:
        reason, frames = found.get(g.id, (None, []))
        state = "done" if g._state == _DONE else ("running" if reason is None else "blocked")
        out.append(_Snap(g, state, reason, frames))
    return out


def _parked_thread_frames(g: Goroutine[Any], me: int) -> tuple[str | None, list[_stack.FrameLike]]:
    """(what it waits on, its frames) of thread goroutine ``g``, or (None, []) if unknown."""
    if g._ident == me:  # the caller's own frames: always safe
        return None, list(_stack.thread_frames(sys._getframe(), _THREAD_STOP))
    w = g._parked
    if w is None:
        return None, []
    with w._mu:  # nobody can wake the thread meanwhile: it stays in park()
        frame = getattr(w, "frame", None)
        if w.state != _park.WAITING or frame is None or g._parked is not w:
            return None, []
        frames = _stack.thread_frames(frame, _THREAD_STOP)
        reason = getattr(w.op, "reason", None)
        return (
            reason if isinstance(reason, str) and reason else "blocked",
            [_stack.FrozenFrame(f) for f in frames],
        )


def _task_frames_on(
    loop: asyncio.AbstractEventLoop,
    gs: list[Goroutine[Any]],
    my_loop: asyncio.AbstractEventLoop | None,
) -> dict[int, tuple[str | None, list[_stack.FrameLike]]]:
    """What each task goroutine of ``loop`` waits on, and its frames, read on ``loop``'s thread."""

    def read() -> dict[int, tuple[str | None, list[_stack.FrameLike]]]:
        out: dict[int, tuple[str | None, list[_stack.FrameLike]]] = {}
        for g in gs:
            task = g._task
            frames = _stack.coro_frames(task.get_coro()) if task is not None else []
            if frames and frames[0].f_code is _RACE_TASK_CODE:
                del frames[0]
            out[g.id] = (_stack.blocked_reason(frames), [_stack.FrozenFrame(f) for f in frames])
        return out

    if loop is my_loop or not loop.is_running():
        return read()  # on this very thread, or no thread runs those tasks now
    box: list[dict[int, tuple[str | None, list[_stack.FrameLike]]]] = []
    answered = threading.Event()

    def on_loop() -> None:
        try:
            box.append(read())
        finally:
            answered.set()

    try:
        loop.call_soon_threadsafe(on_loop)
    except RuntimeError:  # closed meanwhile
        return {}
    if answered.wait(_LOOP_LOOK_TIMEOUT) and box:
        return box[0]
    return {}


def _running_task_frames(task: asyncio.Task[Any], depth: int = 2) -> list[FrameType]:
    outer = getattr(task.get_coro(), "cr_frame", None)
    frames: list[FrameType] = []
    f: FrameType | None = sys._getframe(depth)
    while f is not None:
        frames.append(f)
        if f is outer:
            break
        f = f.f_back
    frames.reverse()
    return frames


def _reap_closed_loops() -> None:
    """Finish task goroutines whose event loop was closed under them (never to run again)."""
    with _reg_mu:
        dead = [g for g in _registry.values() if g._loop is not None and g._loop.is_closed()]
    for g in dead:
        task = g._task
        if task is not None:
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        g._finish(None, asyncio.CancelledError("goconc: the goroutine's event loop was closed"))


def goroutines() -> list[GoroutineInfo]:
    """A snapshot of every live goroutine, in start order.

    Example::

        for info in runtime.goroutines():
            print(info.id, info.name, info.state, info.waiting_on, info.created_at)
    """
    return [
        GoroutineInfo(
            s.g.id,
            s.g.name,
            s.g.kind,
            s.state,
            s.g.created_at,
            _stack.format_frames(s.frames),
            s.reason,
        )
        for s in _snapshot()
    ]


def dump() -> str:
    """Every live goroutine as text, in the style of a Go goroutine dump.

    ::

        goroutine 7 [chan receive]: worker (thread)
        app.worker(...)
        \t/srv/app.py:12
        created by app.main at /srv/app.py:30
    """
    parts: list[str] = []
    for s in _snapshot():
        g = s.g
        head = s.reason if s.reason is not None else s.state
        lines = [f"goroutine {g.id} [{head}]: {g.name} ({g.kind})"]
        for func, filename, line in _stack.go_frames(s.frames):
            lines.append(f"{func}(...)\n\t{filename}:{line}")
        code = g._code
        if code is not None:
            lines.append(f"created by {code.co_qualname} at {code.co_filename}:{g._line}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + ("\n" if parts else "")


# ---------------------------------------------------------------- statistics


@dataclass(frozen=True, slots=True)
class RuntimeStatistics:
    """The runtime's own figures, as :func:`statistics` reports them under ``"runtime"``.

    ``by_kind`` and ``by_state`` count live goroutines; ``started`` and
    ``panics`` count since the process started; the thread figures describe
    the pool of reusable goroutine threads.
    """

    goroutines: int
    by_kind: Mapping[str, int]
    by_state: Mapping[str, int]
    started: int
    panics: int
    threads_started: int
    threads_reused: int
    idle_threads: int


_stats_mu = threading.Lock()
_sources: dict[str, Callable[[], object]] = {}  # guarded by _stats_mu


def register_statistics(name: str, fn: Callable[[], object]) -> None:
    """Add a statistics source: ``statistics()[name]`` will be ``fn()``.

    ``fn`` returns a frozen dataclass or a dict and must be cheap and
    thread-safe.  Raises ``ValueError`` if ``name`` is taken (``"runtime"``
    is the runtime's own) and ``TypeError`` for a non-callable ``fn``.

    Example::

        runtime.register_statistics("sync.pool", pool_statistics)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    with _stats_mu:
        if name == "runtime" or name in _sources:
            raise ValueError(f"a statistics source named {name!r} is already registered")
        _sources[name] = fn


def unregister_statistics(name: str) -> None:
    """Remove a statistics source; raises ``KeyError`` if there is none of that name."""
    with _stats_mu:
        del _sources[name]


def statistics() -> dict[str, object]:
    """Every registered source's figures by name, plus the runtime's own under ``"runtime"``.

    A source that raises is reported by its exception (and logged), so one
    broken source does not hide the others.
    """
    with _stats_mu:
        sources = list(_sources.items())
    out: dict[str, object] = {"runtime": _runtime_statistics()}
    for name, fn in sources:
        try:
            out[name] = fn()
        except Exception as e:
            _log.exception("goconc: statistics source %r failed", name)
            out[name] = e
    return out


def _runtime_statistics() -> RuntimeStatistics:
    snaps = _snapshot()
    by_kind = {"thread": 0, "task": 0}
    by_state = {"running": 0, "blocked": 0}
    live = 0
    for s in snaps:
        if s.state == "done":
            continue
        live += 1
        by_kind[s.g.kind] += 1
        by_state[s.state] += 1
    with _reg_mu:
        started, panics = _last_id, _panics
    pool = _threads.statistics()
    return RuntimeStatistics(
        live,
        by_kind,
        by_state,
        started,
        panics,
        pool.threads_started,
        pool.threads_reused,
        pool.idle_threads,
    )


def _internal_thread_idents() -> set[int]:
    """OS thread idents the runtime owns and that run no goroutine (idle threads, the loop)."""
    idents = _threads.idle_idents()
    loop = _rloop.loop_ident()
    if loop is not None:
        idents.add(loop)
    return idents
