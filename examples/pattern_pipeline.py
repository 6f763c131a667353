"""Go concurrency patterns: pipelines.

From "Go Concurrency Patterns: Pipelines and cancellation" (Go blog, 2014)::

    func gen(nums ...int) <-chan int {
        out := make(chan int)
        go func() {
            for _, n := range nums { out <- n }
            close(out)
        }()
        return out
    }

    func sq(in <-chan int) <-chan int {
        out := make(chan int)
        go func() {
            for n := range in { out <- n * n }
            close(out)
        }()
        return out
    }

    for n := range sq(sq(gen(2, 3))) { fmt.Println(n) } // 16 then 81

Each stage receives from upstream, works, sends downstream, and closes its
output when its input is closed: the close flows down the pipeline, and every
goroutine ends.  ``patterns.generate`` and ``patterns.map_stage`` are those
stages ready-made, with a context to stop them early and several workers per
stage.  The same pipeline also runs in asyncio tasks.

Run: ``python examples/pattern_pipeline.py``
"""

from __future__ import annotations

import asyncio

from goconc import Chan, context, go
from goconc.patterns import generate, map_stage
from goconc.testing import live_ids, verify_none


def gen(*nums: int) -> Chan[int]:
    out: Chan[int] = Chan()

    def run() -> None:
        for n in nums:
            out.send(n)
        out.close()

    go(run)
    return out


def sq(inp: Chan[int]) -> Chan[int]:
    out: Chan[int] = Chan()

    def run() -> None:
        for n in inp:
            out.send(n * n)
        out.close()

    go(run)
    return out


async def apipeline(n: int) -> list[int]:
    async def asq(x: int) -> int:
        await asyncio.sleep(0)
        return x * x

    out = map_stage(asq, generate(range(n)), workers=1)
    return [v async for v in out]


def main(n: int = 10) -> dict[str, object]:
    before = live_ids()
    by_hand = list(sq(sq(gen(2, 3))))
    print(f"sq(sq(gen(2, 3))): {by_hand}")

    with context.with_cancel(context.background()) as ctx:
        squares = map_stage(lambda x: x * x, generate(range(n), ctx=ctx), workers=3, ctx=ctx)
        total = sum(squares)
    print(f"sum of squares below {n} with 3 workers in the middle stage: {total}")

    with context.with_cancel(context.background()) as ctx:
        endless = map_stage(lambda x: x + 1, generate(range(10**9), ctx=ctx), ctx=ctx)
        head = [endless.recv() for _ in range(3)]
    print(f"first three of an endless pipeline: {head}; the context stopped the rest")

    in_tasks = asyncio.run(apipeline(n))
    print(f"the same stages in asyncio tasks: {in_tasks}")

    verify_none(ignore=before)
    print("every stage's goroutine has ended")
    return {"by_hand": by_hand, "total": total, "head": head, "tasks": in_tasks}


if __name__ == "__main__":
    main()
