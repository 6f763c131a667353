"""The waiter: how any goconc operation blocks a thread or an asyncio task.

Design note
-----------
Everything that blocks in goconc (channel send and receive, select, mutexes,
conditions, wait groups, semaphores, context done, goroutine join) blocks in
exactly one way: the operation creates a :class:`Waiter`, lets the primitive
enqueue it under the primitive's own lock, and *parks* it.  A thread parks on a
lock of its own; an asyncio task parks on a future of its own loop.  This is the
only module that knows the difference.  It is Go's ``gopark``/``goready`` with
``sudog`` queues, and trio's parking lot, carried to two worlds at once.

The contract between a primitive and this module is the :class:`Op` protocol:

* ``begin(w)``: under the primitive's lock, either complete the operation at
  once (fill ``w.value``/``w.ok``/``w.index``, return True) or enqueue ``w``
  and return False.  From then on any thread or loop may complete it.
* ``abort(w)``: the wait ended without completion (timeout, context, task
  cancellation, KeyboardInterrupt); remove ``w`` from the primitive's queues.
  No waker can complete ``w`` any more, so nothing is lost.
* ``undo(w)``: the operation *was* completed, but the task was cancelled before
  it could resume.  The primitive gives back what ``w`` received (a received
  value goes back to the head of its channel, a handed-over lock is unlocked),
  so the cancelled call leaves the primitive as if it had never waited.

Exactly-once wake-up.  A waiter is in state ``WAITING`` until somebody claims
it, under the waiter's claim lock: a waker (``complete``) or a canceller
(timeout, context, cancellation of the parked task).  Only the first claim
counts; a waker whose claim fails moves on to the next waiter in its queue.
Wakers fill in the result *while* claiming, so whoever loses the race can read
the winner's outcome at once.  Select enqueues one waiter on many channels
(one queue entry per case); the first channel to claim it wins and the other
entries become stale.  The claim lock is the waiter's own small lock, or,
for a *guarded* waiter, the primitive's lock: a primitive that makes every
``complete`` call on a waiter while holding its own lock (a channel, for the
waiters of one channel) may say so (``guard=``); its wakers then claim at no
extra cost, and cancellers take that lock instead.  Lock order: a
primitive's lock, then a claim lock; no primitive's lock is ever taken under
a claim lock, and a canceller holds no lock when it claims.

Crossing threads and loops.  The waker signals the parked side only if it has
actually parked (the signal object is installed under the claim lock, or
before the waiter is enqueued): a thread's lock is released; a task's future
is resolved directly when the waker runs on the task's own loop, and through
``call_soon_threadsafe`` otherwise.  A waker never runs the woken side's code.

The asyncio fast path.  ``apark`` runs ``begin`` and, only if that parks,
creates the future: an operation that completes at once costs no future.  A
primitive whose asyncio entry point already made a first attempt under its
lock (a channel) can instead enqueue, in that same lock hold, a waiter made by
:func:`task_waiter` (guarded by that lock), whose future exists from the
start, and pass it to ``apark(op, ..., waiter=w)``: one lock hold, no lock
allocated and no signal to install per wait.  Finding the running loop is
itself made cheap (see ``_running_loop``).

Cancel racing wake.  For threads and for timeouts and contexts the race is
settled by the claim: if the waker won, the operation completed and its result
is returned even though the timeout also fired.  Only asyncio's cancellation
is forced on a task from outside (``Task.cancel`` throws ``CancelledError``
even when the awaited future already holds a result); there the waiter's
``undo`` restores the primitive and the ``CancelledError`` propagates, as
asyncio code expects.  This is how a value handed to a receiver that is
cancelled at that moment is neither lost nor delivered twice.

Queues.  :class:`WaitQueue` is a FIFO of ``(waiter, index, data)`` entries with
lazy removal: aborted or stale entries are skipped by wakers and compacted
away once they make up half the queue, so a cancelled wait costs O(1)
amortised instead of a linear search.

Reading a parked thread's stack.  On free-threaded CPython, reading the
frames of another thread while it runs can crash the interpreter
(python/cpython#118680): the thread may pop them meanwhile.  There, ``park``
records its own frame in the waiter and publishes the waiter on the parked
thread's *holder* (``here.holder``, set by ``goconc.runtime`` to the thread's
goroutine, whose ``_parked`` it sets).  A reader that holds the waiter's claim
lock while the waiter is still ``WAITING`` knows that nobody can wake the
thread and that the thread cannot leave ``park``: the frames from the recorded
one outwards stay as they are until it lets go.  With the GIL none of this is
needed, and none of it is done.

Open question: the parked task of a closed event loop can never be resumed;
its wake-up is dropped silently because nobody is left to receive it.
"""

