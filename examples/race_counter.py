"""The lessons' first race: two goroutines increment a shared counter.

``counter += 1`` is a read, an add and a write; another goroutine can run in
between, and increments are lost.  Nothing orders the two goroutines' accesses,
so the race detector reports it however the run happens to interleave::

    goconc race examples/race_counter.py        # WARNING: DATA RACE ... exit 66

The fix is in race_counter_fixed.py.
"""

from __future__ import annotations

from goconc import go

counter = 0


def increment(times: int) -> None:
    global counter
    for _ in range(times):
        counter += 1


def main(times: int = 1000) -> int:
    global counter
    counter = 0
    workers = [go(increment, times) for _ in range(2)]
    for g in workers:
        g.join(timeout=10)
    return counter


if __name__ == "__main__":
    print("counter:", main(), "(expected 2000)")
