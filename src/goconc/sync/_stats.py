"""Contention statistics of the sync primitives, as small frozen records.

Each primitive counts its own events in fields guarded by the lock it holds
anyway (a Mutex counts acquisitions while it is held), and answers
``statistics()`` with one of the records below.  Contention events (a wait
that blocked, its length, a starvation-mode entry) are also added to totals
per class, kept here under one small lock: the slow paths that add to them
already cost microseconds, and the totals keep no reference to any instance.
:func:`totals` is what ``goconc.runtime.statistics()["sync"]`` shows.
"""

from __future__ import annotations

import _thread
from dataclasses import dataclass

__all__ = [
    "CondStatistics",
    "MutexStatistics",
    "PoolStatistics",
    "RWMutexStatistics",
    "SemaphoreStatistics",
    "SyncStatistics",
    "WaitGroupStatistics",
    "add",
    "totals",
]


@dataclass(frozen=True)
class MutexStatistics:
    """A snapshot of one :class:`Mutex` (see :meth:`Mutex.statistics`)."""

    locked: bool
    starving: bool  # in starvation mode: unlock hands the lock to the oldest waiter
    waiting: int  # waiters queued now
    acquisitions: int  # every lock, alock and successful try_lock
    contended: int  # acquisitions that had to wait
    wait_seconds: float  # total time those waited
    handoffs: int  # unlocks that handed the lock directly to the oldest waiter
    starvation_entries: int  # times the mutex entered starvation mode


@dataclass(frozen=True)
class RWMutexStatistics:
    """A snapshot of one :class:`RWMutex` (see :meth:`RWMutex.statistics`)."""

    readers: int  # read locks held now
    writer: bool  # the write lock is held
    readers_waiting: int
    writers_waiting: int
    read_acquisitions: int
    write_acquisitions: int
    contended: int  # acquisitions (read or write) that had to wait
    wait_seconds: float


@dataclass(frozen=True)
class WaitGroupStatistics:
    """A snapshot of one :class:`WaitGroup` (see :meth:`WaitGroup.statistics`)."""

    count: int  # the counter
    waiters: int  # wait/wait_async callers blocked now
    waits: int  # waits that blocked and returned


@dataclass(frozen=True)
class CondStatistics:
    """A snapshot of one :class:`Cond` (see :meth:`Cond.statistics`)."""

    waiters: int
    waits: int  # waits that returned (woken)
    signals: int
    broadcasts: int


@dataclass(frozen=True)
class SemaphoreStatistics:
    """A snapshot of one :class:`Semaphore` (see :meth:`Semaphore.statistics`)."""

    size: int
    held: int  # weight acquired and not released
    waiting: int  # acquire calls queued now
    acquisitions: int
    contended: int  # acquisitions that had to wait
    wait_seconds: float


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of one :class:`Pool`, or of all live pools (see :meth:`Pool.statistics`)."""

    gets: int
    misses: int  # gets that found the pool empty (then ``new`` was called, if any)
    puts: int
    news: int  # calls of ``new``
    pooled: int  # objects held now, the victim cache included (approximate)


@dataclass(frozen=True)
class SyncStatistics:
    """Totals over every sync primitive in the process (``goconc.sync.statistics()``).

    Contention only, summed over all instances that ever existed; the pool
    figures are summed over the pools alive now.
    """

    mutex_contended: int
    mutex_wait_seconds: float
    mutex_handoffs: int
    mutex_starvation_entries: int
    rwmutex_contended: int
    rwmutex_wait_seconds: float
    waitgroup_waits: int
    waitgroup_wait_seconds: float
    cond_waits: int
    semaphore_contended: int
    semaphore_wait_seconds: float
    pools: int
    pool_gets: int
    pool_misses: int
    pool_puts: int
    pool_news: int


_mu = _thread.allocate_lock()
# Guarded by _mu: the per-class totals, by SyncStatistics field name.
_totals: dict[str, float] = {
    "mutex_contended": 0,
    "mutex_wait_seconds": 0.0,
    "mutex_handoffs": 0,
    "mutex_starvation_entries": 0,
    "rwmutex_contended": 0,
    "rwmutex_wait_seconds": 0.0,
    "waitgroup_waits": 0,
    "waitgroup_wait_seconds": 0.0,
    "cond_waits": 0,
    "semaphore_contended": 0,
    "semaphore_wait_seconds": 0.0,
}


def add(name: str, value: float, name2: str | None = None, value2: float = 0.0) -> None:
    """Add to one or two totals at once (a contended wait: a count and seconds)."""
    with _mu:
        _totals[name] += value
        if name2 is not None:
            _totals[name2] += value2


def totals(pools: int, pool: PoolStatistics) -> SyncStatistics:
    """The totals, with the pool figures given by the caller."""
    with _mu:
        t = dict(_totals)
    return SyncStatistics(
        mutex_contended=int(t["mutex_contended"]),
        mutex_wait_seconds=t["mutex_wait_seconds"],
        mutex_handoffs=int(t["mutex_handoffs"]),
        mutex_starvation_entries=int(t["mutex_starvation_entries"]),
        rwmutex_contended=int(t["rwmutex_contended"]),
        rwmutex_wait_seconds=t["rwmutex_wait_seconds"],
        waitgroup_waits=int(t["waitgroup_waits"]),
        waitgroup_wait_seconds=t["waitgroup_wait_seconds"],
        cond_waits=int(t["cond_waits"]),
        semaphore_contended=int(t["semaphore_contended"]),
        semaphore_wait_seconds=t["semaphore_wait_seconds"],
        pools=pools,
        pool_gets=pool.gets,
        pool_misses=pool.misses,
        pool_puts=pool.puts,
        pool_news=pool.news,
    )