from __future__ import annotations

import _thread
import asyncio
import os
import sys
from asyncio import events
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

from . import _racehooks

_get_ident = _thread.get_ident

__all__ = [
    "CANCELLED",
    "CTX_DONE",
    "DONE",
    "FRAMES_UNSAFE",
    "TIMED_OUT",
    "WAITING",
    "Ctx",
    "Op",
    "WaitQueue",
    "Waiter",
    "apark",
    "check_timeout",
    "here",
    "park",
    "raise_if_done",
    "task_waiter",
]

# Waiter states.  A waiter leaves WAITING exactly once.
WAITING: Final = 0
DONE: Final = 1  # completed by a waker; value/ok/index hold the result
TIMED_OUT: Final = 2  # claimed by its timeout
CTX_DONE: Final = 3  # claimed by its context ending
CANCELLED: Final = 4  # claimed by the parked side itself (task cancelled, interrupt)

#: True where another thread's running frames may not be read (free-threaded
#: builds with the GIL off): there ``park`` publishes its waiter (see the design note).
FRAMES_UNSAFE: Final = not getattr(sys, "_is_gil_enabled", lambda: True)()


class _Here(_thread._local):
    # What this thread parks for: an object with a ``_parked`` attribute (the
    # runtime's goroutine), or None.  Used only where FRAMES_UNSAFE.
    holder: Any = None


here = _Here()


class Ctx(Protocol):
    """What the waiter needs of a goconc Context (see ``goconc.context``)."""

    def err(self) -> BaseException | None: ...

    def _add_waiter(self, fn: Callable[[], object]) -> object | None:
        """Call ``fn`` once when the context ends; None if it already ended."""
        ...

    def _remove_waiter(self, token: object) -> None: ...


class Op(Protocol):
    """A blocking operation of a primitive, as seen by the waiter."""

    #: What a goroutine parked here waits for, as in a Go dump ("chan receive").
    reason: str

    def begin(self, w: Waiter) -> bool: ...

    def abort(self, w: Waiter) -> None: ...

    def undo(self, w: Waiter) -> None: ...


