"""goconc.runtime under churn: many goroutines started and joined at once, from everywhere."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import WAIT
from goconc import runtime
from goconc.runtime import Goroutine, go


@pytest.fixture(autouse=True)
def quiet_panics() -> Iterator[list[BaseException]]:
    seen: list[BaseException] = []
    prev = runtime.set_panic_handler(lambda g, e: seen.append(e))
    try:
        yield seen
    finally:
        runtime.set_panic_handler(prev)


def square(x: int) -> int:
    return x * x


async def asquare(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


def spawn_mix(n: int, base: int) -> list[tuple[int, Goroutine[int]]]:
    out = []
    for i in range(base, base + n):
        out.append((i, go(square, i) if i % 3 == 0 else go(asquare, i)))
    return out


def test_many_threads_and_tasks_start_and_join_goroutines_concurrently() -> None:
    def thread_parent(base: int) -> int:
        total = 0
        for i, g in spawn_mix(120, base):
            assert g.join(WAIT) == i * i
            total += 1
        return total

    async def task_parent(base: int) -> int:
        total = 0
        for i, g in spawn_mix(200, base):
            assert await g.ajoin(WAIT) == i * i
            total += 1
        return total

    def loop_parent(base: int) -> int:
        async def main() -> int:
            counts = await asyncio.gather(*(task_parent(base + k * 1000) for k in range(3)))
            return sum(counts)

        return asyncio.run(main())

    parents = [go(thread_parent, k * 10_000) for k in range(6)]
    parents += [go(loop_parent, 100_000 + k * 10_000) for k in range(2)]
    parents.append(go(task_parent, 500_000))  # on the runtime loop
    counts = [p.join(WAIT * 3) for p in parents]
    assert counts == [120] * 6 + [600] * 2 + [200]
    ids = {p.id for p in parents}
    assert not ids & set(runtime._registry)


def test_join_with_tiny_timeouts_never_misses_the_end() -> None:
    for i in range(400):
        g = go(square, i) if i % 2 else go(asquare, i)
        while True:
            try:
                assert g.join(timeout=random.choice([0, 0.0001, 0.001])) == i * i
                break
            except TimeoutError:
                continue


def test_cancelled_ajoins_racing_the_end_never_break_later_joins() -> None:
    async def main() -> None:
        for i in range(300):
            g = go(asquare, i) if i % 2 else go(square, i)
            waiter = asyncio.create_task(g.ajoin(WAIT))
            await asyncio.sleep(0)
            waiter.cancel()
            try:
                assert await waiter == i * i
            except asyncio.CancelledError:
                pass
            assert await g.ajoin(WAIT) == i * i

    asyncio.run(main())


def test_handoffs_racing_idle_expiry_never_lose_a_goroutine() -> None:
    # Idle threads expire after 1 ms, so many go() calls race an expiry and many start a
    # new OS thread.  That is slow on a loaded machine (on a free-threaded build, starting
    # and ending a thread took up to 0.1 s each there): 600 rounds, or as many as fit in
    # 2 s once 100 are done.
    prev = runtime.set_idle_timeout(0.001)
    try:
        results: list[int] = []
        enough = time.monotonic() + 2.0
        for i in range(600):
            if i >= 100 and time.monotonic() > enough:
                break
            if i % 50 == 0:
                time.sleep(0.003)  # let idle threads time out while go() hands off
            gs = [go(square, i), go(square, i + 1)]
            results.extend(g.join(WAIT) for g in gs)
            assert results[-2:] == [i * i, (i + 1) * (i + 1)]
    finally:
        runtime.set_idle_timeout(prev)


def test_snapshots_and_dumps_under_churn_never_fail() -> None:
    stop = threading.Event()
    batches = [0, 0, 0]  # batches of 30 goroutines each churner has started and joined

    def churn(k: int) -> int:
        n = 0
        while not stop.is_set():
            gs: list[Any] = spawn_mix(30, n)
            for _, g in gs:
                g.join(WAIT)
            n += 30
            batches[k] += 1
        return n

    churners = [go(churn, k) for k in range(3)]
    # Look until every churner has churned a while and many looks were taken meanwhile
    # (counts, not a duration: the same work however fast the machine is).
    deadline = time.monotonic() + WAIT * 3
    looks = 0
    try:
        while looks < 300 or min(batches) < 20:
            assert time.monotonic() < deadline, f"{looks} looks, churned {batches}"
            for i in runtime.goroutines():
                assert i.state in ("running", "blocked", "done")
                assert i.kind in ("thread", "task")
            runtime.dump()
            runtime.statistics()
            looks += 1
    finally:
        stop.set()
    assert all(c.join(WAIT) > 0 for c in churners)


def test_no_goroutine_is_lost_when_many_threads_call_go_at_once() -> None:
    start = threading.Barrier(8)
    counter = [0]
    mu = threading.Lock()

    def bump() -> None:
        with mu:
            counter[0] += 1

    box: list[list[Goroutine[None]]] = []

    def launcher() -> None:
        start.wait(WAIT)
        box.append([go(bump) for _ in range(150)])

    launchers = [threading.Thread(target=launcher) for _ in range(8)]
    for t in launchers:
        t.start()
    for t in launchers:
        t.join(WAIT)
    handles = [h for hs in box for h in hs]
    for h in handles:
        h.join(WAIT)
    assert counter[0] == 8 * 150
    assert len({h.id for h in handles}) == 8 * 150
