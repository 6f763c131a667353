"""Go concurrency patterns: moving on (replicated requests; the first reply wins).

From "Go Concurrency Patterns: Timing out, moving on" (Go blog, 2010)::

    func Query(conns []Conn, query string) Result {
        ch := make(chan Result, 1)
        for _, conn := range conns {
            go func(c Conn) {
                select {
                case ch <- c.DoQuery(query):
                default:
                }
            }(conn)
        }
        return <-ch
    }

Every replica is queried; the first result is kept and the others are
dropped by the non-blocking send (``default``), so no goroutine blocks.  The
buffer of one matters: with an unbuffered channel the first reply could be
dropped too, if it arrived before ``Query`` reached its receive.

What the Go version cannot do is stop the losers: they run to the end.
``patterns.first`` gives every replica a context and cancels it as soon as
one succeeds, and it tolerates failing replicas (the first *success* wins).

Run: ``python examples/pattern_moving_on.py``
"""

from __future__ import annotations

import random
import time as _time

from goconc import Chan, Send, atomic, context, go, select
from goconc import time as gotime
from goconc.patterns import first


class Replica:
    def __init__(self, name: str, latency: float, fails: bool = False) -> None:
        self.name = name
        self.latency = latency
        self.fails = fails
        self.cancelled = atomic.Bool()  # set by the replica's goroutine, read by main

    def do_query(self, query: str) -> str:
        _time.sleep(self.latency)
        return f"{self.name}: result for {query!r}"

    def do_query_ctx(self, ctx: context.Context, query: str) -> str:
        try:
            gotime.sleep(self.latency, ctx=ctx)
        except context.Canceled:
            self.cancelled.store(True)
            raise
        if self.fails:
            raise ConnectionError(f"{self.name} is down")
        return f"{self.name}: result for {query!r}"


def query(conns: list[Replica], q: str) -> str:
    """The blog's Query: buffered channel of one, non-blocking sends."""
    ch: Chan[str] = Chan(1)

    def ask(c: Replica) -> None:
        select(Send(ch, c.do_query(q)), default=True)

    for c in conns:
        go(ask, c)
    return ch.recv()


def main(unit: float = 0.01, seed: int = 7) -> dict[str, object]:
    rng = random.Random(seed)
    replicas = [Replica(f"replica-{i}", unit * rng.uniform(1, 10)) for i in range(4)]
    fastest = min(replicas, key=lambda r: r.latency).name
    t0 = _time.monotonic()
    got = query(replicas, "golang")
    print(f"Query: {got!r} after {(_time.monotonic() - t0) * 1000:.0f} ms (fastest: {fastest})")

    replicas = [
        Replica("down", unit, fails=True),
        Replica("fast", 3 * unit),
        Replica("slow", 50 * unit),
    ]
    got2 = first(None, *[lambda ctx, r=r: r.do_query_ctx(ctx, "golang") for r in replicas])
    deadline = _time.monotonic() + 5.0
    while not replicas[2].cancelled.load() and _time.monotonic() < deadline:
        _time.sleep(unit / 10)  # the loser notices its cancelled context on its own thread
    print(f"patterns.first: {got2!r}; the failing replica was skipped")
    print(f"  the slow replica was cancelled: {replicas[2].cancelled.load()}")
    return {
        "query": got,
        "fastest": fastest,
        "first": got2,
        "slow_cancelled": replicas[2].cancelled.load(),
    }


if __name__ == "__main__":
    main()
