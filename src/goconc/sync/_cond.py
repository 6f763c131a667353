"""sync.Cond: a condition variable over a Locker, for threads and tasks alike.

A FIFO queue of ``goconc._park`` waiters under the Cond's own lock.  ``wait``
enqueues its waiter *before* unlocking ``L`` (inside the Op's ``begin``), so
a ``signal`` made after the caller's check of the condition, even before the
caller has parked, reaches it: no wake-up is lost.  ``signal`` wakes the
oldest waiter, ``broadcast`` all of them; there are no spurious wake-ups.

Happens-before (goconc.race): ``signal``/``broadcast`` release the Cond and a
woken ``wait`` acquires it (besides the edges of re-locking ``L``).
"""

from __future__ import annotations

import _thread
import asyncio
from typing import Any

from .. import _racehooks
from .._park import CANCELLED, Ctx, Waiter, WaitQueue, apark, park
from . import _stats
from ._mutex import Mutex
from ._stats import CondStatistics

__all__ = ["Cond"]


class Cond:
    """Go's ``sync.Cond``: wait for a condition guarded by a lock.

    ``Cond(L)`` takes the Locker that guards the condition: a :class:`Mutex`
    (the default, created when ``L`` is None), an :class:`RWMutex`, an
    ``rlocker()``, or anything with ``lock()``/``unlock()`` or
    ``acquire()``/``release()`` (``threading.Lock``).  ``wait_async``
    needs a Locker with ``alock()`` (goconc's).

    ``wait()`` must be called with ``L`` locked: it unlocks ``L``, waits for
    ``signal``/``broadcast``, and locks ``L`` again before returning (also
    when it raises ``TimeoutError``, ``ctx.err()`` or ``CancelledError``).
    Wake-ups are FIFO and never spurious, but the condition may have changed
    again by the time ``L`` is re-locked: test it in a loop, as in Go.

    Threads::

        mu = sync.Mutex()
        ready = sync.Cond(mu)
        with mu:
            while not queue:
                ready.wait(timeout=5)
            item = queue.pop()

    asyncio::

        async with mu:
            while not queue:
                await ready.wait_async(timeout=5)
            item = queue.pop()
    """

    __slots__ = (
        "L",
        "__weakref__",
        "_broadcasts",
        "_lock",
        "_mu",
        "_n",
        "_q",
        "_signals",
        "_unlock",
        "_waits",
    )

    def __init__(self, L: Any = None) -> None:
        if L is None:
            L = Mutex()
        lock = getattr(L, "lock", None) or getattr(L, "acquire", None)
        unlock = getattr(L, "unlock", None) or getattr(L, "release", None)
        if not callable(lock) or not callable(unlock):
            raise TypeError(
                f"L must be a Locker (lock/unlock or acquire/release), got {type(L).__name__}"
            )
        self.L = L
        self._lock = lock
        self._unlock = unlock
        self._mu = _thread.allocate_lock()
        # Guarded by self._mu: the waiters (oldest first) and how many are live.
        self._q = WaitQueue()
        self._n = 0
        self._waits = 0
        self._signals = 0
        self._broadcasts = 0

    def __repr__(self) -> str:
        return f"<sync.Cond waiters={self._n} L={self.L!r}>"

    def wait(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Unlock ``L``, block the thread until signalled, lock ``L`` again.

        Raises ``TimeoutError`` after ``timeout`` seconds and ``ctx.err()``
        once ``ctx`` ends, in both cases with ``L`` locked again.
        """
        op = _WaitOp(self)
        try:
            park(op, timeout, ctx)
        finally:
            if op.unlocked:
                self._lock()
        if _racehooks.enabled:
            _racehooks.acquire(self)

    async def wait_async(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """The asyncio form of :meth:`wait`; ``L`` must offer ``alock()``.

        If the task is cancelled, ``L`` is locked again before
        ``CancelledError`` propagates, and a signal it had received is
        passed on to the next waiter.
        """
        alock = getattr(self.L, "alock", None)
        if alock is None:
            raise TypeError(f"wait_async needs a Locker with alock(), not {type(self.L).__name__}")
        op = _WaitOp(self)
        try:
            await apark(op, timeout, ctx)
        finally:
            if op.unlocked:
                await _relock(alock)
        if _racehooks.enabled:
            _racehooks.acquire(self)

    def signal(self) -> None:
        """Wake the oldest waiting ``wait``, if any.  ``L`` need not be held."""
        if _racehooks.enabled:
            _racehooks.release(self)
        with self._mu:
            self._signals += 1
            if self._n and self._q.wake_first() is not None:
                self._n -= 1
                self._waits += 1
                _stats.add("cond_waits", 1)

    def broadcast(self) -> None:
        """Wake every waiting ``wait``.  ``L`` need not be held."""
        if _racehooks.enabled:
            _racehooks.release(self)
        with self._mu:
            self._broadcasts += 1
            if self._n:
                n = self._q.wake_all()
                self._n -= n
                self._waits += n
                _stats.add("cond_waits", n)

    def statistics(self) -> CondStatistics:
        """A snapshot: waiters now, waits woken, signals and broadcasts made."""
        with self._mu:
            return CondStatistics(
                waiters=self._n,
                waits=self._waits,
                signals=self._signals,
                broadcasts=self._broadcasts,
            )


class _WaitOp:
    """One ``wait``: queue, then unlock ``L`` (the Op)."""

    __slots__ = ("cond", "unlocked")

    reason = "sync.Cond.Wait"

    def __init__(self, cond: Cond) -> None:
        self.cond = cond
        self.unlocked = False  # L was unlocked by this wait (and must be locked again)

    def begin(self, w: Waiter) -> bool:
        c = self.cond
        with c._mu:
            c._q.push(w)
            c._n += 1
        try:
            c._unlock()  # after queueing: a signal from now on reaches this waiter
        except BaseException:  # L was not locked: leave no trace of this wait
            if w.interrupt(CANCELLED):
                self.abort(w)
            else:
                c.signal()  # signalled meanwhile: pass it on
            raise
        self.unlocked = True
        return False

    def abort(self, w: Waiter) -> None:
        c = self.cond
        with c._mu:
            c._n -= 1
            c._q.discard(w)

    def undo(self, w: Waiter) -> None:
        self.cond.signal()  # signalled, but cancelled before resuming: pass the signal on


async def _relock(alock: Any) -> None:
    """Lock again even if the task is cancelled meanwhile; re-raise the cancellation after."""
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await alock()
            break
        except asyncio.CancelledError as e:
            cancelled = e
    if cancelled is not None:
        raise cancelled