class Waiter:
    """One parked thread or task, woken exactly once.

    Fields a primitive may use: ``value`` (set by the caller of ``park`` as the
    operation's input, e.g. the value to send; replaced by the result),
    ``ok``, ``index`` (the select case that fired) and ``data`` (anything the
    primitive needs, e.g. a semaphore's weight).

    ``guard``: the primitive's lock, if every ``complete`` call on this waiter
    is made while holding it (see the design note); it then serves as the
    claim lock.
    """

    __slots__ = (
        "_guarded",
        "_loop",
        "_mu",
        "_sig",
        "data",
        "frame",
        "index",
        "ok",
        "op",
        "race_hb",
        "race_vc",
        "state",
        "value",
    )

    frame: Any  # see __init__

    def __init__(
        self, op: Op, value: Any = None, data: Any = None, guard: _thread.LockType | None = None
    ) -> None:
        # The claim lock: guards state, _sig and the result fields' publication.
        self._mu = _thread.allocate_lock() if guard is None else guard
        self._guarded = guard is not None  # complete() is called holding _mu
        self.state: int = WAITING
        self.op = op
        self.value = value
        self.ok = True
        self.index = 0
        self.data = data
        # Race detector only (None while it is off): the parking goroutine's
        # clock when it parked, and the clock it acquires when it resumes
        # completed (set by whoever completes it, see _racehooks).
        self.race_vc: Any = _racehooks.park_clock() if _racehooks.enabled else None
        self.race_hb: Any = None
        # The signal, installed only once the owner really parks (or from the
        # start, see task_waiter): a held thread lock, or a future of self._loop.
        self._sig: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # (``frame``, where FRAMES_UNSAFE only: park()'s own frame, set before the
        # waiter is published on the thread's holder, unset otherwise; read only
        # under _mu while the state is WAITING.)

    def __repr__(self) -> str:
        return f"<Waiter {self.op.reason} state={self.state}>"

    @property
    def waiting(self) -> bool:
        """A hint for queue scans; only ``complete`` decides."""
        return self.state == WAITING

    def complete(self, value: Any = None, ok: bool = True, index: int = 0) -> bool:
        """Claim this waiter as done with the given result, and wake it.

        Returns False (and changes nothing) if it was already claimed.  The
        caller holds the guard of a guarded waiter.
        """
        mu = None if self._guarded else self._mu
        if mu is not None:
            mu.acquire()  # (not `with`: cheaper on this hot path)
        try:
            if self.state != WAITING:
                return False
            self.state = DONE
            self.value = value
            self.ok = ok
            self.index = index
            if _racehooks.enabled:
                _racehooks.handoff(self)
            sig = self._sig
        finally:
            if mu is not None:
                mu.release()
        if sig is None:
            pass  # not parked yet: its owner will find it DONE
        elif getattr(self._loop, "_thread_id", None) == _get_ident():
            # _signal's common case, inline and cheaper: a task woken on its own
            # loop (see _running_loop); other loops take _signal's general path.
            if not sig.done():
                sig.set_result(None)
        else:
            self._signal(sig)
        return True

    def interrupt(self, state: int) -> bool:
        """Claim this waiter for a timeout or a context, and wake it."""
        with self._mu:
            if self.state != WAITING:
                return False
            self.state = state
            sig = self._sig
        if sig is not None:
            self._signal(sig)
        return True

    def _claim_self(self, state: int) -> bool:
        with self._mu:
            if self.state != WAITING:
                return False
            self.state = state
            return True

    def _install(self, sig: Any, loop: asyncio.AbstractEventLoop | None) -> bool:
        """Install the wake-up signal; False if the waiter was claimed meanwhile."""
        with self._mu:
            if self.state != WAITING:
                return False
            self._sig = sig
            self._loop = loop
            return True

    def _signal(self, sig: Any) -> None:
        loop = self._loop
        if loop is None:
            sig.release()
        elif events._get_running_loop() is loop:
            _resolve(sig)
        else:
            try:
                loop.call_soon_threadsafe(_resolve, sig)
            except RuntimeError:
                pass  # the loop is closed: no task is left to wake


def task_waiter(
    op: Op, value: Any = None, data: Any = None, guard: _thread.LockType | None = None
) -> Waiter:
    """A waiter for the running task, ready to be enqueued by the primitive itself.

    For a primitive that makes its first attempt and, if that fails, enqueues
    the waiter in the same hold of its lock, then calls ``apark(op, timeout,
    ctx, waiter=w)`` (which then runs no ``begin``).  Its future exists from the
    start, so a waker may complete it at any time.  ``guard`` as for
    :class:`Waiter`.  Raises ``RuntimeError`` outside a running event loop.
    """
    w = Waiter(op, value, data, guard)
    loop = w._loop = _running_loop()
    w._sig = loop.create_future()
    return w


# asyncio's own loops (asyncio.BaseEventLoop) keep in ``_thread_id`` the ident of
# the thread running them (None while stopped), so comparing it with the current
# thread's tells whether the code runs on that loop - as ``_get_running_loop() is
# loop`` would, but on CPython 3.11 each call of that makes a getpid() system
# call, a large share of a whole wake-up.  A loop without the attribute simply
# takes the general path.  No lock is needed: a thread reads its own ident
# there only while the loop runs on it, since a loop that ran on it is stopped
# on it (clearing the attribute, in program order) before it can run elsewhere.

