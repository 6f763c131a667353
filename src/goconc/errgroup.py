"""errgroup: run functions concurrently, keep the first error, cancel the rest.

Go's ``golang.org/x/sync/errgroup`` for threads and asyncio tasks, with the
improvements go-kratos made to it:

* an exception raised inside a function never escapes to the program (nor to
  the runtime's panic handler): it becomes that function's error, with its
  traceback (``err.__traceback__``);
* the first error cancels the group's context, with that error as the cause
  (``context.cause(g.ctx) is err``), so the other functions can stop early;
* a function that needs the context is given it explicitly
  (``g.go(fetch, g.ctx, url)``), so nobody captures a stale one;
* ``set_limit(n)`` bounds how many functions run at once, so a loop over a
  million inputs does not start a million goroutines.

Threads::

    g, ctx = errgroup.with_context(parent)
    for url in urls:
        g.go(fetch, ctx, url)          # a plain function: runs on a goroutine thread
    if (err := g.wait()) is not None:
        ...

asyncio::

    async with errgroup.Group() as g:  # raises the first error on exit
        for url in urls:
            g.go(afetch, g.ctx, url)   # a coroutine function: a task on this loop

Design note: the group's state is one lock, a count of active functions and
two wait queues of the waiter (``goconc._park``): callers of ``go`` waiting for
a slot under the limit, and callers of ``wait`` waiting for the count to reach
zero.  A finishing function hands its slot to the oldest ``go`` waiting, so
the limit is never exceeded and never left unused.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import _racehooks
from . import context as _context
from . import runtime as _runtime
from ._park import Waiter, WaitQueue, apark, park
from .runtime import _is_coroutine_function

__all__ = ["Group", "GroupStatistics", "with_context"]


@dataclass(frozen=True)
class GroupStatistics:
    """A snapshot of a group (see :meth:`Group.statistics`)."""

    active: int  # functions started and not yet finished
    limit: int  # the limit set by set_limit; -1 when there is none
    go_waiting: int  # callers of go/ago waiting for a slot (an upper bound)
    failed: bool  # whether a function has failed


class Group:
    """A set of functions run concurrently, whose first error is kept.

    ``Group(ctx=None)`` derives the group's context ``g.ctx`` from ``ctx``
    (``context.background()`` when None).  ``g.ctx`` is cancelled the first
    time a function fails, with that error as its cause, or when ``wait``
    returns, whichever comes first.

    A group may be used from threads and asyncio tasks at once; ``go`` may be
    called from inside the group's own functions.  Like Go's, a group is meant
    for one batch of work: once waited, its context is cancelled.

    Used as a context manager (``with Group() as g:`` or ``async with``), the
    exit waits for every function.  If the block raised, the group's context
    is cancelled first (with that exception as the cause), the functions are
    waited for, and the block's exception propagates; otherwise the first
    function error, if any, is raised.
    """

    def __init__(self, ctx: _context.Context | None = None) -> None:
        parent = _context.background() if ctx is None else ctx
        self.ctx, self._cancel = _context.with_cancel_cause(parent)
        self._mu = threading.Lock()
        # Guarded by self._mu:
        # - _err: the first function error; set once, never replaced.
        # - _active: functions started (a slot taken) and not yet finished.
        # - _limit: at most this many active; -1 means no limit.  Changes only while
        #   _active == 0.
        # - _slotq: go/ago callers waiting for a slot; live entries only while the
        #   limit is reached (a finishing function hands its slot to the oldest).
        # - _idleq: wait/wait_async callers; live entries only while _active > 0.
        self._err: BaseException | None = None
        self._active = 0
        self._limit = -1
        self._slotq = WaitQueue()
        self._idleq = WaitQueue()
        self._slot_op = _SlotOp(self)
        self._idle_op = _IdleOp(self)

    def __repr__(self) -> str:
        s = self.statistics()
        return f"<errgroup.Group active={s.active} limit={s.limit} failed={s.failed}>"

    # -- starting functions ----------------------------------------------------------

    def go(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Call ``fn(*args, **kwargs)`` in a new goroutine.

        A coroutine function runs as a task (on the running event loop, or on
        the runtime's loop when called from a plain thread); any other
        callable runs on a goroutine thread.  Whatever ``fn`` raises becomes
        its error; the first one is kept and cancels ``self.ctx``.

        Blocks while the limit is reached, until a running function finishes
        (its slot goes to the oldest waiting ``go``).  That wait takes no
        ``timeout=``/``ctx=``, as every keyword goes to ``fn``; use
        :meth:`try_go` to start only if a slot is free.  Inside a running event
        loop it cannot block: there it raises ``RuntimeError`` when the limit
        is reached (use ``await g.ago(...)``).
        """
        _check_callable(fn)
        if _running_loop() is None:
            park(self._slot_op)
        elif not self._take_slot():
            raise RuntimeError(
                "errgroup: go() at the limit would block the event loop; use await g.ago(...)"
            )
        self._start(fn, args, kwargs)

    async def ago(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """The asyncio form of :meth:`go`: waits for a slot without blocking the loop."""
        _check_callable(fn)
        await apark(self._slot_op)
        self._start(fn, args, kwargs)

    def try_go(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> bool:
        """Start ``fn`` as :meth:`go` does only if a slot is free now; never blocks.

        Returns whether ``fn`` was started.
        """
        _check_callable(fn)
        if not self._take_slot():
            return False
        self._start(fn, args, kwargs)
        return True

    def set_limit(self, n: int) -> None:
        """Let at most ``n`` functions run at once; a negative ``n`` removes the limit.

        With ``n == 0`` every ``go`` blocks and every ``try_go`` fails.
        Raises ``RuntimeError`` if functions of the group are still active (as
        Go panics), ``TypeError`` if ``n`` is not an int.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"set_limit: n must be an int, got {type(n).__name__}")
        with self._mu:
            if self._active:
                raise RuntimeError(
                    f"errgroup: modify limit while {self._active} goroutines "
                    "in the group are still active"
                )
            self._limit = -1 if n < 0 else n
            self._grant_locked()

    # -- waiting ---------------------------------------------------------------------

    def wait(
        self, timeout: float | None = None, *, ctx: _context.Context | None = None
    ) -> BaseException | None:
        """Block until every function started so far has finished.

        Returns the first error (None if none failed) and cancels
        ``self.ctx``.  Raises ``TimeoutError`` after ``timeout`` seconds or
        ``ctx.err()`` once ``ctx`` ends; then the functions keep running and
        the group's context is left as it was.  Raises ``RuntimeError`` when
        called with functions still active from a thread running an event
        loop, which it would block (use ``await g.wait_async()``).
        """
        if _running_loop() is not None and self.statistics().active:
            raise RuntimeError("errgroup: wait() would block the event loop; use wait_async()")
        park(self._idle_op, timeout, ctx)
        return self._finish()

    async def wait_async(
        self, timeout: float | None = None, *, ctx: _context.Context | None = None
    ) -> BaseException | None:
        """The asyncio form of :meth:`wait`."""
        await apark(self._idle_op, timeout, ctx)
        return self._finish()

    def __enter__(self) -> Group:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._cancel(exc)
            park(self._idle_op)
            self._finish()
            return
        err = self.wait()
        if err is not None:
            raise err

    async def __aenter__(self) -> Group:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._cancel(exc)
            await apark(self._idle_op)
            self._finish()
            return
        err = await self.wait_async()
        if err is not None:
            raise err

    def statistics(self) -> GroupStatistics:
        """A snapshot of the group's counters."""
        with self._mu:
            return GroupStatistics(
                active=self._active,
                limit=self._limit,
                go_waiting=len(self._slotq),
                failed=self._err is not None,
            )

    # -- internals -------------------------------------------------------------------

    def _take_slot(self) -> bool:
        with self._mu:
            if self._limit >= 0 and self._active >= self._limit:
                return False
            self._active += 1
            return True

    def _start(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Run ``fn`` in a goroutine; the caller has taken a slot for it."""
        if _racehooks.enabled and self._limit >= 0:
            _racehooks.acquire(self)  # a freed slot: the k-th end before the (k+limit)-th start
        try:
            run = self._run_async if _is_coroutine_function(fn) else self._run
            _runtime.go_named(_describe(fn), run, fn, args, kwargs)
        except BaseException:
            self._done()
            raise

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                _discard(result)
                raise TypeError(
                    f"errgroup: {_describe(fn)} returned an awaitable; "
                    "pass a coroutine function (async def) to run it as a task"
                )
        except BaseException as e:
            self._fail(e)
        finally:
            self._done()

    async def _run_async(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            await fn(*args, **kwargs)
        except BaseException as e:  # CancelledError too: the function did not complete
            self._fail(e)
        finally:
            self._done()

    def _fail(self, err: BaseException) -> None:
        with self._mu:
            first = self._err is None
            if first:
                self._err = err
        if first:
            self._cancel(err)

    def _done(self) -> None:
        """A function has finished: give its slot on, wake waiters if none is left."""
        if _racehooks.enabled:
            _racehooks.release(self)
        with self._mu:
            self._active -= 1
            self._grant_locked()
            if self._active == 0:
                self._idleq.wake_all()

    def _grant_locked(self) -> None:
        while self._limit < 0 or self._active < self._limit:
            if self._slotq.wake_first() is None:
                return
            self._active += 1

    def _finish(self) -> BaseException | None:
        if _racehooks.enabled:
            _racehooks.acquire(self)
        with self._mu:
            err = self._err
        self._cancel(err)
        return err


def with_context(parent: _context.Context | None = None) -> tuple[Group, _context.Context]:
    """Return a new group and its context ``ctx`` (also ``group.ctx``), derived from ``parent``.

    ``ctx`` is cancelled the first time a function of the group fails (with
    that error as its cause) or when ``wait`` returns.

    ::

        g, ctx = errgroup.with_context(parent)
        g.go(serve, ctx)
        g.go(watch, ctx)
        err = g.wait()
    """
    g = Group(parent)
    return g, g.ctx


class _SlotOp:
    """go/ago waiting for a slot under the limit; a granted waiter holds one."""

    reason = "errgroup go (limit reached)"

    def __init__(self, g: Group) -> None:
        self._g = g

    def begin(self, w: Waiter) -> bool:
        g = self._g
        with g._mu:
            if g._limit < 0 or g._active < g._limit:
                g._active += 1
                return True
            g._slotq.push(w)
            return False

    def abort(self, w: Waiter) -> None:
        with self._g._mu:
            self._g._slotq.discard(w)

    def undo(self, w: Waiter) -> None:
        # Granted a slot, but the task was cancelled before it could start fn.
        self._g._done()


class _IdleOp:
    """wait/wait_async: until no function of the group is active."""

    reason = "errgroup wait"

    def __init__(self, g: Group) -> None:
        self._g = g

    def begin(self, w: Waiter) -> bool:
        g = self._g
        with g._mu:
            if g._active == 0:
                return True
            g._idleq.push(w)
            return False

    def abort(self, w: Waiter) -> None:
        with self._g._mu:
            self._g._idleq.discard(w)

    def undo(self, w: Waiter) -> None:
        pass  # nothing was taken


def _running_loop() -> asyncio.AbstractEventLoop | None:
    return asyncio.events._get_running_loop()


def _check_callable(fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"errgroup: fn must be callable, got {type(fn).__name__}")


def _describe(fn: Callable[..., Any]) -> str:
    """A name for ``fn``'s goroutine: its qualified name (a partial's function's)."""
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str):
        return name
    inner = getattr(fn, "func", None)
    return _describe(inner) if callable(inner) else type(fn).__qualname__


def _discard(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # a coroutine never awaited: close it so that no warning is left behind
