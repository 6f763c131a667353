"""The one timer facility: a heap of deadlines served by one daemon thread.

Design note
-----------
Every timed event in goconc that is not a waiter's own timeout (``time.after``,
tickers, ``time.after_func``, context deadlines) is an entry in one heap,
ordered by its ``time.monotonic()`` deadline, and fired by one daemon thread,
``goconc-timers``, started on first use.  A thousand timers cost a thousand
heap entries, never a thousand threads, and the facility serves threads and
any number of event loops alike because its callbacks only ever do
non-blocking things: close a channel, offer a value to a buffered channel,
cancel a context, start a goroutine.  A callback must never block: every user
function is run through ``goconc.runtime.go`` by the caller, not here.

Cancellation is lazy: a cancelled entry stays in the heap, marked dead, and is
skipped when it reaches the top; once dead entries make up more than half of
the heap it is rebuilt, so cancelling costs O(1) amortised and a program that
creates and cancels millions of timeouts keeps a heap the size of its live
timers.  (Contexts created with a timeout and cancelled early are the common
case.)

The thread sleeps on a condition until the earliest deadline; scheduling an
entry that becomes the new earliest wakes it.  After ``os.fork`` the child
gets a fresh lock and, if timers are pending, a fresh thread.

An exception escaping a callback is logged and the thread carries on: one bad
callback must not stop every other timer in the process.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["THREAD_NAME", "Handle", "TimerStatistics", "call_at", "statistics"]

#: The name of the facility's thread (leak checkers should expect it).
THREAD_NAME: Final = "goconc-timers"

_log = logging.getLogger("goconc.time")

# Condition.wait rejects timeouts above threading.TIMEOUT_MAX; the thread
# re-checks the heap after any wake-up, so a bounded sleep changes nothing.
_MAX_SLEEP: Final = 3600.0


@dataclass(frozen=True, slots=True)
class TimerStatistics:
    """A snapshot of the timer facility (for tests and the debug server)."""

    #: Entries waiting to fire (cancelled ones excluded).
    pending: int
    #: Callbacks run since the process started.
    fired: int
    #: Whether the facility's thread is running.
    thread_alive: bool


class Handle:
    """One scheduled call; ``cancel()`` prevents it if it has not started."""

    __slots__ = ("_fn", "when")

    def __init__(self, when: float, fn: Callable[[], object]) -> None:
        self.when = when
        # guarded by _facility.mu; None once fired or cancelled (then the heap
        # entry, if still there, is dead).
        self._fn: Callable[[], object] | None = fn

    def cancel(self) -> bool:
        """Prevent the call; True if this call prevented it (it had not started)."""
        return _facility.cancel(self)

    def __repr__(self) -> str:
        state = "pending" if self._fn is not None else "done"
        return f"<goconc timer at {self.when:.3f} {state}>"


class _Facility:
    __slots__ = ("cond", "dead", "fired", "heap", "mu", "seq", "thread")

    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.cond = threading.Condition(self.mu)
        # guarded by mu: a heap of (when, seq, handle); seq breaks ties in
        # scheduling order.  `dead` counts entries whose handle was cancelled
        # (handle._fn is None) and that are still in the heap.
        self.heap: list[tuple[float, int, Handle]] = []
        self.dead = 0
        self.seq = 0
        self.fired = 0
        self.thread: threading.Thread | None = None  # guarded by mu; started lazily

    def call_at(self, when: float, fn: Callable[[], object]) -> Handle:
        h = Handle(when, fn)
        with self.mu:
            self.seq += 1
            heapq.heappush(self.heap, (when, self.seq, h))
            if self.thread is None:
                self._start()
            elif self.heap[0][2] is h:
                self.cond.notify()
        return h

    def cancel(self, h: Handle) -> bool:
        with self.mu:
            if h._fn is None:
                return False
            h._fn = None
            self.dead += 1
            heap = self.heap
            if self.dead > 64 and self.dead * 2 > len(heap):
                self.heap = [e for e in heap if e[2]._fn is not None]
                heapq.heapify(self.heap)
                self.dead = 0
            return True

    def statistics(self) -> TimerStatistics:
        with self.mu:
            thread = self.thread
            return TimerStatistics(
                pending=len(self.heap) - self.dead,
                fired=self.fired,
                thread_alive=thread is not None and thread.is_alive(),
            )

    def _start(self) -> None:  # called with mu held
        t = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self.thread = t
        t.start()

    def _due(self) -> list[Callable[[], object]]:
        """Wait for the earliest deadline; pop and return what is due."""
        with self.mu:
            while True:
                heap = self.heap
                now = time.monotonic()
                if heap and heap[0][0] <= now:
                    break
                if heap:
                    self.cond.wait(min(heap[0][0] - now, _MAX_SLEEP))
                else:
                    self.cond.wait(_MAX_SLEEP)
            due: list[Callable[[], object]] = []
            while heap and heap[0][0] <= now:
                h = heapq.heappop(heap)[2]
                fn = h._fn
                if fn is None:
                    self.dead -= 1
                    continue
                h._fn = None
                due.append(fn)
            self.fired += len(due)
            return due

    def _run(self) -> None:
        while True:
            for fn in self._due():
                try:
                    fn()
                except Exception:
                    _log.exception("goconc: timer callback %r raised", fn)

    def after_fork_in_child(self) -> None:
        self.mu = threading.Lock()
        self.cond = threading.Condition(self.mu)
        self.thread = None
        if self.heap:
            self._start()


_facility = _Facility()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_facility.after_fork_in_child)


def call_at(when: float, fn: Callable[[], object]) -> Handle:
    """Call ``fn()`` on the timer thread once ``time.monotonic() >= when``.

    ``fn`` must be quick and must not block (it runs on the one thread that
    fires every timer).  ``when`` may be in the past (fires at once) but not
    NaN; an infinite ``when`` never fires.
    """
    if math.isnan(when):
        raise ValueError("when must not be NaN")
    return _facility.call_at(when, fn)


def statistics() -> TimerStatistics:
    """A snapshot of the timer facility."""
    return _facility.statistics()
