"""Go concurrency patterns: cancellation by closing a channel.

From "Go Concurrency Patterns: Pipelines and cancellation" (Go blog, 2014):
when main stops reading early, upstream stages are left blocked on their
sends.  Closing a channel is a broadcast that every receiver sees at once, so
main closes a ``done`` channel and every stage selects on it::

    func sq(done <-chan struct{}, in <-chan int) <-chan int {
        out := make(chan int)
        go func() {
            defer close(out)
            for n := range in {
                select {
                case out <- n * n:
                case <-done:
                    return
                }
            }
        }()
        return out
    }

    done := make(chan struct{})
    defer close(done)
    out := merge(done, sq(done, in), sq(done, in))
    fmt.Println(<-out) // only one value; the deferred close releases everybody

A ``context`` is the same idea grown up: ``ctx.done`` is exactly such a
channel, closed by ``cancel()``, with a tree of children, deadlines and a
reason (``ctx.err()``).

Run: ``python examples/pattern_cancel_by_close.py``
"""

from __future__ import annotations

from goconc import Chan, Send, go, select
from goconc.testing import find_leaks, live_ids, verify_none


def gen(done: Chan[None], *nums: int) -> Chan[int]:
    out: Chan[int] = Chan()

    def run() -> None:
        try:
            for n in nums:
                if select(Send(out, n), done).index == 1:
                    return
        finally:
            out.close()

    go(run)
    return out


def sq(done: Chan[None], inp: Chan[int]) -> Chan[int]:
    out: Chan[int] = Chan()

    def run() -> None:
        try:
            for n in inp:
                if select(Send(out, n * n), done).index == 1:
                    return
        finally:
            out.close()

    go(run)
    return out


def merge(done: Chan[None], *cs: Chan[int]) -> Chan[int]:
    out: Chan[int] = Chan()
    left = Chan[None](len(cs))  # one token per finished input

    def output(c: Chan[int]) -> None:
        try:
            for n in c:
                if select(Send(out, n), done).index == 1:
                    return
        finally:
            left.send(None)

    def closer() -> None:
        for _ in cs:
            left.recv()
        out.close()

    for c in cs:
        go(output, c)
    go(closer)
    return out


def main() -> dict[str, object]:
    before = live_ids()
    done: Chan[None] = Chan()
    inp = gen(done, *range(1000))
    out = merge(done, sq(done, inp), sq(done, inp))
    first = out.recv()
    blocked = len(find_leaks(ignore=before))
    print(f"read one value ({first}); {blocked} goroutines are now blocked upstream")
    done.close()  # the broadcast: every select on done fires
    verify_none(ignore=before)
    print("closed done: every goroutine has returned")
    return {"first": first, "blocked_before_close": blocked}


if __name__ == "__main__":
    main()
