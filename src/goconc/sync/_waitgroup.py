"""sync.WaitGroup: wait for a collection of goroutines to finish.

A counter and a queue of ``goconc._park`` waiters under one lock.  When the
counter reaches zero every waiter is released in the same critical section,
so a WaitGroup may be reused for a new batch as soon as the counter is zero:
the waiters of the previous batch have already been released and cannot be
confused with the next one.  (Go detects "WaitGroup is reused before previous
Wait has returned" because its waiters re-check a shared state word when they
wake; here they do not, so that misuse cannot happen.)  Go's other rule still
matters for correctness: an ``add`` that starts a batch (from zero) must
happen before the ``wait`` that is meant to wait for it.

Happens-before (goconc.race): ``done``/``add`` release the WaitGroup; a
``wait`` that returns acquires it.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from .. import _racehooks
from .._park import Ctx, Waiter, WaitQueue, apark, park
from . import _stats
from ._common import SyncError
from ._stats import WaitGroupStatistics

if TYPE_CHECKING:
    from ..runtime import Goroutine

__all__ = ["WaitGroup"]


class WaitGroup:
    """Go's ``sync.WaitGroup``, for threads and asyncio tasks alike.

    ``add(n)`` adds to the counter, ``done()`` subtracts one, ``wait()``
    blocks the thread (``await wait_async()`` the task) until the counter is
    zero.  ``go(fn, *args)`` (Go 1.25) adds one, starts ``fn`` as a
    goroutine and calls ``done`` when it returns.  Waits take ``timeout=``
    and ``ctx=``.  Raises :class:`SyncError` ("sync: negative WaitGroup
    counter") when the counter would go below zero, leaving it unchanged.

    Threads::

        wg = sync.WaitGroup()
        for url in urls:
            wg.go(fetch, url)
        wg.wait(timeout=10)

    asyncio::

        wg = sync.WaitGroup()
        for url in urls:
            wg.go(afetch, url)        # a coroutine function: a task
        await wg.wait_async(timeout=10)
    """

    __slots__ = ("__weakref__", "_mu", "_n", "_op", "_q", "_waiting", "_waits")

    def __init__(self) -> None:
        self._mu = _thread.allocate_lock()
        # Guarded by self._mu:
        # - _n: the counter, >= 0.
        # - _q/_waiting: blocked waiters and how many are live (not yet completed or
        #   aborted); all are completed when _n reaches 0.
        # - _waits: waits that blocked and were released.
        self._n = 0
        self._q = WaitQueue()
        self._waiting = 0
        self._waits = 0
        self._op = _WaitOp(self)

    def __repr__(self) -> str:
        return f"<sync.WaitGroup count={self._n} waiters={self._waiting}>"

    def add(self, delta: int) -> None:
        """Add ``delta`` (which may be negative) to the counter.

        At zero, every waiter is released.  Raises :class:`SyncError` if the
        counter would become negative, ``TypeError`` for a non-int.
        """
        if type(delta) is not int and (not isinstance(delta, int) or isinstance(delta, bool)):
            raise TypeError(f"delta must be an int, got {type(delta).__name__}")
        if delta < 0 and _racehooks.enabled:
            _racehooks.release(self)
        with self._mu:
            n = self._n + delta
            if n < 0:
                raise SyncError("sync: negative WaitGroup counter")
            self._n = n
            if n == 0 and self._waiting:
                self._release_waiters()

    def _release_waiters(self) -> None:
        """Under _mu, at zero: complete every live waiter."""
        now = monotonic()
        waited = 0.0
        n = 0
        q = self._q
        head = q.peek()
        while head is not None:
            w = head[0]
            if w.complete(True):
                n += 1
                waited += now - w.data
            head = q.peek()
        self._waiting -= n
        self._waits += n
        _stats.add("waitgroup_waits", n, "waitgroup_wait_seconds", waited)

    def done(self) -> None:
        """Subtract one from the counter (``add(-1)``)."""
        self.add(-1)

    def go(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Goroutine[Any]:
        """Add one, run ``fn(*args, **kwargs)`` as a goroutine, and call ``done`` when it ends.

        A coroutine function becomes a task, anything else runs on a
        goroutine thread (``goconc.runtime.go``).  ``done`` is called however
        ``fn`` ends; an exception it raises goes to the runtime's panic
        handler (logged, never silent) and to the returned handle's
        ``join``.  (Go 1.26 crashes the program instead; a Python program
        goes on, and a group that never reached zero would hang its waiters.)
        """
        from .. import runtime

        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.add(1)
        try:
            run = self._run_async if runtime._is_coroutine_function(fn) else self._run
            return runtime.go_named(runtime._name_of(fn), run, fn, args, kwargs)
        except BaseException:
            self.done()
            raise

    def _run(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            self.done()

    async def _run_async(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        finally:
            self.done()

    def wait(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Block the thread until the counter is zero.

        Raises ``TimeoutError`` after ``timeout`` seconds and ``ctx.err()``
        once ``ctx`` ends.
        """
        if timeout is not None or ctx is not None or self._n:  # else: already zero
            park(self._op, timeout, ctx, data=monotonic())
        if _racehooks.enabled:
            _racehooks.acquire(self)

    async def wait_async(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Suspend the task until the counter is zero; as :meth:`wait`."""
        if timeout is not None or ctx is not None or self._n:  # else: already zero
            await apark(self._op, timeout, ctx, data=monotonic())
        if _racehooks.enabled:
            _racehooks.acquire(self)

    def statistics(self) -> WaitGroupStatistics:
        """A snapshot: the counter, the waiters blocked now, the waits that blocked."""
        with self._mu:
            return WaitGroupStatistics(count=self._n, waiters=self._waiting, waits=self._waits)


class _WaitOp:
    """``wait``/``wait_async`` as an Op; ``w.data`` is when the wait began."""

    __slots__ = ("wg",)

    reason = "sync.WaitGroup.Wait"

    def __init__(self, wg: WaitGroup) -> None:
        self.wg = wg

    def begin(self, w: Waiter) -> bool:
        wg = self.wg
        with wg._mu:
            if wg._n == 0:
                return True
            wg._q.push(w)
            wg._waiting += 1
        return False

    def abort(self, w: Waiter) -> None:
        wg = self.wg
        with wg._mu:
            wg._waiting -= 1
            wg._q.discard(w)

    def undo(self, w: Waiter) -> None:
        """A wait consumes nothing: there is nothing to give back."""
