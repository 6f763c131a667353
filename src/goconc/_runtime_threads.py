"""The OS threads that run thread goroutines, kept for reuse as Go keeps idle Ms.

Starting an OS thread from Python costs a few hundred microseconds on a busy
machine; handing a goroutine to a thread that is already waiting costs one lock
release.  So a thread whose goroutine has finished does not exit at once: it
offers itself as *idle* and waits up to ``idle_timeout`` seconds for the next
``go()``.  The most recently idle thread is reused first (a LIFO), so that in
a quiet period the others time out and exit.

An idle thread is not a goroutine: it runs no user code and is not in the
goroutine registry.  Idle threads are named ``goconc-idle``; a thread running a
goroutine is named after it (``goroutine-7``).  All of them are daemon threads,
so they never keep the interpreter alive (Go exits when ``main`` returns).

The pool knows nothing of goroutines: a job is a tuple whose first item is a
function called as ``job[0](worker, job)`` on the worker's thread.  That
function must call :func:`offer_idle` exactly once and must not raise: it
offers the thread once the user's code is over, before it publishes the
goroutine's end, so that a ``join`` followed by a ``go`` finds the thread
already idle.
"""

from __future__ import annotations

import _thread
import os
import threading
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "PoolStatistics",
    "Worker",
    "get_idle_timeout",
    "idle_idents",
    "offer_idle",
    "set_idle_timeout",
    "start",
    "statistics",
]

IDLE_NAME: Final = "goconc-idle"

Job = tuple[Any, ...]


class Worker:
    """One reusable OS thread: a signal lock and the job handed to it."""

    __slots__ = ("ident", "job", "sig", "thread")

    def __init__(self, job: Job) -> None:
        # Held while the worker has nothing to do; released once per job
        # handed over (under _mu, after setting job).
        self.sig = _thread.allocate_lock()
        self.sig.acquire()
        self.job: Job | None = job  # written by the giver before releasing sig
        self.thread: threading.Thread | None = None
        self.ident = 0  # the OS thread's ident once running


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """Counters of the thread pool (since the process started)."""

    threads_started: int
    threads_reused: int
    idle_threads: int
    idle_timeout: float


_mu = threading.Lock()
# guarded by _mu: the workers waiting for a job, most recently idle last
# (dict.popitem() takes it); a worker is here iff it may be handed a job.
_idle: dict[Worker, None] = {}
_started = 0  # guarded by _mu; threads ever started
_reused = 0  # guarded by _mu; jobs handed to an idle thread
_idle_timeout = 5.0  # guarded by _mu; seconds an idle thread waits before exiting


def start(job: Job) -> None:
    """Run ``job`` on an idle thread, or on a new daemon thread if none is idle.

    Raises ``RuntimeError`` if the OS cannot start a thread.
    """
    global _started, _reused
    with _mu:
        if _idle:
            w, _ = _idle.popitem()
            w.job = job
            _reused += 1
            w.sig.release()
            return
        _started += 1
    w = Worker(job)
    t = threading.Thread(target=_main, args=(w,), name=IDLE_NAME, daemon=True)
    w.thread = t
    try:
        t.start()
    except BaseException:
        with _mu:
            _started -= 1
        raise


def offer_idle(w: Worker) -> None:
    """Make ``w`` available for the next job (called by the job on ``w``'s thread)."""
    t = w.thread
    if t is not None:
        t.name = IDLE_NAME
    with _mu:
        _idle[w] = None


def _main(w: Worker) -> None:
    w.ident = threading.get_ident()
    job = w.job
    while job is not None:
        w.job = None
        job[0](w, job)
        job = None  # drop the finished goroutine before waiting
        job = _next_job(w)


def _next_job(w: Worker) -> Job | None:
    """Wait for the next job; None once the idle timeout passed with none."""
    with _mu:
        timeout = _idle_timeout
    if not w.sig.acquire(timeout=timeout):
        with _mu:
            if w in _idle:
                del _idle[w]
                return None
        w.sig.acquire()  # a job was handed over just as the wait timed out
    return w.job


def get_idle_timeout() -> float:
    """Seconds an idle thread waits for a new goroutine before it exits."""
    with _mu:
        return _idle_timeout


def set_idle_timeout(seconds: float) -> float:
    """Set how long idle threads wait for new goroutines; return the previous value.

    Applies to threads that become idle from now on.  ``0`` makes every
    goroutine thread exit when its goroutine ends.
    """
    global _idle_timeout
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not 0 <= seconds <= _thread.TIMEOUT_MAX:
        raise ValueError(f"seconds must be >= 0 and finite, got {seconds!r}")
    with _mu:
        prev = _idle_timeout
        _idle_timeout = float(seconds)
    return prev


def idle_idents() -> set[int]:
    """The OS thread idents of the idle threads (a snapshot)."""
    with _mu:
        return {w.ident for w in _idle}


def statistics() -> PoolStatistics:
    with _mu:
        return PoolStatistics(_started, _reused, len(_idle), _idle_timeout)


def _after_fork_in_child() -> None:
    # The idle threads do not exist in a forked child.
    global _mu
    _mu = threading.Lock()
    _idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
