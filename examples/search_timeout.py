"""Lesson: a search with a timeout that leaks its sender, and the fix (a buffer of one).

In Go::

    ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
    defer cancel()
    ch := make(chan result)             // the bug: unbuffered
    go func() {
        record, err := search(term)
        ch <- result{record, err}       // blocks forever once nobody receives
    }()
    select {
    case <-ctx.Done():
        return errors.New("search canceled")
    case r := <-ch:
        ...
    }

When the timeout wins the ``select``, nobody will ever receive from ``ch``:
the goroutine finishes its search and then blocks on its send forever.  The
fix is one character: ``make(chan result, 1)``.  The send then always
completes, and the goroutine ends whether or not anybody still waits.

Run: ``python examples/search_timeout.py``
"""

from __future__ import annotations

import time

from goconc import Chan, context, select
from goconc.runtime import GoroutineInfo, go_named
from goconc.testing import find_leaks, format_leaks, live_ids


class SearchCanceled(Exception):
    """The search took longer than the caller was willing to wait."""


def search(term: str, delay: float) -> str:
    """A slow lookup (a database, a remote index) that knows nothing of contexts."""
    time.sleep(delay)
    return f"record for {term!r}"


def _search_into(ch: Chan[str], term: str, delay: float) -> None:
    ch.send(search(term, delay))


def _process(term: str, timeout: float, search_delay: float, buffer: int) -> str:
    ctx, cancel = context.with_timeout(context.background(), timeout)
    try:
        ch: Chan[str] = Chan(buffer)
        go_named("search sender", _search_into, ch, term, search_delay)
        sel = select(ctx.done, ch)
        if sel.index == 0:
            raise SearchCanceled(f"search for {term!r} canceled after {timeout}s")
        result: str = sel.value
        return result
    finally:
        cancel()


def process_leaky(term: str, *, timeout: float, search_delay: float) -> str:
    """The bug: an unbuffered channel, so a late sender blocks forever."""
    return _process(term, timeout, search_delay, buffer=0)


def process_fixed(term: str, *, timeout: float, search_delay: float) -> str:
    """The fix: a buffer of one, so the sender always completes and ends."""
    return _process(term, timeout, search_delay, buffer=1)


def settled(before: frozenset[int], bound: float = 10.0) -> list[GoroutineInfo]:
    """The goroutines started since ``before``, once each has ended or is blocked.

    A goroutine still running (here: searching) may yet end or block; wait for
    it, at most ``bound`` seconds.  What is left then is blocked for good.
    """
    deadline = time.monotonic() + bound
    while True:
        leaks = find_leaks(ignore=before)
        if all(g.state == "blocked" for g in leaks) or time.monotonic() > deadline:
            return leaks
        time.sleep(0.01)


def main(timeout: float = 0.02, search_delay: float = 0.2) -> dict[str, int]:
    before = live_ids()
    print(f"search in time: {process_fixed('go', timeout=1.0, search_delay=0.0)}")

    for name, process in (("leaky", process_leaky), ("fixed", process_fixed)):
        try:
            process("golang", timeout=timeout, search_delay=search_delay)
        except SearchCanceled as e:
            print(f"{name}: {e}")
    leaks = settled(before)  # every search has finished: one sender is blocked for good
    print(f"goroutines left behind: {len(leaks)}")
    if leaks:
        print(format_leaks(leaks))
    return {"leaked": len(leaks)}


if __name__ == "__main__":
    main()
