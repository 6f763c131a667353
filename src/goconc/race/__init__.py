"""A happens-before data race detector for goconc programs, like ``go test -race``.

Two goroutines (threads or asyncio tasks) race when both access one location,
at least one writes, and no goconc synchronisation orders the accesses: no
channel send/receive, close, Mutex or RWMutex unlock/lock, WaitGroup
done/wait, Once, atomic store/load, Cond, Semaphore, Pool put/get, context
cancel (observed by ``done``, ``err()``, ``cause()``, a child, ``after_func``),
a timer set before its ``time.after_func`` runs, a freed errgroup slot under
``set_limit``, ``go()`` or join between them.  A plain asyncio task (one
goconc did not start: ``asyncio.run``'s, ``create_task``'s, ``gather``'s)
counts as ended for its creator on that thread once it is done, since
``await``, ``gather`` and ``run_until_complete`` are how a creator learns it.
Threading's own locks and events are not goconc synchronisation: the detector
does not see them.  Go's memory model says there is no benign race; neither
is there one in Python, where ``counter += 1`` is a read and a write that
another thread can interleave, and where a free-threaded interpreter tears
multi-field updates for real.

The detector watches only what it is shown, and costs nothing while it is
off (each synchronising operation checks one flag):

* ``race.watch(obj)``: every instance attribute of ``obj``;
* ``race.Shared({...})`` / ``race.Shared([...])``: every key or index;
* ``race.watch_module(mod)``: a module's mutable globals (the names its
  functions declare ``global``); ``goconc race script.py`` does this for the
  script it runs.

Turn it on with ``GOCONC_RACE=1`` (at ``import goconc``), ``race.enable()``,
``goconc race path/to/script.py [args]`` (exits 66 if a race was found, as Go
does), or the pytest option ``--goconc-race``.  Each race is printed once, in
the shape of Go's report (``WARNING: DATA RACE``, both accesses with their
stacks, where each goroutine was created), and kept in :func:`reports`.

Example::

    from goconc import go, race, sync

    race.enable()
    counter = race.Shared({"n": 0})
    wg = sync.WaitGroup()
    for _ in range(2):
        wg.go(lambda: counter.__setitem__("n", counter["n"] + 1))
    wg.wait(timeout=5)
    assert race.reports()          # the two increments race
"""

from __future__ import annotations

import atexit
import sys

from . import _detector, _report
from ._instrument import watch_module
from ._report import RaceReport, reports, set_output
from ._watch import Shared, SharedDict, SharedList, watch

__all__ = [
    "RaceReport",
    "Shared",
    "SharedDict",
    "SharedList",
    "disable",
    "enable",
    "enabled",
    "reports",
    "reset",
    "set_output",
    "summary",
    "watch",
    "watch_module",
]

_summary_registered = False


def enable(*, summary_at_exit: bool = True) -> None:
    """Turn the detector on for the whole process (idempotent).

    Enable it before starting the goroutines whose accesses it should judge:
    happens-before edges created while it was off are not known to it.
    """
    global _summary_registered
    _detector.install()
    if summary_at_exit and not _summary_registered:
        _summary_registered = True
        atexit.register(_print_summary)


def disable() -> None:
    """Turn the detector off; reports found so far are kept."""
    _detector.uninstall()


def enabled() -> bool:
    """Whether the detector is on."""
    from .. import _racehooks

    return _racehooks.enabled


def reset() -> None:
    """Forget every report, clock and watched location's history."""
    _detector.reset()
    _report.clear()


def summary() -> str:
    """``Found N data race(s)``, as Go prints at exit, or an empty string."""
    n = len(reports())
    return f"Found {n} data race(s)" if n else ""


def _print_summary() -> None:
    text = summary()
    if text:
        print(f"==================\n{text}", file=sys.stderr, flush=True)
