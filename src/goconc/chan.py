"""Go channels and ``select`` for threads and asyncio tasks alike.

Design note
-----------
A :class:`Chan` is Go's ``hchan``: a FIFO buffer of at most ``cap`` values, a
queue of parked receivers, a queue of parked senders and a closed flag, all
guarded by one ``threading.Lock`` per channel.  Parked parties are
:class:`goconc._park.Waiter` objects, so a thread and a task (on any event
loop) can meet on the same channel; this module never knows which is which.
The send and receive operations the waiter runs are two stateless objects
shared by every channel (the channel travels in ``w.data``), so a channel
holds no reference cycle and is freed as soon as it is dropped.

Hand-over.  A sender that finds a parked receiver gives it the value directly
(claiming the receiver's waiter); otherwise it appends to the buffer if there
is room, otherwise it parks with its value in the send queue.  A receiver
takes the head of the buffer and, if that made room, moves the oldest parked
sender's value into the buffer and releases that sender; with an empty buffer
it takes a parked sender's value directly (the rendezvous of ``cap=0``).  The
claim on a waiter settles every race: a waiter that timed out, saw its context
end or was cancelled cannot be claimed, and the waker moves on to the next.
A value changes hands in exactly three places (``_offer``, ``_take`` and
``_put_back``) and a close is observed in ``close`` and in the ``ok=False``
results; instrumentation such as happens-before edges belongs there.

The asyncio hot path.  The asyncio entry points handle the plain buffered
case inline, saving a call (they step aside whenever the race detector is
on).  When they must wait, they enqueue their waiter (``task_waiter``) in the
same lock hold as their first attempt instead of letting ``apark`` run the
Op's ``begin``, which would lock and try again.  That waiter is *guarded* by
the channel's lock: every waiter of a channel is only ever completed with the
channel locked (in ``_offer``, ``_take``, ``_put_back`` and ``close``, which
are always called with it held), so the lock serves as the waiter's claim
lock (see ``goconc._park``).  The thread entry points keep the plain
``park(op)`` form: a thread's wait is dominated by the thread switch.

Select (Go's ``selectgo``).  The channels involved are locked in one global
order (by ``id``, each once however many cases name it), so two selects over
the same channels cannot deadlock.  As a shortcut, a select first tries to
take the locks without waiting, in the order of its cases, and falls back to
the global order only if one is busy: a party that never waits while holding
a lock cannot be part of a deadlock.  The enabled cases are polled in a
random order drawn as they are tried (an incremental Fisher-Yates shuffle),
so among the ready cases each is chosen with the same probability.  If none
is ready (and there is no ``default``), one waiter is enqueued on every case,
one queue entry per case carrying the case index; the first channel to claim
the waiter wins, and the select then discards its entries from the other
queues.  A select never meets itself: it polls before it enqueues.

Cancellation safety.  A wait that ends by timeout, context or task
cancellation before being claimed removes its entries, so no value is ever
handed to it.  If the claim came first, a thread (timeout, context) returns
the result normally.  An asyncio task may still be cancelled after the claim
(``Task.cancel`` throws into a task whose future already holds the result):
then a received value goes back to the head of its channel - to the next
parked receiver, or to the front of the buffer, where it may briefly exceed
``cap`` (``len(ch) == cap + 1``, and even 1 on an unbuffered channel) - and
``CancelledError`` propagates.  A value handed to a cancelled receiver is thus
never lost and never delivered twice.  A *send* whose value was taken before
the sender's task was cancelled cannot be taken back: the value was delivered
exactly once and ``CancelledError`` still propagates, as asyncio code
expects of a cancelled task.

Given up.  A value handed to a task whose event loop is closed before the task
resumes is lost with the task (the waiter cannot wake it).  Go's directional
channel types have no equivalent; a receive-only channel (a context's
``done``, a ticker) is a subclass that overrides the send methods and sets
``_recv_only = True``, so that :func:`select` refuses its ``Send`` cases too.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from random import random as _random
from threading import Lock
from typing import Any, ClassVar, Final, Generic, NamedTuple, TypeVar

from . import _racehooks
from ._park import (
    Ctx,
    Waiter,
    WaitQueue,
    apark,
    check_timeout,
    park,
    raise_if_done,
    task_waiter,
)

__all__ = [
    "Chan",
    "ChanClosed",
    "ChanStatistics",
    "Recv",
    "Selected",
    "Send",
    "aselect",
    "select",
]

T = TypeVar("T")

_SEND_CLOSED: Final = "send on closed channel"
_RECV_CLOSED: Final = "receive from closed channel"
_CLOSE_CLOSED: Final = "close of closed channel"

# What Chan._take returns instead of a value: nothing to receive yet, or
# closed and drained.  Private objects, so no user value can be mistaken for them.
_EMPTY: Final[Any] = object()
_CLOSED: Final[Any] = object()


class ChanClosed(Exception):
    """A send on a closed channel, a close of a closed channel, or a receive
    (``recv``/``arecv``, not the ``_ok`` forms) from a closed, drained channel."""


@dataclass(frozen=True)
class ChanStatistics:
    """A snapshot of a channel's state (see :meth:`Chan.statistics`).

    ``senders_waiting``/``receivers_waiting`` count the parked parties (a
    select counts once for each of its cases on this channel).
    """

    cap: int
    len: int
    closed: bool
    senders_waiting: int
    receivers_waiting: int


class Chan(Generic[T]):
    """A Go channel: ``Chan[int](cap=0)``.

    With ``cap=0`` (the default) the channel is a rendezvous: a send completes
    only when a receiver takes the value.  With ``cap > 0`` up to ``cap``
    values wait in a FIFO buffer.  Values are received in the order they were
    sent; parked senders and receivers are served first come, first served.
    Any number of threads and asyncio tasks (on any loops) may use one channel.

    ``close()`` ends the stream: receivers drain what is buffered, then get
    ``ok=False``; senders (also those already blocked) raise
    :class:`ChanClosed`.  ``for v in ch`` and ``async for v in ch`` receive
    until then.  Every blocking call takes ``timeout=`` (seconds, raises
    ``TimeoutError``) and ``ctx=`` (raises ``ctx.err()``); either way the
    operation did not happen.

    Threads::

        ch: Chan[int] = Chan()

        def produce() -> None:
            for i in range(3):
                ch.send(i)
            ch.close()

        go(produce)
        for v in ch:
            print(v)

    asyncio::

        ch: Chan[str] = Chan(10)
        await ch.asend("hello", timeout=1.0)
        v, ok = await ch.arecv_ok()

    A channel is always true (``bool(ch)``) even when ``len(ch) == 0``.
    """

    #: Set by subclasses that forbid sends (they also override send, asend and
    #: try_send): select then rejects a Send case on such a channel.
    _recv_only: ClassVar[bool] = False

    __slots__ = (
        "__weakref__",
        "_buf",
        "_cap",
        "_closed",
        "_mu",
        "_recvq",
        "_sendq",
    )

    def __init__(self, cap: int = 0) -> None:
        if isinstance(cap, bool):
            raise TypeError("cap must be an int, got bool")
        try:
            cap = operator.index(cap)
        except TypeError:
            raise TypeError(f"cap must be an int, got {type(cap).__name__}") from None
        if cap < 0:
            raise ValueError(f"cap must be >= 0, got {cap} (makechan: size out of range)")
        self._mu = Lock()
        # Guarded by self._mu:
        # - _buf: values sent and not yet received, oldest first.  len(_buf) <= _cap,
        #   except just after a cancelled receiver put its value back at the head.
        # - _recvq: parked receivers; it holds live entries only while _buf is empty
        #   and the channel is open.
        # - _sendq: parked senders, each entry's data the value it offers; live
        #   entries only while len(_buf) >= _cap and the channel is open.
        # - _closed: set once by close(); no entry is queued after that.
        self._cap: Final = cap
        self._buf: deque[T] = deque()
        self._recvq = WaitQueue()
        self._sendq = WaitQueue()
        self._closed = False

    # -- state under self._mu: the only places where values change hands ----------

    def _offer(self, value: T) -> bool:
        """Deliver ``value`` now if possible (mu held); raise if closed."""
        if self._closed:
            raise ChanClosed(_SEND_CLOSED)
        if _racehooks.enabled:
            return self._offer_traced(value)
        # An empty deque is the common case: test it before calling into the queue.
        if self._recvq._q and self._recvq.wake_first(value, True) is not None:
            return True
        buf = self._buf
        if len(buf) < self._cap:
            buf.append(value)
            return True
        return False

    def _take(self) -> Any:
        """Receive now if possible (mu held): the value, ``_CLOSED`` or ``_EMPTY``."""
        if _racehooks.enabled:
            return self._take_traced()
        buf = self._buf
        if buf:
            value = buf.popleft()
            if self._sendq._q and len(buf) < self._cap:
                entry = self._sendq.wake_first(None, True)
                if entry is not None:
                    buf.append(entry[2])
            return value
        if self._sendq._q:
            entry = self._sendq.wake_first(None, True)
            if entry is not None:
                return entry[2]
        return _CLOSED if self._closed else _EMPTY

    # The same hand-overs with the race detector's happens-before edges (Go's
    # memory model): a send happens before the matching receive completes; on
    # an unbuffered channel the receive also happens before the send
    # completes; on a buffered one the k-th receive happens before the
    # (k+cap)-th send completes (the buffer slots carry the clocks).  Waking a
    # parked party passes the waker's clock to it (Waiter.complete).

    def _offer_traced(self, value: T) -> bool:
        cap, buf = self._cap, self._buf
        if cap == 0:
            entry = self._recvq.wake_first(value, True) if self._recvq._q else None
            if entry is None:
                return False
            _racehooks.absorb(entry[0])
            return True
        if len(buf) >= cap:
            return False  # (receivers park only while the buffer is empty)
        _racehooks.chan_send(self, cap)
        entry = self._recvq.wake_first(value, True) if self._recvq._q else None
        if entry is None:
            buf.append(value)
        else:
            _racehooks.chan_recv(self, cap, entry[0])  # as if through the buffer, like Go
        return True

    def _take_traced(self) -> Any:
        cap, buf = self._cap, self._buf
        if buf:
            _racehooks.chan_recv(self, cap)
            value = buf.popleft()
            if self._sendq._q and len(buf) < cap:
                entry = self._sendq.wake_first(None, True)
                if entry is not None:
                    _racehooks.chan_send(self, cap, entry[0])
                    buf.append(entry[2])
            return value
        if self._sendq._q:
            entry = self._sendq.wake_first(None, True)
            if entry is not None:
                _racehooks.absorb(entry[0])
                return entry[2]
        if self._closed:
            _racehooks.chan_recv_closed(self)
            return _CLOSED
        return _EMPTY

    def _put_back(self, value: T) -> None:
        """Return a value taken by a receiver cancelled before it could resume."""
        with self._mu:
            if self._recvq.wake_first(value, True) is None:
                if _racehooks.enabled:
                    _racehooks.chan_put_back(self, self._cap)
                self._buf.appendleft(value)

    # -- send ----------------------------------------------------------------------

    def send(self, value: T, *, timeout: float | None = None, ctx: Ctx | None = None) -> None:
        """Send ``value``, blocking until a receiver takes it or the buffer has room.

        Raises ``ChanClosed`` ("send on closed channel") if the channel is
        closed before or while blocked, ``TimeoutError`` after ``timeout``
        seconds, ``ctx.err()`` once ``ctx`` ends (also if it already has).
        """
        if timeout is not None or ctx is not None:
            check_timeout(timeout)
            raise_if_done(ctx)
        with self._mu:
            if self._offer(value):
                return
        if not park(_SEND, timeout, ctx, value, self).ok:
            raise ChanClosed(_SEND_CLOSED)

    async def asend(
        self, value: T, *, timeout: float | None = None, ctx: Ctx | None = None
    ) -> None:
        """The asyncio form of :meth:`send`.

        If the task is cancelled while parked, ``CancelledError`` propagates and
        the value was not sent - unless a receiver had already taken it, in
        which case it was delivered exactly once.
        """
        if timeout is not None or ctx is not None:
            check_timeout(timeout)
            raise_if_done(ctx)
        mu = self._mu
        mu.acquire()  # (not `with`: cheaper on this hot path)
        try:
            # The common buffered case inline (it is a measurable share of a
            # task's send); _offer has the whole logic, and the only one once
            # the race detector is on.  No receiver waits on a non-empty buffer.
            buf = self._buf
            if 0 < len(buf) < self._cap and not self._closed and not _racehooks.enabled:
                buf.append(value)
                return
            if self._offer(value):
                return
            w = task_waiter(_SEND, value, self, mu)  # _SEND.begin's enqueue, in this lock hold
            self._sendq.push(w, 0, value)
        finally:
            mu.release()
        if not (await apark(_SEND, timeout, ctx, waiter=w)).ok:
            raise ChanClosed(_SEND_CLOSED)

    def try_send(self, value: T) -> bool:
        """Send ``value`` only if that needs no waiting; return whether it was sent.

        Raises ``ChanClosed`` if the channel is closed.  The same as
        ``select(Send(ch, value), default=True).index == 0``, cheaper.
        """
        with self._mu:
            return self._offer(value)

    # -- receive -------------------------------------------------------------------

    def recv(self, *, timeout: float | None = None, ctx: Ctx | None = None) -> T:
        """Receive the next value, blocking until there is one.

        Raises ``ChanClosed`` ("receive from closed channel") once the channel
        is closed and drained, ``TimeoutError`` after ``timeout`` seconds,
        ``ctx.err()`` once ``ctx`` ends.
        """
        if timeout is not None or ctx is not None:
            check_timeout(timeout)
            raise_if_done(ctx)
        with self._mu:
            value = self._take()
        if value is _EMPTY:
            w = park(_RECV, timeout, ctx, None, self)
            if w.ok:
                return w.value  # type: ignore[no-any-return]
        elif value is not _CLOSED:
            return value  # type: ignore[no-any-return]
        raise ChanClosed(_RECV_CLOSED)

    async def arecv(self, *, timeout: float | None = None, ctx: Ctx | None = None) -> T:
        """The asyncio form of :meth:`recv`.

        If the task is cancelled while parked, no value is lost: one handed to
        it at that moment goes back to the head of the channel.
        """
        if timeout is not None or ctx is not None:
            check_timeout(timeout)
            raise_if_done(ctx)
        mu = self._mu
        mu.acquire()
        try:
            buf = self._buf
            if buf and not self._sendq._q and not _racehooks.enabled:  # as in asend
                return buf.popleft()
            value = self._take()
            if value is _EMPTY:
                w = task_waiter(_RECV, None, self, mu)  # as in asend
                self._recvq.push(w)
        finally:
            mu.release()
        if value is _EMPTY:
            w = await apark(_RECV, timeout, ctx, waiter=w)
            if w.ok:
                return w.value  # type: ignore[no-any-return]
        elif value is not _CLOSED:
            return value  # type: ignore[no-any-return]
        raise ChanClosed(_RECV_CLOSED)

    def recv_ok(
        self, *, timeout: float | None = None, ctx: Ctx | None = None
    ) -> tuple[T | None, bool]:
        """Go's ``v, ok := <-ch``: ``(value, True)``, or ``(None, False)`` once the
        channel is closed and drained.  Raises as :meth:`recv` otherwise."""
        if timeout is not None or ctx is not None:
            check_timeout(timeout)
            raise_if_done(ctx)
        with self._mu:
            value = self._take()
        if value is _EMPTY:
            w = park(_RECV, timeout, ctx, None, self)
            return w.value, w.ok
        if value is _CLOSED:
            return None, False
        return value, True

    async def arecv_ok(
        self, *, timeout: float | None = None, ctx: Ctx | None = None
    ) -> tuple[T | None, bool]:
        """The asyncio form of :meth:`recv_ok`."""
        if timeout is not None or ctx is not None:
            check_timeout(timeout)
            raise_if_done(ctx)
        mu = self._mu
        mu.acquire()
        try:
            buf = self._buf
            if buf and not self._sendq._q and not _racehooks.enabled:  # as in asend
                return buf.popleft(), True
            value = self._take()
            if value is _EMPTY:
                w = task_waiter(_RECV, None, self, mu)  # as in asend
                self._recvq.push(w)
        finally:
            mu.release()
        if value is _EMPTY:
            w = await apark(_RECV, timeout, ctx, waiter=w)
            return w.value, w.ok
        if value is _CLOSED:
            return None, False
        return value, True

    def __iter__(self) -> Iterator[T]:
        """Receive values until the channel is closed and drained."""
        while True:
            value, ok = self.recv_ok()
            if not ok:
                return
            yield value  # type: ignore[misc]

    def __aiter__(self) -> AsyncIterator[T]:
        """Receive values (asyncio) until the channel is closed and drained."""
        return _AsyncChanIter(self)

    # -- close and inspection --------------------------------------------------------

    def close(self) -> None:
        """Close the channel: no more sends.

        Every parked receiver wakes with ``ok=False`` (buffered values are
        still received first by later calls); every parked sender wakes and
        raises ``ChanClosed``.  Closing a closed channel raises ``ChanClosed``
        ("close of closed channel").
        """
        with self._mu:
            if self._closed:
                raise ChanClosed(_CLOSE_CLOSED)
            self._closed = True
            if _racehooks.enabled:
                _racehooks.chan_close(self)
            self._recvq.wake_all(None, False)
            self._sendq.wake_all(None, False)

    @property
    def cap(self) -> int:
        """The buffer capacity (0 for a rendezvous channel)."""
        return self._cap

    def __len__(self) -> int:
        """The number of buffered values (a snapshot)."""
        with self._mu:
            return len(self._buf)

    def __bool__(self) -> bool:
        return True

    def statistics(self) -> ChanStatistics:
        """A snapshot of the buffer, the closed flag and the parked parties."""
        with self._mu:
            return ChanStatistics(
                cap=self._cap,
                len=len(self._buf),
                closed=self._closed,
                senders_waiting=sum(1 for _ in self._sendq.live()),
                receivers_waiting=sum(1 for _ in self._recvq.live()),
            )

    def __repr__(self) -> str:
        with self._mu:
            state = "closed" if self._closed else "open"
            return f"<Chan cap={self._cap} len={len(self._buf)} {state}>"


class _AsyncChanIter(AsyncIterator[T]):
    __slots__ = ("_ch",)

    def __init__(self, ch: Chan[T]) -> None:
        self._ch = ch

    async def __anext__(self) -> T:
        value, ok = await self._ch.arecv_ok()
        if not ok:
            raise StopAsyncIteration
        return value  # type: ignore[return-value]


class _SendOp:
    """A channel send, as the waiter runs it: the channel in ``w.data``, the value
    in ``w.value``.  One stateless instance serves every channel (no cycle)."""

    __slots__ = ()
    reason = "chan send"

    def begin(self, w: Waiter) -> bool:
        ch: Chan[Any] = w.data
        with ch._mu:
            if ch._offer(w.value):
                return True
            ch._sendq.push(w, 0, w.value)
            return False

    def abort(self, w: Waiter) -> None:
        ch: Chan[Any] = w.data
        with ch._mu:
            ch._sendq.discard(w)

    def undo(self, w: Waiter) -> None:
        """The value was taken (or the channel closed): nothing can be given back."""


class _RecvOp:
    """A channel receive, as the waiter runs it: the channel in ``w.data``, the
    result in ``w.value``/``w.ok``."""

    __slots__ = ()
    reason = "chan receive"

    def begin(self, w: Waiter) -> bool:
        ch: Chan[Any] = w.data
        with ch._mu:
            value = ch._take()
            if value is _EMPTY:
                ch._recvq.push(w)
                return False
            if value is _CLOSED:
                w.value, w.ok = None, False
            else:
                w.value = value
            return True

    def abort(self, w: Waiter) -> None:
        ch: Chan[Any] = w.data
        with ch._mu:
            ch._recvq.discard(w)

    def undo(self, w: Waiter) -> None:
        if w.ok:
            ch: Chan[Any] = w.data
            ch._put_back(w.value)


_SEND: Final = _SendOp()
_RECV: Final = _RecvOp()


# -- select ------------------------------------------------------------------------


class Recv(NamedTuple, Generic[T]):
    """A receive case of :func:`select` (a bare ``Chan`` means the same).

    ``Recv(None)`` is a disabled case, like a nil channel in Go.
    """

    chan: Chan[T] | None


class Send(NamedTuple, Generic[T]):
    """A send case of :func:`select`: send ``value`` on ``chan``.

    ``Send(None, v)`` is a disabled case, like a nil channel in Go.
    """

    chan: Chan[T] | None
    value: T


class Selected(NamedTuple):
    """The outcome of :func:`select`.

    ``index`` is the position of the case that fired among the arguments (or
    -1 when ``default=True`` and no case was ready).  For a receive case,
    ``value, ok`` are as in :meth:`Chan.recv_ok`; for a send case and for the
    default, ``value`` is None and ``ok`` is True and False respectively.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index, as Go names it
    value: Any
    ok: bool


