"""sync.Mutex: Go's mutual exclusion lock, with normal and starvation mode.

Mutex fairness
--------------
The mutex works in two modes, as Go's has since Go 1.9.

*Normal mode* favours throughput.  Waiters queue in FIFO order, but an unlock
does not give the lock to the oldest waiter: it releases the lock and wakes
that waiter, which then competes with any thread or task that calls ``lock``
meanwhile.  The running newcomer usually wins (it needs no wake-up), and the
woken waiter that loses goes back to the *front* of the queue.

*Starvation mode* bounds waiting.  An unlock hands the lock directly to the
oldest waiter, which owns it before it even runs; newcomers do not try to
take the lock and queue at the back.  The mutex enters starvation mode when
a waiter has waited more than 1 ms, and leaves it when the waiter that
receives the lock is the last one or has waited less than 1 ms.

The 1 ms bound is checked where it is cheapest and earliest: by the unlock,
which sees the oldest waiter's start time.  Under CPython a woken waiter
always loses its first race (the unlocking thread re-locks before the woken
one is even scheduled), so checking only the time already waited would
charge every waiter one extra full hold of the lock before the bound applies.
The unlock therefore also hands over when the oldest waiter *would* pass
1 ms by losing once more: when its wait so far plus the length of the hold
now ending exceeds 1 ms.  Short critical sections (the common case) keep
normal mode's barging; long ones (around a millisecond or more) are served
in FIFO order, which costs one wake-up per hold, small against the hold.
Spinning (retrying without parking) is not used: under the GIL the holder
cannot release the lock while a spinner runs, so it only burns time; on a
free-threaded build, 10 to 1000 retries before parking did not raise the
throughput of four contending threads either (measured).

Design
------
``_held`` is a plain thread lock whose state *is* the mutex's locked bit: the
uncontended ``lock`` is one non-blocking acquire of it and the uncontended
``unlock`` one release, with no other lock taken.  Everything else is
guarded by ``_mu``: the queue of parked lock attempts (``goconc._park``
waiters, threads and tasks alike), ``_nwait`` (how many are queued),
``_woken`` (a waiter woken in normal mode is on its way), ``_starving``.

The fast ``unlock`` must not miss a waiter that queues while it releases:
a lock attempt increments ``_nwait`` *before* its non-blocking acquire, and
the unlock reads ``_nwait`` *after* releasing; so either the attempt's acquire
sees the lock free, or the unlock sees the waiter and wakes it (the lock
operations on ``_held`` are full memory barriers).  In starvation mode
``_held`` is never released while waiters queue (the lock changes hands
held), so the fast paths need not know the mode.

A Mutex is not owned by a thread or task: any of them may unlock it (as in
Go).  A task cancelled after the lock was handed to it, before it resumed,
unlocks it again (passing it on), and a woken waiter that leaves gives its
turn to the next, so cancellation never strands the mutex.

Happens-before (goconc.race): ``unlock`` releases the mutex; every
successful ``lock``/``alock``/``try_lock`` acquires it.
"""

from __future__ import annotations

import _thread
from time import monotonic
from typing import Final, cast

from .. import _racehooks
from .._park import Ctx, Waiter, WaitQueue, apark, park
from . import _stats
from ._common import Deadline, LockContext, SyncError
from ._stats import MutexStatistics

__all__ = ["Mutex"]

#: A waiter that has waited longer than this makes the mutex hand over the lock.
STARVATION_THRESHOLD: Final = 1e-3

# What a lock attempt's waiter holds in ``value`` when park returns:
_ACQUIRED: Final = 0  # it took the free lock itself
_HANDOFF: Final = 1  # an unlock handed it the lock (still held): it owns the mutex
_WOKEN: Final = 2  # normal mode: an unlock released the lock and woke it to compete