# The loop last found running, on any thread: checked as above before each use.
# A forked child forgets it: the copy of a loop running at the fork still names
# the forking thread, whose ident the child's thread has (the case 3.11's
# getpid() check is for).
_last_loop: asyncio.AbstractEventLoop | None = None


def _running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()``, usually without a system call (see above)."""
    global _last_loop
    loop = _last_loop
    if loop is None or getattr(loop, "_thread_id", None) != _get_ident():
        loop = _last_loop = events.get_running_loop()
    return loop


def _forget_loop() -> None:
    global _last_loop
    _last_loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_loop)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def check_timeout(timeout: float | None) -> None:
    """Reject a negative or NaN timeout at the call site."""
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")


def raise_if_done(ctx: Ctx | None) -> None:
    """Raise ``ctx.err()`` if the context has already ended."""
    if ctx is not None:
        err = ctx.err()
        if err is not None:
            raise err


def park(
    op: Op,
    timeout: float | None = None,
    ctx: Ctx | None = None,
    value: Any = None,
    data: Any = None,
) -> Waiter:
    """Run ``op`` from a thread, blocking the thread until it completes.

    Returns the completed waiter.  Raises ``TimeoutError`` after ``timeout``
    seconds, ``ctx.err()`` once ``ctx`` ends (also if it has ended already);
    in both cases the operation did not happen.
    """
    check_timeout(timeout)
    raise_if_done(ctx)
    w = Waiter(op, value, data)
    if op.begin(w):
        return _completed(w)
    lock = _thread.allocate_lock()
    lock.acquire()
    if not w._install(lock, None):
        return _outcome(w, ctx)
    token = _watch(ctx, w)
    holder = here.holder if FRAMES_UNSAFE else None
    if holder is not None:  # from here on it only blocks until claimed (design note)
        w.frame = sys._getframe()
        holder._parked = w
    try:
        if timeout is None:
            lock.acquire()
        elif not lock.acquire(timeout=min(timeout, _MAX_WAIT)) and not w._claim_self(TIMED_OUT):
            lock.acquire()  # claimed by someone else just now: the signal is on its way
        # (A timeout claimed above is reported by _outcome below, outside this try:
        # raised in here, its TimeoutError would reach _abandon and abort twice.)
    except BaseException:  # KeyboardInterrupt or another asynchronous exception
        _abandon(w)
        raise
    finally:
        if holder is not None:
            holder._parked = None
        if token is not None:
            ctx._remove_waiter(token)  # type: ignore[union-attr]
    return _outcome(w, ctx)


async def apark(
    op: Op,
    timeout: float | None = None,
    ctx: Ctx | None = None,
    value: Any = None,
    data: Any = None,
    *,
    waiter: Waiter | None = None,
) -> Waiter:
    """Run ``op`` from an asyncio task, suspending the task until it completes.

    As :func:`park`; if the task is cancelled while parked, the operation is
    undone (or never happened) and ``CancelledError`` propagates.

    ``waiter``: a waiter from :func:`task_waiter` that the primitive has
    already enqueued for ``op`` (``value``/``data`` are then unused and
    ``begin`` is not run); the caller checked ``timeout`` and ``ctx`` before.
    """
    if waiter is None:
        if timeout is not None or ctx is not None:
            check_timeout(timeout)
            raise_if_done(ctx)
        w = Waiter(op, value, data)
        if op.begin(w):
            return _completed(w)
        loop = _running_loop()
        fut = loop.create_future()
        if not w._install(fut, loop):
            return _outcome(w, ctx)
    else:
        w, fut = waiter, waiter._sig
    timer = token = None
    try:
        if timeout is not None:
            timer = fut.get_loop().call_later(timeout, w.interrupt, TIMED_OUT)
        if ctx is not None:
            token = _watch(ctx, w)
        await fut
    except BaseException:
        _abandon(w)
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if token is not None:
            ctx._remove_waiter(token)  # type: ignore[union-attr]
    if w.state == DONE and w.race_hb is None:  # _outcome's common case, inline
        return w
    return _outcome(w, ctx)


# lock.acquire() rejects timeouts above threading.TIMEOUT_MAX; waiting that
# long is the same as waiting forever.
_MAX_WAIT: Final = min(_thread.TIMEOUT_MAX, 2**31)


def _watch(ctx: Ctx | None, w: Waiter) -> object | None:
    if ctx is None:
        return None
    token = ctx._add_waiter(lambda: w.interrupt(CTX_DONE))
    if token is None:  # the context ended after raise_if_done: nobody else will wake w
        w.interrupt(CTX_DONE)
    return token


def _abandon(w: Waiter) -> None:
    """The parked side is leaving by an exception: make sure nothing is lost."""
    if w._claim_self(CANCELLED):
        w.op.abort(w)
    elif w.state == DONE:
        if w.race_hb is not None:  # what it was handed, it hands on: keep the edge
            _racehooks.acquire_clock(w.race_hb)
        w.op.undo(w)
    else:
        w.op.abort(w)  # claimed by a timeout or context just before the exception


def _completed(w: Waiter) -> Waiter:
    if w.race_hb is not None:
        _racehooks.acquire_clock(w.race_hb)
    return w


def _outcome(w: Waiter, ctx: Ctx | None) -> Waiter:
    state = w.state
    if state == DONE:
        return _completed(w)
    w.op.abort(w)
    if state == TIMED_OUT:
        raise TimeoutError(f"goconc: {w.op.reason}: timed out")
    err = ctx.err() if ctx is not None else None
    raise err if err is not None else RuntimeError("goconc: wait interrupted")


class WaitQueue:
    """A FIFO of ``(waiter, index, data)`` entries, guarded by its owner's lock.

    ``index`` is the select case (0 outside select) and ``data`` what the
    primitive keeps per entry (the value a sender offers, a weight).  Entries
    whose waiter is no longer waiting are skipped and compacted away lazily.
    """

    __slots__ = ("_q", "_stale")

    def __init__(self) -> None:
        self._q: deque[tuple[Waiter, int, Any]] = deque()  # owner's lock
        self._stale = 0  # owner's lock; an estimate of dead entries in _q

    def push(self, w: Waiter, index: int = 0, data: Any = None, *, front: bool = False) -> None:
        if front:
            self._q.appendleft((w, index, data))
        else:
            self._q.append((w, index, data))

    def wake_first(self, value: Any = None, ok: bool = True) -> tuple[Waiter, int, Any] | None:
        """Complete the oldest live waiter with ``value``/``ok``; return its entry."""
        q = self._q
        while q:
            entry = q.popleft()
            if entry[0].complete(value, ok, entry[1]):
                return entry
        self._stale = 0
        return None

    def peek(self) -> tuple[Waiter, int, Any] | None:
        """The oldest entry whose waiter still looks live (a hint), without removing it."""
        q = self._q
        while q:
            entry = q[0]
            if entry[0].state == WAITING:
                return entry
            q.popleft()
        self._stale = 0
        return None

    def discard(self, w: Waiter) -> None:
        """Note that ``w`` (no longer waiting) has dead entries here."""
        self._stale += 1
        if self._stale > 16 and self._stale * 2 > len(self._q):
            self._q = deque(e for e in self._q if e[0].state == WAITING)
            self._stale = 0

    def wake_all(self, value: Any = None, ok: bool = True) -> int:
        """Complete every live waiter with ``value``/``ok``; return how many."""
        n = 0
        q = self._q
        while q:
            w, index, _ = q.popleft()
            if w.complete(value, ok, index):
                n += 1
        self._stale = 0
        return n

    def live(self) -> Iterator[tuple[Waiter, int, Any]]:
        """The entries whose waiters look live, oldest first (a snapshot hint)."""
        return (e for e in list(self._q) if e[0].state == WAITING)

    def __len__(self) -> int:
        """An upper bound of the live entries."""
        return len(self._q)

    def __bool__(self) -> bool:
        return self.peek() is not None
