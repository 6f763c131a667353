"""sync.RWMutex: a reader/writer lock that does not starve writers.

Go's rules: any number of readers or one writer; once a writer waits, new
readers wait behind it (so a stream of readers cannot starve it).  No
recursive read locking (a reader that read-locks again while a writer waits
deadlocks, as in Go), no upgrade, no downgrade.

Readers after a write.  Go admits every reader that queued during a write
before the next writer.  Under CPython's GIL that makes a busy writer and its
readers advance in lock-step (each write, then one read per reader, each
step a thread wake-up), so goconc treats them as its Mutex treats waiters in
normal mode: the unlocking writer *wakes* the queued readers, and a writer
that locks again before they run goes first; a woken reader that finds the
lock written again queues at the front.  The starvation bound is the
Mutex's: once the oldest queued reader has waited 1 ms (or would, by
waiting through one more write like the one ending), the unlocking writer
admits all queued readers at once, Go's way, and the next writer waits for
them.  Under a writer in a tight loop with four readers this reads about
three times faster than Go's strict alternation would here.

Design: one ``threading`` lock (``_mu``) guards the counts and two queues of
``goconc._park`` waiters (readers and writers, threads and tasks alike).
The last reader out hands the lock to the oldest waiting writer directly.
A task cancelled after being handed a lock, before it resumed, gives it back.

Happens-before (goconc.race): ``unlock`` releases the RWMutex and ``rlock``,
``lock`` acquire it; ``runlock`` releases its read side, which ``lock``
acquires, so a writer sees what every earlier reader did while readers stay
unordered among themselves.
"""

from __future__ import annotations

import _thread
from time import monotonic
from typing import Final, cast

from .. import _racehooks
from .._park import Ctx, Waiter, WaitQueue, apark, park
from . import _stats
from ._common import Deadline, LockContext, SyncError
from ._mutex import STARVATION_THRESHOLD
from ._stats import RWMutexStatistics

__all__ = ["RLocker", "RWMutex"]

# What a read attempt's waiter holds in ``value`` when park returns:
_ACQUIRED: Final = 0  # it took a read lock itself
_GRANTED: Final = 1  # an unlocking writer admitted it: it holds a read lock
_WOKEN: Final = 2  # an unlocking writer woke it to try again