class Mutex(LockContext):
    """A mutual exclusion lock for threads and asyncio tasks alike.

    ``lock()`` blocks the calling thread, ``await alock()`` suspends the
    calling task; both take ``timeout=`` (raise ``TimeoutError``) and
    ``ctx=`` (raise ``ctx.err()``), and a wait that fails leaves the mutex
    as if it had never been tried.  ``unlock()`` never blocks and may be
    called from any thread or task, not only the one that locked (as in
    Go).  Not reentrant: locking a mutex one already holds waits forever
    (use ``timeout=``).  Fairness: see the module documentation (Go's
    normal and starvation modes; no waiter is passed over for more than
    about 1 ms).

    Raises :class:`SyncError` ("sync: unlock of unlocked mutex") when
    unlocking a mutex that is not locked.

    Threads::

        mu = sync.Mutex()
        with mu:
            balance += amount

    asyncio::

        async with mu:
            balance += amount
        await mu.alock(timeout=1.0)
        try: ...
        finally: mu.unlock()
    """

    __slots__ = (
        "__weakref__",
        "_contended",
        "_handoffs",
        "_held",
        "_hold_n",
        "_hold_since",
        "_mu",
        "_n",
        "_nwait",
        "_q",
        "_starvations",
        "_starving",
        "_wait_total",
        "_woken",
    )

    def __init__(self) -> None:
        # Acquired exactly while the mutex is locked (or being handed over).
        self._held = _thread.allocate_lock()
        # Written only by the mutex's current owner: acquisitions so far.
        self._n = 0
        self._mu = _thread.allocate_lock()
        # Guarded by self._mu:
        # - _q: parked lock attempts, oldest first (a woken one that lost is put back in front).
        # - _nwait: attempts in _q not yet completed or aborted; read without _mu by unlock.
        # - _woken: an attempt completed with _WOKEN has not come back to try yet; no
        #   other is woken meanwhile (Go's mutexWoken).
        # - _starving: starvation mode; only while attempts queue, and then _held stays held.
        # - _hold_n/_hold_since: when the hold that was the _hold_n-th acquisition began
        #   (or a lower bound, noted by the first waiter that saw it).
        self._q = WaitQueue()
        self._nwait = 0
        self._woken = False
        self._starving = False
        self._hold_n = -1
        self._hold_since = 0.0
        self._contended = 0
        self._wait_total = 0.0
        self._handoffs = 0
        self._starvations = 0

    def __repr__(self) -> str:
        state = "locked" if self._held.locked() else "unlocked"
        mode = " starving" if self._starving else ""
        return f"<sync.Mutex {state}{mode} waiting={self._nwait}>"

    # -- locking -------------------------------------------------------------------------

    def lock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Lock the mutex, blocking the calling thread until it is available.

        Raises ``TimeoutError`` after ``timeout`` seconds and ``ctx.err()``
        once ``ctx`` ends (also when it has ended already); the mutex is then
        not locked by this call.
        """
        if timeout is None and ctx is None and self._held.acquire(False):
            self._n += 1
            if _racehooks.enabled:
                _racehooks.acquire(self)
            return
        attempt = _LockAttempt(self, timeout)
        try:
            while park(attempt, attempt.remaining(), ctx).value == _WOKEN:
                pass
        except BaseException:
            attempt.give_up()
            raise
        if _racehooks.enabled:
            _racehooks.acquire(self)

    async def alock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Lock the mutex from an asyncio task, suspending it until it is available.

        As :meth:`lock`.  If the task is cancelled while waiting, the mutex is
        not locked by this call (a lock handed to it meanwhile is passed on)
        and ``CancelledError`` propagates.  An available mutex is taken
        without yielding to the event loop.
        """
        if timeout is None and ctx is None and self._held.acquire(False):
            self._n += 1
            if _racehooks.enabled:
                _racehooks.acquire(self)
            return
        attempt = _LockAttempt(self, timeout)
        try:
            while (await apark(attempt, attempt.remaining(), ctx)).value == _WOKEN:
                pass
        except BaseException:
            attempt.give_up()
            raise
        if _racehooks.enabled:
            _racehooks.acquire(self)

    def try_lock(self) -> bool:
        """Lock the mutex if it is free now; never blocks.

        Returns False if it is locked, or in starvation mode (the lock then
        belongs to the waiters), as Go's ``TryLock``.
        """
        if self._held.acquire(False):
            self._n += 1
            if _racehooks.enabled:
                _racehooks.acquire(self)
            return True
        return False

    def unlock(self) -> None:
        """Unlock the mutex; never blocks.  May be called from any thread or task.

        Raises :class:`SyncError` ("sync: unlock of unlocked mutex") if the
        mutex is not locked.
        """
        if _racehooks.enabled:
            _racehooks.release(self)
        if not self._nwait:
            try:
                self._held.release()
            except RuntimeError:
                raise SyncError("sync: unlock of unlocked mutex") from None
            if self._nwait:  # a waiter queued while we released: see the module notes
                self._wake_after_release()
            return
        with self._mu:
            if not self._held.locked():
                raise SyncError("sync: unlock of unlocked mutex")
            self._pass_on(monotonic())

    def statistics(self) -> MutexStatistics:
        """A snapshot of the mutex's state and contention counters."""
        with self._mu:
            return MutexStatistics(
                locked=self._held.locked(),
                starving=self._starving,
                waiting=self._nwait,
                acquisitions=self._n,
                contended=self._contended,
                wait_seconds=self._wait_total,
                handoffs=self._handoffs,
                starvation_entries=self._starvations,
            )

    # -- the slow paths, all under self._mu ----------------------------------------------

    def _wake_after_release(self) -> None:
        with self._mu:
            # Take the lock back on the waiters' behalf if it is still free; if
            # someone took it meanwhile, their unlock will see the waiters.
            if self._nwait and self._held.acquire(False):
                self._pass_on(monotonic())

    def _pass_on(self, now: float) -> None:
        """Give up the held ``_held``: hand it to the oldest waiter, or release and wake one."""
        if self._nwait:
            head = self._q.peek()
            if (
                head is not None
                and (self._starving or self._overdue(cast(_LockAttempt, head[0].op), now))
                and self._hand_off(now)
            ):
                return
        self._held.release()
        if self._nwait and not self._woken:
            woken = self._wake(_WOKEN)
            if woken is not None:
                woken.woken = True
                self._woken = True

    def _overdue(self, attempt: _LockAttempt, now: float) -> bool:
        """Whether the oldest waiter has waited, or would by losing once more, over 1 ms."""
        waited = now - attempt.start
        if waited > STARVATION_THRESHOLD:
            return True
        hold = now - self._hold_since if self._hold_n == self._n else 0.0
        return waited + hold > STARVATION_THRESHOLD

    def _hand_off(self, now: float) -> bool:
        """Give the held mutex to the oldest live waiter; False if there is none."""
        attempt = self._wake(_HANDOFF)
        if attempt is None:
            return False
        waited = now - attempt.start
        if not self._starving:
            self._starving = True
            self._starvations += 1
            _stats.add("mutex_starvation_entries", 1)
        if not self._nwait or waited < STARVATION_THRESHOLD:
            self._starving = False  # Go: the new owner ends starvation mode
        self._handoffs += 1
        self._n += 1  # the new owner's acquisition (the mutex stays held throughout)
        self._hold_n = self._n
        self._hold_since = now
        self._note_wait(waited)
        _stats.add("mutex_handoffs", 1)
        return True

    def _wake(self, value: int) -> _LockAttempt | None:
        """Complete the oldest live waiter with ``value``; return its attempt."""
        q = self._q
        head = q.peek()
        while head is not None:
            w = head[0]
            if w.complete(value):
                self._nwait -= 1
                return cast(_LockAttempt, w.op)
            head = q.peek()  # it was claimed by a timeout or a cancel: skip it
        return None

    def _note_wait(self, waited: float) -> None:
        self._contended += 1
        self._wait_total += waited
        _stats.add("mutex_contended", 1, "mutex_wait_seconds", waited)


