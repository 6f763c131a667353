"""Go's ``sync`` package for threads and asyncio tasks alike.

Every primitive here can be used from OS threads and from asyncio tasks (on
any event loop) at the same time: the blocking form has the plain name and
blocks the calling thread, its twin with an ``a`` prefix (``alock``,
``arlock``, ``aacquire``; ``wait_async`` for ``wait``) suspends the calling
task.  Every blocking call takes ``timeout=`` (seconds; raises
``TimeoutError``) and ``ctx=`` (a goconc Context; raises ``ctx.err()``), and
a call that fails that way, or whose task is cancelled, leaves the primitive
as if it had not been made.  Misuse raises :class:`SyncError` with Go's
message at the call site.

* :class:`Mutex`: normal mode (newcomers may barge) and starvation mode (an
  unlock hands the lock to the oldest waiter once waiting exceeds 1 ms), as
  Go since 1.9.
* :class:`RWMutex`: readers or one writer; a waiting writer blocks new readers.
* :class:`WaitGroup` (with Go 1.25's ``go``), :class:`Once` and
  :func:`once_func`/:func:`once_value`/:func:`once_values`, :class:`Cond`.
* :class:`Semaphore`: golang.org/x/sync's weighted FIFO semaphore.
* :class:`Pool`: reusable objects, with per-thread caches and a victim cache
  emptied by the garbage collector.

Each primitive's ``statistics()`` returns a frozen record of its state and
contention; :func:`statistics` sums contention over the whole process (also
shown by ``goconc.runtime.statistics()["sync"]``).

Example::

    from goconc import sync

    mu = sync.Mutex()
    wg = sync.WaitGroup()
    total = 0

    def add(n: int) -> None:
        global total
        with mu:
            total += n

    for i in range(10):
        wg.go(add, i)
    wg.wait(timeout=5)
"""

from __future__ import annotations

from ._common import Locker, SyncError
from ._cond import Cond
from ._mutex import Mutex
from ._once import Once, once_func, once_value, once_values
from ._pool import Pool, pool_totals
from ._rwmutex import RLocker, RWMutex
from ._semaphore import Semaphore
from ._stats import (
    CondStatistics,
    MutexStatistics,
    PoolStatistics,
    RWMutexStatistics,
    SemaphoreStatistics,
    SyncStatistics,
    WaitGroupStatistics,
)
from ._stats import totals as _totals
from ._waitgroup import WaitGroup

__all__ = [
    "Cond",
    "CondStatistics",
    "Locker",
    "Mutex",
    "MutexStatistics",
    "Once",
    "Pool",
    "PoolStatistics",
    "RLocker",
    "RWMutex",
    "RWMutexStatistics",
    "Semaphore",
    "SemaphoreStatistics",
    "SyncError",
    "SyncStatistics",
    "WaitGroup",
    "WaitGroupStatistics",
    "once_func",
    "once_value",
    "once_values",
    "statistics",
]


def statistics() -> SyncStatistics:
    """Contention totals over every sync primitive, and the live pools' figures summed."""
    pools, pool = pool_totals()
    return _totals(pools, pool)


def _register_statistics() -> None:
    # goconc.runtime collects every statistics source for the debug server.
    try:
        from .. import runtime
    except ImportError:  # pragma: no cover - the runtime is part of goconc
        return
    try:
        runtime.register_statistics("sync", statistics)
    except ValueError:  # already registered (this module was reloaded)
        pass


_register_statistics()