class RWMutex(LockContext):
    """A reader/writer mutual exclusion lock for threads and asyncio tasks alike.

    ``rlock``/``runlock`` take and release a read lock, ``lock``/``unlock``
    the write lock; ``arlock``/``alock`` are the asyncio forms.  Every
    blocking call takes ``timeout=`` and ``ctx=`` and, when it fails, leaves
    the lock as if it had never been tried.  A waiting writer blocks new
    readers.  Unlocks never block and may come from any thread or task.
    ``with rw:`` / ``async with rw:`` hold the write lock; ``rw.rlocker()``
    is a Locker whose ``lock``/``unlock`` are ``rlock``/``runlock``.

    Raises :class:`SyncError` ("sync: RUnlock of unlocked RWMutex",
    "sync: Unlock of unlocked RWMutex") on an unlock of what is not held.

    Threads::

        rw = sync.RWMutex()
        rw.rlock()
        try:
            value = table[key]
        finally:
            rw.runlock()
        with rw:                      # the write lock
            table[key] = value

    asyncio::

        await rw.arlock(timeout=1.0)
        try: ...
        finally: rw.runlock()
        async with rw:
            table[key] = value
    """

    __slots__ = (
        "__weakref__",
        "_contended",
        "_mu",
        "_nr",
        "_nw",
        "_read_side",
        "_readers",
        "_reads",
        "_rq",
        "_wait_total",
        "_wop",
        "_wq",
        "_writer",
        "_writes",
        "_wsince",
    )

    def __init__(self) -> None:
        self._mu = _thread.allocate_lock()
        # Guarded by self._mu:
        # - _readers: read locks held (granted, including to readers not yet resumed).
        # - _writer: the write lock is held (or handed to a writer not yet resumed);
        #   then _readers == 0.
        # - _rq/_nr: readers waiting and how many are live; only while _writer or _nw.
        # - _wq/_nw: writers waiting and how many are live; the head gets the lock when
        #   _readers drops to 0 (or the previous writer unlocks with no reader queued).
        self._readers = 0
        self._writer = False
        self._rq = WaitQueue()
        self._nr = 0
        self._wq = WaitQueue()
        self._nw = 0
        self._reads = 0
        self._writes = 0
        self._contended = 0
        self._wait_total = 0.0
        self._wsince = 0.0  # when the current (or last) write lock was taken
        self._wop = _WriteOp(self)
        # What runlock releases and lock acquires (goconc.race): the read side.
        self._read_side = _ReadSide()

    def __repr__(self) -> str:
        return (
            f"<sync.RWMutex readers={self._readers} writer={self._writer} "
            f"waiting={self._nr}r/{self._nw}w>"
        )

    # -- readers -------------------------------------------------------------------------

    def rlock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Take a read lock, blocking the thread while a writer holds or waits for the lock.

        Raises ``TimeoutError`` after ``timeout`` seconds and ``ctx.err()``
        once ``ctx`` ends; no read lock is then taken.
        """
        if timeout is None and ctx is None:
            with self._mu:
                if not self._writer and not self._nw:
                    self._readers += 1
                    self._reads += 1
                    if _racehooks.enabled:
                        _racehooks.acquire(self)
                    return
        attempt = _ReadAttempt(self, timeout)
        while park(attempt, attempt.remaining(), ctx).value == _WOKEN:
            pass
        if _racehooks.enabled:
            _racehooks.acquire(self)

    async def arlock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Take a read lock from an asyncio task; as :meth:`rlock`.

        If the task is cancelled while waiting, no read lock is taken and
        ``CancelledError`` propagates.
        """
        if timeout is None and ctx is None:
            with self._mu:
                if not self._writer and not self._nw:
                    self._readers += 1
                    self._reads += 1
                    if _racehooks.enabled:
                        _racehooks.acquire(self)
                    return
        attempt = _ReadAttempt(self, timeout)
        while (await apark(attempt, attempt.remaining(), ctx)).value == _WOKEN:
            pass
        if _racehooks.enabled:
            _racehooks.acquire(self)

    def try_rlock(self) -> bool:
        """Take a read lock if no writer holds or waits for the lock; never blocks."""
        with self._mu:
            if self._writer or self._nw:
                return False
            self._readers += 1
            self._reads += 1
        if _racehooks.enabled:
            _racehooks.acquire(self)
        return True

    def runlock(self) -> None:
        """Release one read lock; never blocks.

        Raises :class:`SyncError` ("sync: RUnlock of unlocked RWMutex") if
        no read lock is held.
        """
        if _racehooks.enabled:
            _racehooks.release(self._read_side)
        with self._mu:
            if self._readers <= 0:
                raise SyncError("sync: RUnlock of unlocked RWMutex")
            self._readers -= 1
            if not self._readers and self._nw:
                self._grant_writer()

    # -- writers -------------------------------------------------------------------------

    def lock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Take the write lock, blocking the thread until no reader or writer holds it.

        From the moment it waits, new readers wait behind it.  Raises
        ``TimeoutError`` after ``timeout`` seconds and ``ctx.err()`` once
        ``ctx`` ends; the lock is then not taken (and readers held back by
        this wait are let in).
        """
        if timeout is None and ctx is None:
            with self._mu:
                if not self._writer and not self._readers and not self._nw:
                    self._writer = True
                    self._writes += 1
                    self._wsince = monotonic()
                    if _racehooks.enabled:
                        _racehooks.acquire(self)
                        _racehooks.acquire(self._read_side)
                    return
        park(self._wop, timeout, ctx, data=monotonic())
        if _racehooks.enabled:
            _racehooks.acquire(self)
            _racehooks.acquire(self._read_side)

    async def alock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Take the write lock from an asyncio task; as :meth:`lock`."""
        await apark(self._wop, timeout, ctx, data=monotonic())
        if _racehooks.enabled:
            _racehooks.acquire(self)
            _racehooks.acquire(self._read_side)

    def try_lock(self) -> bool:
        """Take the write lock if nobody holds it and no writer waits; never blocks."""
        with self._mu:
            if self._writer or self._readers or self._nw:
                return False
            self._writer = True
            self._writes += 1
            self._wsince = monotonic()
        if _racehooks.enabled:
            _racehooks.acquire(self)
            _racehooks.acquire(self._read_side)
        return True

    def unlock(self) -> None:
        """Release the write lock; never blocks.

        Readers that queued during the write are admitted first, then the
        next writer.  Raises :class:`SyncError` ("sync: Unlock of unlocked
        RWMutex") if the write lock is not held.
        """
        if _racehooks.enabled:
            _racehooks.release(self)
        with self._mu:
            if not self._writer:
                raise SyncError("sync: Unlock of unlocked RWMutex")
            self._writer = False
            self._dispatch(monotonic())

    def rlocker(self) -> RLocker:
        """A Locker whose ``lock``/``unlock`` (and ``alock``) take and release a read lock."""
        return RLocker(self)

    def statistics(self) -> RWMutexStatistics:
        """A snapshot of the lock's state and contention counters."""
        with self._mu:
            return RWMutexStatistics(
                readers=self._readers,
                writer=self._writer,
                readers_waiting=self._nr,
                writers_waiting=self._nw,
                read_acquisitions=self._reads,
                write_acquisitions=self._writes,
                contended=self._contended,
                wait_seconds=self._wait_total,
            )

    # -- hand-over, under self._mu -------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        """Nobody writes: admit or wake the queued readers, then give the lock to a writer."""
        if self._nr:
            head = self._rq.peek()
            if head is not None and self._overdue(cast(_ReadAttempt, head[0].op), now):
                value = _GRANTED
            else:
                value = _WOKEN
            while head is not None:
                w = head[0]
                if w.complete(value):
                    self._nr -= 1
                    if value == _GRANTED:
                        self._readers += 1
                        self._reads += 1
                        self._note_wait(now - cast(_ReadAttempt, w.op).start)
                head = self._rq.peek()
        if not self._readers and self._nw:
            self._grant_writer()

    def _overdue(self, attempt: _ReadAttempt, now: float) -> bool:
        waited = now - attempt.start
        return waited > STARVATION_THRESHOLD or waited + now - self._wsince > STARVATION_THRESHOLD

    def _grant_writer(self) -> None:
        now = monotonic()
        while True:
            head = self._wq.peek()
            if head is None:
                return
            w = head[0]
            if w.complete(True):
                self._nw -= 1
                self._writer = True
                self._writes += 1
                self._wsince = now
                self._note_wait(now - w.data)
                return

    def _note_wait(self, waited: float) -> None:
        self._contended += 1
        self._wait_total += waited
        _stats.add("rwmutex_contended", 1, "rwmutex_wait_seconds", waited)


