"""Timers and tickers as channels, as in Go's ``time`` package.

Times are ``time.monotonic()`` seconds throughout.  Every timer, ticker and
``after`` channel here (and every context deadline) is one entry in one
heap served by one daemon thread, ``goconc-timers``: ten thousand timers
cost ten thousand heap entries, not ten thousand threads, and they serve
threads and asyncio tasks on any loop alike.

Threads::

    from goconc import select, time
    sel = select(replies, time.after(2.0))  # give up after 2 s
    for t in time.tick(1.0):                # once a second, until the loop breaks
        report(t)
    timer = time.after_func(5.0, flush)     # flush() in its own goroutine in 5 s
    timer.stop()                            # True: flush will not run

asyncio::

    sel = await aselect(replies, time.after(2.0))
    async for t in time.tick(1.0):
        await report(t)
    await time.asleep(1.0, ctx=ctx)         # raises ctx.err() if ctx ends first

Durations: 0 fires at once; a negative or NaN duration raises ``ValueError``
naming the argument (Go treats a negative duration as zero; here it is far
more often a bug than an intent).
"""

from __future__ import annotations

import math
import threading
import time as _time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Final

from . import _racehooks, _timers
from ._park import Ctx, Waiter, apark, park
from ._timers import TimerStatistics
from .chan import Chan, ChanClosed

__all__ = [
    "Ticker",
    "Timer",
    "TimerStatistics",
    "after",
    "after_func",
    "asleep",
    "sleep",
    "statistics",
    "tick",
]


def _check_seconds(seconds: object, name: str = "seconds") -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"{name} must be >= 0, got {seconds!r}")
    return float(seconds)


def _check_period(seconds: object) -> float:
    s = _check_seconds(seconds)
    if s == 0 or math.isinf(s):
        raise ValueError(f"seconds must be > 0 and finite for a ticker, got {seconds!r}")
    return s


def _deliver(ch: Chan[float]) -> None:
    try:
        ch.try_send(_time.monotonic())
    except ChanClosed:
        pass  # the receiver closed it: nobody is left to deliver to


def after(seconds: float) -> Chan[float]:
    """A channel (capacity 1) that receives the firing time once, ``seconds`` from now.

    The time is a ``time.monotonic()`` value.  The channel is never closed.
    Use it as a select case::

        sel = select(results, time.after(1.0))
        if sel.index == 1:
            raise TimeoutError("no result within a second")

    For a timeout that must be released early (in a loop), prefer a
    context with a timeout or a call's own ``timeout=``: the timer of
    ``after`` lives until it fires.  ``seconds == 0`` delivers at once;
    raises ``ValueError`` for a negative or NaN ``seconds``.
    """
    s = _check_seconds(seconds)
    ch: Chan[float] = Chan(1)
    if s == 0:
        _deliver(ch)
    elif s != math.inf:
        _timers.call_at(_time.monotonic() + s, partial(_deliver, ch))
    return ch