_Case = Chan[Any] | Recv[Any] | Send[Any] | None
_selected = tuple.__new__  # Selected's own __new__ minus one Python call
_DEFAULT: Final = Selected(-1, None, False)


def _lock_all(chans: list[Chan[Any]]) -> list[Chan[Any]]:
    """Lock each of ``chans`` once, deadlock-free; return the channels to unlock.

    First without waiting, in the given order: that needs no sorting and,
    since a party that never waits while holding a lock cannot be part of a
    deadlock, it is safe.  If a lock is busy (or a channel appears twice),
    everything is released and the channels are locked, each once, in the
    global order (by ``id``), waiting as needed: Go's lock order.
    """
    seq, held = chans, 0  # the first `held` channels of `seq` are locked
    try:
        for ch in seq:
            if not ch._mu.acquire(False):
                break
            held += 1
        else:
            return seq
        while held:
            held -= 1
            seq[held]._mu.release()
        seq = sorted(set(chans), key=id)
        for ch in seq:
            ch._mu.acquire()
            held += 1
        return seq
    except BaseException:  # an interrupt between two acquisitions: undo them
        while held:
            held -= 1
            seq[held]._mu.release()
        raise


def _unlock_all(locked: list[Chan[Any]]) -> None:
    for ch in locked:
        ch._mu.release()


