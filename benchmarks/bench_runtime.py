"""Goroutines: 100,000 tasks started, parked and released; thread goroutines; context trees."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from goconc.bench import Target, case, go_case, workload

WAIT = 120.0

workload(
    "100k async goroutines",
    "us/goroutine",
    description="100,000 coroutine goroutines are started, each parks on a goconc channel "
    "until it is closed, then all are released and joined; the peer is bare asyncio tasks "
    "waiting on an asyncio.Event.  Memory (bytes/goroutine) is measured in a second pass "
    "with tracemalloc, while all are parked; Go's is the growth of its stacks and heap in "
    "use while all are parked.",
    targets=(
        Target(
            "asyncio tasks",
            1.5,
            "at most 1.5x the time of bare asyncio tasks",
            source="issue 2",
        ),
        Target(
            "",
            0,
            "at most 2 KiB per goroutine",
            metric="bytes/goroutine",
            absolute=2048.0,
            lower_is_better=True,
            source="issue 2",
        ),
    ),
)


def _timed_and_measured(n: int, run: Callable[..., Awaitable[None]]) -> dict[str, float]:
    async def timed() -> float:
        t0 = time.perf_counter()
        await run(n)
        return time.perf_counter() - t0

    seconds = asyncio.run(asyncio.wait_for(timed(), WAIT))
    gc.collect()

    async def measured() -> int:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        peak = [0]

        async def probe() -> None:
            peak[0] = tracemalloc.get_traced_memory()[0] - before

        await run(n, probe)
        tracemalloc.stop()
        return peak[0]

    used = asyncio.run(asyncio.wait_for(measured(), WAIT))
    return {"us/goroutine": seconds / n * 1e6, "bytes/goroutine": used / n}


@case("100k async goroutines", "goconc")
def _g_goconc(scale: float) -> dict[str, float]:
    from goconc import Chan, go

    async def run(n: int, probe: Callable[[], Awaitable[None]] | None = None) -> None:
        release: Chan[None] = Chan()

        async def parked() -> None:
            await release.arecv_ok()

        gs = [go(parked) for _ in range(n)]
        await asyncio.sleep(0)  # let every goroutine start and park
        if probe is not None:
            await probe()
        release.close()
        for g in gs:
            await g.ajoin()

    return _timed_and_measured(max(1000, int(100_000 * scale)), run)


@case("100k async goroutines", "asyncio tasks")
def _g_asyncio(scale: float) -> dict[str, float]:
    async def run(n: int, probe: Callable[[], Awaitable[None]] | None = None) -> None:
        release = asyncio.Event()

        async def parked() -> None:
            await release.wait()

        tasks = [asyncio.ensure_future(parked()) for _ in range(n)]
        await asyncio.sleep(0)
        if probe is not None:
            await probe()
        release.set()
        for t in tasks:
            await t

    return _timed_and_measured(max(1000, int(100_000 * scale)), run)


go_case("100k async goroutines", "goroutines-100k")

workload(
    "thread goroutines",
    "us/goroutine",
    description="2,000 plain callables started as goroutines and joined, 16 at a time: "
    "goconc reuses idle OS threads; the peer starts a threading.Thread for each.",
    targets=(
        Target(
            "threading.Thread",
            1.0,
            "cheaper than Thread.start() + join()",
            source="self-set",
        ),
    ),
)


def _batches(
    n: int, start: Callable[[Callable[[], None]], Any], join: Callable[[Any], Any]
) -> float:
    def work() -> None:
        pass

    t0 = time.perf_counter()
    for _ in range(n // 16):
        handles = [start(work) for _ in range(16)]
        for h in handles:
            join(h)
    return (time.perf_counter() - t0) / (n // 16 * 16) * 1e6


@case("thread goroutines", "goconc")
def _tg_goconc(scale: float) -> dict[str, float]:
    from goconc import go

    n = max(160, int(2000 * scale))
    return {"us/goroutine": _batches(n, go, lambda g: g.join(timeout=WAIT))}


@case("thread goroutines", "threading.Thread")
def _tg_thread(scale: float) -> dict[str, float]:
    def start(fn: Callable[[], None]) -> threading.Thread:
        t = threading.Thread(target=fn)
        t.start()
        return t

    n = max(160, int(2000 * scale))
    return {"us/goroutine": _batches(n, start, lambda t: t.join(WAIT))}


# -- context trees ---------------------------------------------------------------------------

workload(
    "cancel a 100k-node context tree",
    "ms/tree",
    description="A tree of 100,000 contexts (about ten children per node) is cancelled at the "
    "root; timed until every node reports done.  The peer cancels a tree of 100,000 asyncio "
    "tasks held by nested TaskGroups and waits for the root.",
    targets=(
        Target(
            "asyncio TaskGroup tree",
            0.5,
            "at most half the time of asyncio",
            source="issue 2",
        ),
    ),
)


@case("cancel a 100k-node context tree", "goconc")
def _ctx_goconc(scale: float) -> dict[str, float]:
    from goconc import context

    n = max(1000, int(100_000 * scale))
    root, cancel = context.with_cancel(context.background())
    nodes = [root]
    cancels = [cancel]
    while len(nodes) < n:
        ctx, c = context.with_cancel(nodes[len(nodes) // 10])
        nodes.append(ctx)
        cancels.append(c)
    t0 = time.perf_counter()
    cancel()
    for ctx in nodes:
        if ctx.err() is None:
            raise AssertionError("a node was not cancelled")
    elapsed = time.perf_counter() - t0
    return {"ms/tree": elapsed * 1e3}


@case("cancel a 100k-node context tree", "asyncio TaskGroup tree")
def _ctx_asyncio(scale: float) -> dict[str, float]:
    n = max(1000, int(100_000 * scale))
    children: list[list[int]] = [[] for _ in range(n)]
    for i in range(1, n):
        children[i // 10].append(i)

    async def node(i: int, started: Callable[[], None]) -> None:
        started()
        if not children[i]:
            await asyncio.Event().wait()
            return
        async with asyncio.TaskGroup() as tg:
            for c in children[i]:
                tg.create_task(node(c, started))

    async def main() -> float:
        count = [0]
        all_started = asyncio.Event()

        def started() -> None:
            count[0] += 1
            if count[0] == n:
                all_started.set()

        root = asyncio.ensure_future(node(0, started))
        await asyncio.wait_for(all_started.wait(), WAIT)
        t0 = time.perf_counter()
        root.cancel()
        try:
            await root
        except asyncio.CancelledError:
            pass
        return time.perf_counter() - t0

    return {"ms/tree": asyncio.run(main()) * 1e3}


go_case("cancel a 100k-node context tree", "ctx-tree-100k")
