"""sync.Semaphore: golang.org/x/sync's weighted semaphore, strictly FIFO.

One lock guards the size, the weight held and a FIFO queue of
``goconc._park`` waiters, each carrying its weight.  A release grants
waiters from the front only while the front one fits and stops at the first
that does not: smaller requests behind a large one wait (no barging), so a
writer taking the whole size is not starved by a stream of readers taking 1.
An ``acquire`` succeeds at once only if it fits and nobody is queued.

A waiter that leaves the queue (timeout, context, cancellation) lets the
ones behind it be granted if it was blocking them.  A task cancelled after
its weight was granted, before it resumed, releases the weight again.

Happens-before (goconc.race): ``release`` releases the semaphore; every
successful acquire acquires it.
"""

from __future__ import annotations

import _thread
from time import monotonic
from typing import Final

from .. import _racehooks
from .._park import Ctx, Waiter, WaitQueue, apark, park
from . import _stats
from ._common import SyncError
from ._stats import SemaphoreStatistics

__all__ = ["Semaphore"]


class Semaphore:
    """A weighted semaphore of ``size`` units, FIFO, for threads and asyncio tasks alike.

    ``acquire(n)`` takes ``n`` units, blocking the thread until they are
    free and every earlier waiter has been served; ``await aacquire(n)`` is
    the asyncio form; ``try_acquire(n)`` never blocks (and fails while
    anyone waits); ``release(n)`` gives units back.  Blocking calls take
    ``timeout=`` and ``ctx=`` and, when they fail, leave the semaphore
    unchanged.  As in x/sync, a request for more than ``size`` never enters
    the queue (it would block everyone behind it): it waits for its timeout
    or context and then fails (without either, it waits forever).

    Raises :class:`SyncError` ("semaphore: released more than held") when
    releasing more than is held, leaving the semaphore unchanged.

    Threads::

        sem = sync.Semaphore(4)         # at most 4 units in use
        sem.acquire(timeout=10)
        try:
            fetch(url)
        finally:
            sem.release()

    asyncio::

        await sem.aacquire(2, ctx=ctx)
        try: ...
        finally: sem.release(2)
    """

    __slots__ = (
        "__weakref__",
        "_acquired",
        "_contended",
        "_cur",
        "_mu",
        "_nq",
        "_op",
        "_q",
        "_size",
        "_wait_total",
    )

    def __init__(self, size: int) -> None:
        _check_weight(size, "size")
        self._size = size
        self._mu = _thread.allocate_lock()
        # Guarded by self._mu:
        # - _cur: units held, 0 <= _cur <= _size.
        # - _q/_nq: queued acquires (data = weight, value = start time) and how many are
        #   live; the front one does not fit, or a release is granting it right now.
        self._cur = 0
        self._q = WaitQueue()
        self._nq = 0
        self._acquired = 0
        self._contended = 0
        self._wait_total = 0.0
        self._op = _AcquireOp(self)

    def __repr__(self) -> str:
        return f"<sync.Semaphore {self._cur}/{self._size} waiting={self._nq}>"

    @property
    def size(self) -> int:
        """The total weight."""
        return self._size

    def acquire(self, n: int = 1, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Take ``n`` units, blocking the thread until they are granted (FIFO).

        Raises ``TimeoutError`` after ``timeout`` seconds and ``ctx.err()``
        once ``ctx`` ends (also when it has ended already, even if the units
        are free); nothing is then taken.  ``ValueError`` for a negative ``n``.
        """
        if type(n) is not int or n < 0:
            _check_weight(n, "n")
        free = False
        if timeout is None and ctx is None:
            with self._mu:
                free = self._size - self._cur >= n and not self._nq
                if free:
                    self._cur += n
                    self._acquired += 1
        if not free:
            park(self._op_for(n), timeout, ctx, value=monotonic(), data=n)
        if _racehooks.enabled:
            _racehooks.acquire(self)

    async def aacquire(
        self, n: int = 1, timeout: float | None = None, ctx: Ctx | None = None
    ) -> None:
        """Take ``n`` units from an asyncio task; as :meth:`acquire`.

        If the task is cancelled while waiting, nothing is taken (units
        granted meanwhile are released again) and ``CancelledError``
        propagates.
        """
        if type(n) is not int or n < 0:
            _check_weight(n, "n")
        free = False
        if timeout is None and ctx is None:
            with self._mu:
                free = self._size - self._cur >= n and not self._nq
                if free:
                    self._cur += n
                    self._acquired += 1
        if not free:
            await apark(self._op_for(n), timeout, ctx, value=monotonic(), data=n)
        if _racehooks.enabled:
            _racehooks.acquire(self)

    def try_acquire(self, n: int = 1) -> bool:
        """Take ``n`` units if they are free and nobody waits; never blocks."""
        _check_weight(n, "n")
        with self._mu:
            if self._size - self._cur < n or self._nq:
                return False
            self._cur += n
            self._acquired += 1
        if _racehooks.enabled:
            _racehooks.acquire(self)
        return True

    def release(self, n: int = 1) -> None:
        """Give back ``n`` units and grant the waiters at the front that now fit.

        Raises :class:`SyncError` ("semaphore: released more than held").
        """
        if type(n) is not int or n < 0:
            _check_weight(n, "n")
        if _racehooks.enabled:
            _racehooks.release(self)
        with self._mu:
            if n > self._cur:
                raise SyncError("semaphore: released more than held")
            self._cur -= n
            self._grant()

    def statistics(self) -> SemaphoreStatistics:
        """A snapshot of the semaphore's state and contention counters."""
        with self._mu:
            return SemaphoreStatistics(
                size=self._size,
                held=self._cur,
                waiting=self._nq,
                acquisitions=self._acquired,
                contended=self._contended,
                wait_seconds=self._wait_total,
            )

    def _op_for(self, n: int) -> _AcquireOp | _TooBigOp:
        return self._op if n <= self._size else _TOO_BIG

    def _grant(self) -> None:
        """Under _mu: grant queued acquires from the front while the front one fits."""
        q = self._q
        head = q.peek()
        if head is None:
            return
        now = monotonic()
        waited = 0.0
        granted = 0
        while head is not None:
            w, _, n = head
            if self._size - self._cur < n:
                break
            start = w.value
            if w.complete(True):
                self._nq -= 1
                self._cur += n
                granted += 1
                waited += now - start
            head = q.peek()
        if granted:
            self._acquired += granted
            self._contended += granted
            self._wait_total += waited
            _stats.add("semaphore_contended", granted, "semaphore_wait_seconds", waited)


class _AcquireOp:
    """An acquire of at most ``size`` units (the Op); ``w.data`` is the weight."""

    __slots__ = ("sem",)

    reason = "sync.Semaphore.Acquire"

    def __init__(self, sem: Semaphore) -> None:
        self.sem = sem

    def begin(self, w: Waiter) -> bool:
        s = self.sem
        n = w.data
        with s._mu:
            if s._size - s._cur >= n and not s._nq:
                s._cur += n
                s._acquired += 1
                return True
            s._q.push(w, 0, n)
            s._nq += 1
            return False

    def abort(self, w: Waiter) -> None:
        s = self.sem
        with s._mu:
            s._nq -= 1
            s._q.discard(w)
            s._grant()  # if it was the front one, the next ones may fit now

    def undo(self, w: Waiter) -> None:
        self.sem.release(w.data)  # granted, but cancelled before resuming


class _TooBigOp:
    """An acquire of more than ``size``: never queued, it can only time out or be cancelled."""

    __slots__ = ()

    reason = "sync.Semaphore.Acquire"

    def begin(self, w: Waiter) -> bool:
        return False

    def abort(self, w: Waiter) -> None:
        pass

    def undo(self, w: Waiter) -> None:
        pass


_TOO_BIG: Final = _TooBigOp()


def _check_weight(n: object, name: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} must be >= 0, got {n}")
