"""Parallelism: CPU-bound pure-Python work fanned out over 1, 2 and 4 goroutines.

With the GIL, threads that only compute take turns, and fanning the work out gains nothing
(about 1.0x, less with the switching).  On free-threaded CPython (``python3.13t``, built by
``scripts/free-threaded-python.sh``) they run on every core at once.  Each case measures the
same total work done by 1, 2 and 4 goroutines, in one call, and reports the speed-up over 1
goroutine; run it on both interpreters side by side with::

    goconc bench --only fan-out --python "$(scripts/free-threaded-python.sh)"

The channel and Mutex figures on both interpreters come from the other workloads
(``--only pingpong --only mutex`` with the same ``--python``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from goconc.bench import Target, case, workload

WAIT = 300.0
# Iterations of _burn for the whole job at scale 1: about 0.25 s for one goroutine here.
TOTAL = 8_000_000
# Each case times the job this many times with 1, 2 and 4 goroutines, interleaved, and keeps
# each count's best time: a burst of other work on the machine then spoils one round, not
# the figure.
ROUNDS = 3
# parallel_map and ThreadPoolExecutor take the job as this many equal items.
CHUNKS = 16
FANOUT = (2, 4)

FAN_OUT = "cpu-bound fan-out"

workload(
    FAN_OUT,
    "speed-up",
    lower_is_better=False,
    description=(
        "The same pure-Python computation (a tight integer loop, about 0.25 s on one core at "
        "full scale) done by 1, 2 and 4 goroutines, all measured in the same call (best of "
        f"{ROUNDS} interleaved rounds each): speed-up is the time with 1 divided by the time "
        "with 2 (speed-up x4: with 4). "
        "goconc errgroup: a Group running k goroutine threads, each doing 1/k of the loop; "
        f"goconc parallel_map: patterns.parallel_map over {CHUNKS} equal items with limit k; "
        f"ThreadPoolExecutor: max_workers=k mapping the same {CHUNKS} items. "
        "Only a free-threaded interpreter can run the goroutines in parallel: the 1.7x target "
        "is judged on the free-threaded build; with the GIL the speed-up stays about 1.0x, as "
        "expected, and the target reads not applicable there. On a 2-core machine 4 "
        "goroutines gain no more than 2."
    ),
    targets=tuple(
        Target(
            "",
            0,
            "2 goroutines at least 1.7x faster than 1 (free-threaded build)",
            metric="speed-up",
            impl=impl,
            absolute=1.7,
            lower_is_better=False,
            free_threaded_only=True,
            source="issue 9",
        )
        for impl in ("goconc errgroup", "goconc parallel_map")
    ),
)


def _burn(n: int) -> int:
    """Pure-Python CPU work: ``n`` iterations of an integer recurrence, no shared state.

    Its only constants are small ints (immortal on every build).  A larger constant would
    be one object shared by every thread running this code: CPython 3.13t does not make the
    constants of an imported module's code immortal, so the threads would contend on its
    reference count and the fan-out would gain nothing.
    """
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 255
    return x


def _speedups(total: int, run: Callable[[int, int], list[int]]) -> dict[str, float]:
    """Time ``run(k, total)`` for k = 1, 2, 4 and report the speed-ups over k = 1.

    ``run`` does ``total`` iterations of :func:`_burn` split over ``k`` goroutines and
    returns the parts' results, which are checked so that no work is skipped.  Each k is
    timed ``ROUNDS`` times, interleaved with the others; the best time of each counts.
    """
    times: dict[int, float] = {}
    for _ in range(ROUNDS):
        for k in (1, *FANOUT):
            t0 = time.perf_counter()
            parts = run(k, total)
            elapsed = time.perf_counter() - t0
            assert len(parts) in (k, CHUNKS) and all(isinstance(p, int) for p in parts)
            times[k] = min(elapsed, times.get(k, elapsed))
    return {
        "speed-up": times[1] / times[2],
        "speed-up x4": times[1] / times[4],
        "s with 1": times[1],
        "s with 2": times[2],
        "s with 4": times[4],
    }


def _total(scale: float) -> int:
    n = max(CHUNKS * 1000, int(TOTAL * scale))
    return n - n % CHUNKS


@case(FAN_OUT, "goconc errgroup")
def _fan_errgroup(scale: float) -> dict[str, float]:
    from goconc import errgroup

    def run(k: int, total: int) -> list[int]:
        parts = [0] * k

        def part(i: int) -> None:
            parts[i] = _burn(total // k)

        g = errgroup.Group()
        for i in range(k):
            g.go(part, i)
        err = g.wait(timeout=WAIT)
        if err is not None:
            raise err
        return parts

    return _speedups(_total(scale), run)


@case(FAN_OUT, "goconc parallel_map")
def _fan_parallel_map(scale: float) -> dict[str, float]:
    from goconc.patterns import parallel_map

    def run(k: int, total: int) -> list[int]:
        return parallel_map(_burn, [total // CHUNKS] * CHUNKS, k)

    return _speedups(_total(scale), run)


@case(FAN_OUT, "ThreadPoolExecutor")
def _fan_executor(scale: float) -> dict[str, float]:
    def run(k: int, total: int) -> list[int]:
        with ThreadPoolExecutor(max_workers=k) as pool:
            return list(pool.map(_burn, [total // CHUNKS] * CHUNKS, timeout=WAIT))

    return _speedups(_total(scale), run)