class Ticker(Chan[float]):
    """A channel (capacity 1) that receives the time every ``seconds``; see :func:`tick`.

    ``stop()`` stops the ticks (the channel is not closed, as in Go: a
    receiver blocked on it stays blocked, so combine it with ``ctx.done`` in
    a ``select`` or use ``timeout=``); ``reset(seconds)`` restarts it with a
    new period.  After ``stop()`` or ``reset()`` returns, no tick from before
    is received (a buffered one is discarded, as in Go 1.23).

    Ticks are dropped for a slow receiver, as in Go: the channel buffers one
    tick; a tick that finds the buffer full, or that was due while the
    process was too busy to fire it, is not delivered and is counted in
    :attr:`dropped`.  Ticks stay on the ``seconds`` grid: a late receiver
    does not shift later ticks.

    A ticker that is no longer referenced stops by itself (its timer holds
    it weakly), so forgetting ``stop()`` leaks nothing once it is dropped.
    """

    __slots__ = ("_dropped", "_gen", "_handle", "_period", "_tmu")

    def __init__(self, seconds: float) -> None:
        period = _check_period(seconds)
        super().__init__(1)
        self._tmu = threading.Lock()
        # Guarded by _tmu: the period, the pending timer, a generation that
        # every stop/reset bumps (a firing of an older generation does
        # nothing), and the count of ticks not delivered.
        self._period = period
        self._gen = 0
        self._handle: _timers.Handle | None = None
        self._dropped = 0
        with self._tmu:
            self._schedule(_time.monotonic() + period)

    def _schedule(self, when: float) -> None:  # _tmu held
        self._handle = _timers.call_at(when, partial(_tick, weakref.ref(self), self._gen, when))

    def _fire(self, gen: int, when: float) -> None:
        with self._tmu:
            if gen != self._gen:
                return
            now = _time.monotonic()
            try:
                if not self.try_send(now):
                    self._dropped += 1
            except ChanClosed:
                self._handle = None  # closed by its owner: no more ticks
                return
            period = self._period
            nxt = when + period
            if nxt <= now:  # the facility was late: skip the missed ticks
                missed = max(1, int((now - when) // period))
                self._dropped += missed
                nxt = when + (missed + 1) * period
                while nxt <= now:
                    nxt += period
                    self._dropped += 1
            self._schedule(nxt)

    def _halt(self) -> None:  # _tmu held
        self._gen += 1
        h, self._handle = self._handle, None
        if h is not None:
            h.cancel()
        try:
            self.recv_ok(timeout=0)  # discard a stale tick, if one is buffered
        except TimeoutError:
            pass

    def stop(self) -> None:
        """Stop the ticks; no tick is received after this returns.  Idempotent."""
        with self._tmu:
            self._halt()

    def reset(self, seconds: float) -> None:
        """Restart the ticks with period ``seconds``, the first one ``seconds`` from now.

        Also restarts a stopped ticker.  Raises ``ValueError`` unless
        ``seconds`` is positive and finite.
        """
        period = _check_period(seconds)
        with self._tmu:
            self._halt()
            self._period = period
            self._schedule(_time.monotonic() + period)

    @property
    def period(self) -> float:
        """The current period in seconds."""
        with self._tmu:
            return self._period

    @property
    def dropped(self) -> int:
        """How many ticks were not delivered (receiver too slow, or process too busy)."""
        with self._tmu:
            return self._dropped

    def __repr__(self) -> str:
        with self._tmu:
            state = "running" if self._handle is not None else "stopped"
            return f"<Ticker every {self._period}s {state} dropped={self._dropped}>"


def _tick(ref: weakref.ref[Ticker], gen: int, when: float) -> None:
    t = ref()
    if t is not None:
        t._fire(gen, when)


def tick(seconds: float) -> Ticker:
    """A :class:`Ticker` receiving the time every ``seconds`` (> 0, finite).

    ::

        ticker = time.tick(0.5)
        try:
            for t in ticker:  # or: async for t in ticker
                poll()
                if done():
                    break
        finally:
            ticker.stop()

    Raises ``ValueError`` unless ``seconds`` is positive and finite.
    """
    return Ticker(seconds)


class Timer:
    """A pending call made by :func:`after_func`: ``stop()`` and ``reset(seconds)``."""

    __slots__ = ("__weakref__", "_fn", "_handle", "_mu")

    def __init__(self, fn: Callable[[], object]) -> None:
        self._fn = fn
        self._mu = threading.Lock()
        self._handle: _timers.Handle | None = None  # guarded by _mu: the current schedule

    def _start(self, seconds: float) -> None:  # _mu held
        if _racehooks.enabled:
            _racehooks.release(self)  # setting the timer happens before fn runs
        self._handle = _timers.call_at(_time.monotonic() + seconds, self._fire)

    def _fire(self) -> None:
        from .runtime import go

        if _racehooks.enabled:
            _racehooks.acquire(self)
        go(self._fn)

    def stop(self) -> bool:
        """Prevent the call; True if this prevented it, False if it already started
        (or was stopped).  Does not wait for a running call."""
        with self._mu:
            h, self._handle = self._handle, None
            return h is not None and h.cancel()

    def reset(self, seconds: float) -> bool:
        """Schedule the call ``seconds`` from now (again, if it already ran).

        Returns True if the timer was pending (that pending call is replaced),
        False if it had run or been stopped.  Raises ``ValueError`` for a
        negative or NaN ``seconds``.
        """
        s = _check_seconds(seconds)
        with self._mu:
            h = self._handle
            active = h is not None and h.cancel()
            self._start(s)
            return active

    def __repr__(self) -> str:
        with self._mu:
            h = self._handle
        when = f" at {h.when:.3f}" if h is not None else ""
        return f"<Timer {getattr(self._fn, '__qualname__', self._fn)!r}{when}>"


def after_func(seconds: float, fn: Callable[[], object]) -> Timer:
    """Run ``fn()`` in its own goroutine ``seconds`` from now; return its :class:`Timer`.

    ``fn`` may be a plain function (it gets a thread) or a coroutine
    function (it becomes a task).  ``timer.stop()`` returns True if it
    prevented the call::

        t = time.after_func(30.0, lambda: log.warning("still running"))
        work()
        t.stop()

    Raises ``ValueError`` for a negative or NaN ``seconds``, ``TypeError``
    if ``fn`` is not callable.
    """
    s = _check_seconds(seconds)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    t = Timer(fn)
    with t._mu:
        t._start(s)
    return t


class _SleepOp:
    """Waits for nothing: a sleep ends by its timeout or its context."""

    __slots__ = ()
    reason = "sleep"

    def begin(self, w: Waiter) -> bool:
        return False

    def abort(self, w: Waiter) -> None:
        pass

    def undo(self, w: Waiter) -> None:
        pass


_SLEEP: Final = _SleepOp()


def sleep(seconds: float, *, ctx: Ctx | None = None) -> None:
    """Block the thread for ``seconds``, or until ``ctx`` ends (then raise ``ctx.err()``).

    ::

        time.sleep(backoff, ctx=ctx)  # a retry loop that stops when ctx ends

    Raises ``ValueError`` for a negative or NaN ``seconds``.
    """
    s = _check_seconds(seconds)
    try:
        park(_SLEEP, s, ctx)
    except TimeoutError as e:
        if type(e) is not TimeoutError:  # a context's DeadlineExceeded
            raise


async def asleep(seconds: float, *, ctx: Ctx | None = None) -> None:
    """The asyncio form of :func:`sleep`: ``await time.asleep(1.0, ctx=ctx)``."""
    s = _check_seconds(seconds)
    try:
        await apark(_SLEEP, s, ctx)
    except TimeoutError as e:
        if type(e) is not TimeoutError:
            raise


def statistics() -> TimerStatistics:
    """A snapshot of the one timer facility: pending timers, calls fired, thread state."""
    return _timers.statistics()
