"""parallel_map: the overhead per item, against the standard library's ways.

Four implementations of ``[fn(x) for x in items]`` with at most ``limit``
calls at once, where ``fn`` does no work, so that what is measured is the
cost each adds per item:

* ``goconc parallel_map``: ``patterns.parallel_map`` (``limit`` worker
  goroutine threads taking the items one at a time);
* ``ThreadPoolExecutor.map``: ``concurrent.futures`` with ``max_workers=limit``
  (the executor is created per call, as ``parallel_map`` starts its workers
  per call);
* ``goconc aparallel_map``: ``patterns.aparallel_map`` (``limit`` worker tasks);
* ``asyncio.gather + Semaphore``: a task per item, each taking a
  ``asyncio.Semaphore(limit)``.

Each function takes ``scale`` (1.0 for the full run, smaller for a quick one)
and returns ``{"us/item": median, "us/item best": best}`` over a few
repetitions.  :func:`compare` runs all four in the same process and adds the
ratios goconc/peer.  Standalone: ``python benchmarks/bench_parallel_map.py
[--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from goconc.patterns import aparallel_map, parallel_map

METRIC = "us/item"
LIMIT = 8
REPS = 5


def _items(scale: float) -> list[int]:
    return list(range(max(1000, int(20_000 * scale))))


def _identity(x: int) -> int:
    return x


async def _aidentity(x: int) -> int:
    return x


def _measure(run: Callable[[list[int]], list[int]], items: list[int]) -> dict[str, float]:
    run(items[:100])  # warm up: threads, imports, the loop
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        out = run(items)
        times.append((time.perf_counter() - t0) / len(items) * 1e6)
        assert out == items
    return {METRIC: statistics.median(times), f"{METRIC} best": min(times)}


def goconc_threads(scale: float = 1.0) -> dict[str, float]:
    """``patterns.parallel_map`` with ``limit`` = 8."""
    return _measure(lambda items: parallel_map(_identity, items, LIMIT), _items(scale))


def threadpool_map(scale: float = 1.0) -> dict[str, float]:
    """``ThreadPoolExecutor(max_workers=8).map``."""

    def run(items: list[int]) -> list[int]:
        with ThreadPoolExecutor(max_workers=LIMIT) as pool:
            return list(pool.map(_identity, items))

    return _measure(run, _items(scale))


def goconc_asyncio(scale: float = 1.0) -> dict[str, float]:
    """``patterns.aparallel_map`` with ``limit`` = 8, on a fresh event loop."""
    return _measure(
        lambda items: asyncio.run(aparallel_map(_aidentity, items, LIMIT)), _items(scale)
    )


def gather_semaphore(scale: float = 1.0) -> dict[str, float]:
    """``asyncio.gather`` of a task per item, each under ``asyncio.Semaphore(8)``."""

    async def main(items: list[int]) -> list[int]:
        sem = asyncio.Semaphore(LIMIT)

        async def one(x: int) -> int:
            async with sem:
                return await _aidentity(x)

        return list(await asyncio.gather(*(one(x) for x in items)))

    return _measure(lambda items: asyncio.run(main(items)), _items(scale))


CASES: dict[str, Callable[[float], dict[str, float]]] = {
    "goconc parallel_map": goconc_threads,
    "ThreadPoolExecutor.map": threadpool_map,
    "goconc aparallel_map": goconc_asyncio,
    "asyncio.gather + Semaphore": gather_semaphore,
}


def compare(scale: float = 1.0) -> dict[str, dict[str, float]]:
    """Run every case in this process; add ``ratio`` (goconc/peer) to the goconc rows."""
    results = {name: fn(scale) for name, fn in CASES.items()}
    for mine, peer in (
        ("goconc parallel_map", "ThreadPoolExecutor.map"),
        ("goconc aparallel_map", "asyncio.gather + Semaphore"),
    ):
        results[mine]["ratio"] = results[mine][METRIC] / results[peer][METRIC]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items (scale 0.1)")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    results = compare(scale)
    print(f"parallel_map overhead, {len(_items(scale))} items, limit {LIMIT}, fn does nothing")
    for name, r in results.items():
        ratio = f"  ({r['ratio']:.2f}x the peer below)" if "ratio" in r else ""
        print(f"  {name:28} {r[METRIC]:7.2f} {METRIC} (best {r[f'{METRIC} best']:.2f}){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the goconc bench harness --------------------------------------------------------------

if __name__ != "__main__":
    from goconc.bench import Target, case, workload

    workload(
        "parallel_map overhead (threads)",
        "us/item",
        description="20,000 items through a function that does nothing, at most 8 at a time, "
        "order kept: goconc.patterns.parallel_map against ThreadPoolExecutor.map.",
        targets=(
            Target(
                "ThreadPoolExecutor.map",
                1.0,
                "cheaper than ThreadPoolExecutor.map",
                source="self-set",
            ),
        ),
    )
    case("parallel_map overhead (threads)", "goconc")(goconc_threads)
    case("parallel_map overhead (threads)", "ThreadPoolExecutor.map")(threadpool_map)
    workload(
        "parallel_map overhead (tasks)",
        "us/item",
        description="The same with coroutines: aparallel_map against asyncio.gather with an "
        "asyncio.Semaphore(8).",
        targets=(
            Target(
                "asyncio.gather+Semaphore",
                1.0,
                "cheaper than gather + Semaphore",
                source="self-set",
            ),
        ),
    )
    case("parallel_map overhead (tasks)", "goconc")(goconc_asyncio)
    case("parallel_map overhead (tasks)", "asyncio.gather+Semaphore")(gather_semaphore)
