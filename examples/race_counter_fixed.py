"""The counter race fixed with a Mutex: unlock happens before the next lock.

::

    goconc race examples/race_counter_fixed.py  # no report, exit 0
"""

from __future__ import annotations

from goconc import go, sync

counter = 0
mu = sync.Mutex()


def increment(times: int) -> None:
    global counter
    for _ in range(times):
        with mu:
            counter += 1


def main(times: int = 1000) -> int:
    global counter
    counter = 0
    workers = [go(increment, times) for _ in range(2)]
    for g in workers:
        g.join(timeout=10)
    with mu:
        return counter


if __name__ == "__main__":
    print("counter:", main(), "(expected 2000)")