class _SelectOp:
    """One select call: its enabled cases and the channels it locks.

    ``cases`` holds ``(index, chan, is_send, value)`` for each enabled case
    and ``chans`` their channels, in the same order.
    """

    __slots__ = ("cases", "chans", "reason")

    def __init__(self, cases: tuple[_Case, ...]) -> None:
        live: list[tuple[int, Chan[Any], bool, Any]] = []
        chans: list[Chan[Any]] = []
        i = -1
        for case in cases:
            i += 1
            if isinstance(case, Chan):
                live.append((i, case, False, None))
                chans.append(case)
                continue
            if case is None:
                continue
            if isinstance(case, Recv):
                ch, is_send, value = case[0], False, None
            elif isinstance(case, Send):
                ch, is_send, value = case[0], True, case[1]
            else:
                raise TypeError(
                    f"select: case {i} must be a Chan, Recv, Send or None, "
                    f"got {type(case).__name__}"
                )
            if ch is None:
                continue
            if not isinstance(ch, Chan):
                raise TypeError(f"select: case {i} names a {type(ch).__name__}, not a Chan")
            if is_send and ch._recv_only:
                raise TypeError(f"select: case {i} sends on a receive-only channel")
            live.append((i, ch, is_send, value))
            chans.append(ch)
        self.cases = live
        self.chans = chans
        self.reason = "select" if live else "select (no cases)"

    def _poll(self) -> Selected | None:
        """Fire one ready case, chosen uniformly at random (all locks held)."""
        order = self.cases[:]
        n = len(order)
        for i in range(n):
            j = i + int(_random() * (n - i))
            case = order[j]
            order[j] = order[i]
            if case[2]:
                if case[1]._offer(case[3]):
                    return _selected(Selected, (case[0], None, True))
            else:
                value = case[1]._take()
                if value is not _EMPTY:
                    if value is _CLOSED:
                        return _selected(Selected, (case[0], None, False))
                    return _selected(Selected, (case[0], value, True))
        return None

    def poll(self) -> Selected | None:
        """Lock every involved channel and fire a ready case, if any."""
        locked = _lock_all(self.chans)
        try:
            return self._poll()
        finally:
            _unlock_all(locked)

    def begin(self, w: Waiter) -> bool:
        locked = _lock_all(self.chans)
        try:
            got = self._poll()
            if got is not None:
                w.index, w.value, w.ok = got
                return True
            for index, ch, is_send, value in self.cases:
                if is_send:
                    ch._sendq.push(w, index, value)
                else:
                    ch._recvq.push(w, index)
            w.data = True  # entries are queued: discard them when done
            return False
        finally:
            _unlock_all(locked)

    def discard(self, w: Waiter, fired: int) -> None:
        """Mark the entries of ``w`` other than case ``fired`` as dead in their queues."""
        for index, ch, is_send, _ in self.cases:
            if index != fired:
                with ch._mu:
                    (ch._sendq if is_send else ch._recvq).discard(w)

    def abort(self, w: Waiter) -> None:
        if w.data:
            self.discard(w, -1)

    def undo(self, w: Waiter) -> None:
        """A case fired but the task was cancelled: give a received value back."""
        if w.data:
            self.discard(w, w.index)
        for index, ch, is_send, _ in self.cases:
            if index == w.index:
                if w.ok and not is_send:
                    ch._put_back(w.value)
                return

    def result(self, w: Waiter) -> Selected:
        """The outcome of a completed wait: drop stale entries, raise a closed send."""
        if w.data:
            self.discard(w, w.index)
        if not w.ok:
            for index, _, is_send, _ in self.cases:
                if index == w.index and is_send:
                    raise ChanClosed(_SEND_CLOSED)
        return Selected(w.index, w.value, w.ok)


