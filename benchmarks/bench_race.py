"""The race detector's cost: slowdown and memory with it on against off."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable

from goconc.bench import case, workload

WAIT = 60.0


class _Item:
    def __init__(self, n: int) -> None:
        self.n = n
        self.square = 0
        self.label = ""


def _pipeline(n: int) -> None:
    """Three stages over unbuffered channels; each stage writes what the next reads."""
    from goconc import Chan, go, race

    a: Chan[_Item] = Chan()
    b: Chan[_Item] = Chan()

    def source() -> None:
        for i in range(n):
            a.send(race.watch(_Item(i)), timeout=WAIT)
        a.close()

    def square() -> None:
        for item in a:
            item.square = item.n * item.n
            b.send(item, timeout=WAIT)
        b.close()

    def label() -> None:
        for item in b:
            item.label = f"{item.n}^2={item.square}"

    gs = [go(source), go(square), go(label)]
    for g in gs:
        g.join(timeout=WAIT)


def _counter(n: int) -> None:
    """Four goroutines increment one watched counter under a goconc Mutex."""
    from goconc import go, race, sync

    counter = race.Shared({"n": 0})
    mu = sync.Mutex()

    def inc() -> None:
        for _ in range(n // 4):
            with mu:
                counter["n"] = counter["n"] + 1

    gs = [go(inc) for _ in range(4)]
    for g in gs:
        g.join(timeout=WAIT)


def _measure(fn: Callable[[int], None], n: int, on: bool) -> tuple[float, int]:
    from goconc import race

    if on:
        race.enable(summary_at_exit=False)
        race.reset()
    try:
        gc.collect()
        t0 = time.perf_counter()
        fn(n)
        seconds = time.perf_counter() - t0
        gc.collect()
        tracemalloc.start()
        fn(n)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        if on:
            race.disable()
            race.reset()
    return seconds, peak


def _slowdown(fn: Callable[[int], None], n: int) -> dict[str, float]:
    t_off, m_off = _measure(fn, n, on=False)
    t_on, m_on = _measure(fn, n, on=True)
    return {
        "slowdown x": t_on / t_off,
        "memory x": m_on / max(1, m_off),
        "ms off": t_off * 1e3,
        "ms on": t_on * 1e3,
    }


for _name, _fn, _n in (
    ("race detector: channel pipeline", _pipeline, 5000),
    ("race detector: mutex-protected counter", _counter, 20000),
):
    workload(
        _name,
        "slowdown x",
        description="The same program with the detector off and on, in one run: time and "
        "peak traced memory ratios (Go's race detector: 2-20x time, 5-10x memory).",
    )

    @case(_name, "goconc")
    def _race_case(scale: float, fn: Callable[[int], None] = _fn, n: int = _n) -> dict[str, float]:
        return _slowdown(fn, max(200, int(n * scale)))