class _LockAttempt:
    """One ``lock``/``alock`` call that could not take the mutex at once (the Op).

    It parks once, and again each time it is woken in normal mode and loses
    the race to a newcomer; it keeps its start time throughout.
    """

    __slots__ = ("_deadline", "mu", "parked", "start", "woken")

    reason = "sync.Mutex.Lock"

    def __init__(self, mu: Mutex, timeout: float | None) -> None:
        self._deadline = Deadline(timeout)
        self.mu = mu
        self.start = monotonic()
        # Guarded by mu._mu: parked at least once (so a retry goes to the front).
        self.parked = False
        # Guarded by mu._mu: completed with _WOKEN and not yet back in begin.
        self.woken = False

    def remaining(self) -> float | None:
        return self._deadline.remaining()

    def begin(self, w: Waiter) -> bool:
        m = self.mu
        with m._mu:
            if self.woken:
                self.woken = False
                m._woken = False
            m._nwait += 1  # published before trying: see the module notes
            if m._held.acquire(False):
                m._nwait -= 1
                m._n += 1
                now = monotonic()
                m._hold_n = m._n
                m._hold_since = now
                if self.parked:
                    m._note_wait(now - self.start)
                w.value = _ACQUIRED
                return True
            now = monotonic()
            if self.parked and not m._starving and now - self.start > STARVATION_THRESHOLD:
                m._starving = True  # Go: a waiter that lost after 1 ms switches the mode
                m._starvations += 1
                _stats.add("mutex_starvation_entries", 1)
            if m._hold_n != m._n:
                m._hold_n = m._n  # the current hold began before now, at the latest
                m._hold_since = now
            m._q.push(w, front=self.parked)
            self.parked = True
            return False

    def abort(self, w: Waiter) -> None:
        m = self.mu
        with m._mu:
            m._nwait -= 1
            m._q.discard(w)
            if not m._nwait:
                m._starving = False

    def undo(self, w: Waiter) -> None:
        if w.value == _HANDOFF:
            self.mu.unlock()  # handed the lock, but cancelled before resuming: pass it on
        else:
            self.give_up()

    def give_up(self) -> None:
        """Leaving after being woken without retrying: let another waiter be woken."""
        m = self.mu
        with m._mu:
            if not self.woken:
                return
            self.woken = False
            m._woken = False
            if m._nwait and m._held.acquire(False):
                m._pass_on(monotonic())
