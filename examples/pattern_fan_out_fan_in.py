"""Go concurrency patterns: fan-out, fan-in.

From "Go Concurrency Patterns: Pipelines and cancellation" (Go blog, 2014):
several functions can read from the same channel until it is closed
(fan-out: distribute work among workers), and one function can read from
several channels, multiplexing them onto one channel that is closed when all
inputs are closed (fan-in)::

    func merge(cs ...<-chan int) <-chan int {
        var wg sync.WaitGroup
        out := make(chan int)
        output := func(c <-chan int) {
            for n := range c { out <- n }
            wg.Done()
        }
        wg.Add(len(cs))
        for _, c := range cs { go output(c) }
        go func() { wg.Wait(); close(out) }()
        return out
    }

    in := gen(2, 3)
    c1 := sq(in) // two workers reading from in
    c2 := sq(in)
    for n := range merge(c1, c2) { fmt.Println(n) } // 4 then 9, or 9 then 4

``patterns.fan_in`` merges with a single goroutine and ``select``;
``patterns.fan_out`` starts n workers in an errgroup, so a failing worker
stops the others and its error is returned by ``wait``.

Run: ``python examples/pattern_fan_out_fan_in.py``
"""

from __future__ import annotations

import threading

from goconc import Chan, context, errgroup, go
from goconc.patterns import fan_in, fan_out, generate, map_stage
from goconc.testing import live_ids, verify_none


def merge(*cs: Chan[int]) -> Chan[int]:
    """The blog's merge: one goroutine per input, a group to close the output."""
    out: Chan[int] = Chan()
    g = errgroup.Group()

    def output(c: Chan[int]) -> None:
        for n in c:
            out.send(n)

    for c in cs:
        g.go(output, c)

    def closer() -> None:
        g.wait()
        out.close()

    go(closer)
    return out


def main(n: int = 20, workers: int = 4) -> dict[str, object]:
    before = live_ids()
    src = generate(range(n))
    c1 = map_stage(lambda x: x * x, src)  # two workers reading from one channel
    c2 = map_stage(lambda x: x * x, src)
    by_hand = sorted(merge(c1, c2))
    print(f"merge(sq(in), sq(in)): {by_hand}")

    src = generate(range(n))
    outs = [map_stage(lambda x: x * x, src) for _ in range(workers)]
    merged = sorted(fan_in(*outs))
    print(f"fan_in of {workers} workers: {len(merged)} values, sum {sum(merged)}")

    handled: dict[str, int] = {}
    mu = threading.Lock()

    def handle(job: int) -> None:
        name = threading.current_thread().name
        with mu:
            handled[name] = handled.get(name, 0) + 1

    g = fan_out(generate(range(n)), workers, handle)
    err = g.wait()
    print(f"fan_out over {workers} workers: jobs per worker {sorted(handled.values())}")

    def picky(job: int) -> None:
        if job == 5:
            raise ValueError(f"cannot handle job {job}")

    with context.with_cancel(context.background()) as ctx:
        # the source gets the context too: once the workers stop, leaving the
        # block cancels it, so the generator does not stay blocked on its send
        err2 = fan_out(generate(range(10**6), ctx=ctx), workers, picky, ctx=ctx).wait()
    print(f"a failing worker stops the others: wait() returned {err2!r}")
    verify_none(ignore=before)
    print("every goroutine has ended")
    return {
        "by_hand": by_hand,
        "merged": merged,
        "handled": sum(handled.values()),
        "error": err,
        "failure": repr(err2),
    }


if __name__ == "__main__":
    main()