class _ReadSide:
    """The object runlock releases and lock acquires, for goconc.race."""

    __slots__ = ("__weakref__",)  # (the detector forgets the clocks of dead objects)


class _ReadAttempt:
    """One read lock that could not be taken at once (the Op).

    Parks once, and again each time it is woken (not admitted) and finds the
    lock written or wanted by a writer again; it keeps its start time.
    """

    __slots__ = ("_deadline", "parked", "rw", "start")

    reason = "sync.RWMutex.RLock"

    def __init__(self, rw: RWMutex, timeout: float | None) -> None:
        self._deadline = Deadline(timeout)
        self.rw = rw
        self.start = monotonic()
        self.parked = False  # guarded by rw._mu: queued before (a retry goes to the front)

    def remaining(self) -> float | None:
        return self._deadline.remaining()

    def begin(self, w: Waiter) -> bool:
        rw = self.rw
        with rw._mu:
            if not rw._writer and not rw._nw:
                rw._readers += 1
                rw._reads += 1
                if self.parked:
                    rw._note_wait(monotonic() - self.start)
                w.value = _ACQUIRED
                return True
            rw._rq.push(w, front=self.parked)
            rw._nr += 1
            self.parked = True
            return False

    def abort(self, w: Waiter) -> None:
        rw = self.rw
        with rw._mu:
            rw._nr -= 1
            rw._rq.discard(w)

    def undo(self, w: Waiter) -> None:
        if w.value == _GRANTED:
            self.rw.runlock()  # admitted, but cancelled before resuming


class _WriteOp:
    """The write lock when it could not be taken at once (the Op); ``w.data``: start time."""

    __slots__ = ("rw",)

    reason = "sync.RWMutex.Lock"

    def __init__(self, rw: RWMutex) -> None:
        self.rw = rw

    def begin(self, w: Waiter) -> bool:
        rw = self.rw
        with rw._mu:
            if not rw._writer and not rw._readers and not rw._nw:
                rw._writer = True
                rw._writes += 1
                rw._wsince = monotonic()
                return True
            rw._wq.push(w)
            rw._nw += 1
            return False

    def abort(self, w: Waiter) -> None:
        rw = self.rw
        with rw._mu:
            rw._nw -= 1
            rw._wq.discard(w)
            if rw._writer:
                return
            if not rw._nw:
                rw._dispatch(monotonic())  # the readers it held back may go
            elif not rw._readers:
                rw._grant_writer()  # it was at the head, with no reader left to wait for

    def undo(self, w: Waiter) -> None:
        self.rw.unlock()  # granted, but cancelled before resuming


class RLocker(LockContext):
    """The read side of an :class:`RWMutex` as a Locker (``RWMutex.rlocker()``)."""

    __slots__ = ("_rw",)

    def __init__(self, rw: RWMutex) -> None:
        self._rw = rw

    def __repr__(self) -> str:
        return f"<sync.RLocker of {self._rw!r}>"

    def lock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """``rlock`` of the RWMutex."""
        self._rw.rlock(timeout, ctx)

    async def alock(self, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """``arlock`` of the RWMutex."""
        await self._rw.arlock(timeout, ctx)

    def unlock(self) -> None:
        """``runlock`` of the RWMutex."""
        self._rw.runlock()
