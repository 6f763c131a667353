"""``goconc bench``: every measurement in one command, ratios against peers.

Each workload (unbuffered ping-pong, producer/consumer, select, Mutex, the
starvation experiment, atomic loads, 100,000 goroutines, context trees, ...)
is measured for goconc and for its peers (``queue.Queue``, ``asyncio.Queue``,
janus, culsans, aiologic, trio, anyio, ``threading.Lock``, and Go itself with
``--go``) in the same run, each case in a fresh worker process, and printed as
a table of medians with the ratio goconc/peer and whether each stated target
is met.  A peer that is not installed is reported as skipped.

Workloads live in the source checkout's ``benchmarks/`` directory (one module
``bench_*.py`` per area, Go programs in ``benchmarks/go``); set
``GOCONC_BENCHMARKS`` to use another directory.

Usage::

    goconc bench [--quick] [--only NAME] [--json PATH] [--plot DIR] [--go]
                 [--python PATH ...] [--markdown BENCHMARKS.md] [--reps N]
"""

from __future__ import annotations

from ._registry import WORKLOADS, Target, case, go_case, workload
from ._runner import main

__all__ = ["WORKLOADS", "Target", "case", "go_case", "main", "workload"]