def select(
    *cases: _Case,
    default: bool = False,
    timeout: float | None = None,
    ctx: Ctx | None = None,
) -> Selected:
    """Go's ``select``: wait until one of the cases can proceed, and do it.

    A case is a ``Chan`` or ``Recv(ch)`` (receive), ``Send(ch, v)`` (send), or
    ``None`` (disabled; it keeps its position).  If several cases are ready,
    one is chosen uniformly at random.  With ``default=True`` the call never
    blocks: ``Selected(-1, None, False)`` when nothing was ready.  With no
    enabled case it blocks until ``timeout``/``ctx`` (forever without them).

    Returns ``Selected(index, value, ok)``.  Raises ``ChanClosed`` if the
    chosen case is a send on a closed channel (also one closed while
    waiting), ``TypeError`` for a case of another type, ``TimeoutError`` after
    ``timeout`` seconds, ``ctx.err()`` once ``ctx`` ends; in those cases no
    case fired.

    Threads::

        match select(jobs, Send(results, r), done, timeout=5):
            case Selected(0, job, True): ...
            case Selected(1, _, _): ...   # r was sent
            case Selected(2, _, False): return   # done closed

    asyncio::

        sel = await aselect(jobs, ctx.done)
    """
    if timeout is not None or ctx is not None:
        check_timeout(timeout)
        raise_if_done(ctx)
    op = _SelectOp(cases)
    got = op.poll()
    if got is not None:
        return got
    if default:
        return _DEFAULT
    return op.result(park(op, timeout, ctx, data=False))


async def aselect(
    *cases: _Case,
    default: bool = False,
    timeout: float | None = None,
    ctx: Ctx | None = None,
) -> Selected:
    """The asyncio form of :func:`select`.

    If the task is cancelled while parked, no case fired - or, if one had
    just fired, a received value goes back to its channel and a sent value
    stays delivered; ``CancelledError`` propagates either way.
    """
    if timeout is not None or ctx is not None:
        check_timeout(timeout)
        raise_if_done(ctx)
    op = _SelectOp(cases)
    got = op.poll()
    if got is not None:
        return got
    if default:
        return _DEFAULT
    return op.result(await apark(op, timeout, ctx, data=False))
