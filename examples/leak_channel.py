"""Lesson: goroutines leaked on channels - one nobody sends on, one nobody closes.

"Never start a goroutine without knowing when it will stop."  In Go::

    func leak() {
        ch := make(chan int)
        go func() {
            val := <-ch                 // nobody ever sends or closes: blocked forever
            fmt.Println("We received a value:", val)
        }()
    }

The same bug in a longer program: a worker ranges over a jobs channel, and the
producer forgets ``close(jobs)`` once it has sent everything, so the worker's
``for range jobs`` never ends.

The fixes: give the goroutine a way to stop (a context it also waits on), and
close a channel once nothing more will be sent on it (the sender owns the
close).

Run: ``python examples/leak_channel.py``
"""

from __future__ import annotations

import time

from goconc import Chan, context, select
from goconc.runtime import GoroutineInfo, go_named
from goconc.testing import find_leaks, format_leaks, live_ids, verify_none

# -- the lesson's leak(): a receiver nobody sends to -------------------------------------


def _receive_one(ch: Chan[int]) -> None:
    val = ch.recv()
    print("We received a value:", val)


def leak() -> None:
    """Start a goroutine that waits on a channel nobody will ever use."""
    ch: Chan[int] = Chan()
    go_named("receiver", _receive_one, ch)


def _receive_one_or_stop(ctx: context.Context, ch: Chan[int]) -> None:
    sel = select(ch, ctx.done)
    if sel.index == 0:
        print("We received a value:", sel.value)


def no_leak(ctx: context.Context) -> None:
    """The same goroutine, told when to stop: it ends when ``ctx`` does."""
    ch: Chan[int] = Chan()
    go_named("receiver", _receive_one_or_stop, ctx, ch)


# -- the never-closed channel ---------------------------------------------------------------


def _square_worker(jobs: Chan[int], results: Chan[int]) -> None:
    for n in jobs:  # ends only when jobs is closed
        results.send(n * n)


def _squares(items: list[int], close_jobs: bool) -> list[int]:
    jobs: Chan[int] = Chan()
    results: Chan[int] = Chan(len(items))
    go_named("square worker", _square_worker, jobs, results)
    for n in items:
        jobs.send(n)
    if close_jobs:
        jobs.close()  # the fix: the sender closes once it is done sending
    return [results.recv() for _ in items]


def squares_leaky(items: list[int]) -> list[int]:
    """Correct results, but the worker is left blocked on ``jobs`` forever."""
    return _squares(items, close_jobs=False)


def squares_fixed(items: list[int]) -> list[int]:
    """Correct results, and the worker ends: ``jobs`` is closed."""
    return _squares(items, close_jobs=True)


def settled(before: frozenset[int], bound: float = 10.0) -> list[GoroutineInfo]:
    """The goroutines started since ``before``, once none of them is still running.

    A goroutine just started (or just handed a value) needs a moment to reach
    the call it blocks on; wait for that, at most ``bound`` seconds, so the
    report shows where each one is stuck.
    """
    deadline = time.monotonic() + bound
    while True:
        leaks = find_leaks(ignore=before)
        if all(g.state == "blocked" for g in leaks) or time.monotonic() > deadline:
            return leaks
        time.sleep(0.01)


def main() -> dict[str, int]:
    before = live_ids()
    leak()
    print("squares:", squares_leaky([1, 2, 3]))
    leaked = settled(before)
    print(f"leaky versions left {len(leaked)} goroutines behind:")
    print(format_leaks(leaked))

    before = live_ids()
    with context.with_cancel(context.background()) as ctx:
        no_leak(ctx)
    print("squares:", squares_fixed([1, 2, 3]))
    verify_none(ignore=before)
    print("fixed versions left no goroutine behind")
    return {"leaked": len(leaked)}


if __name__ == "__main__":
    main()
