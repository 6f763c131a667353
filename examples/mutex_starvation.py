"""Lesson: Mutex starvation mode - the two-goroutine experiment.

Russ Cox's experiment (golang/go#13086): goroutine 1 holds the lock almost
all the time, releasing it only to take it again at once; goroutine 2 wants
the lock briefly, ten times::

    go func() { // goroutine 1
        for {
            select {
            case <-done:
                return
            default:
                mu.Lock()
                time.Sleep(100 * time.Microsecond)
                mu.Unlock()
            }
        }
    }()
    for i := 0; i < 10; i++ { // goroutine 2
        time.Sleep(100 * time.Microsecond)
        mu.Lock()
        mu.Unlock()
    }
    done <- true

With Go 1.8's mutex, goroutine 1 took the lock about 7 million times while
goroutine 2 waited for its 10: an unlock woke goroutine 2, but goroutine 1
(already running) re-locked before goroutine 2 could.  Go 1.9 added
starvation mode: a waiter that has waited more than 1 ms gets the lock handed
to it directly, so goroutine 2 is never passed over for long.

Here the same experiment runs on ``threading.Lock`` (barging, no
starvation mode) and on ``goconc.sync.Mutex`` (Go's two modes).  Goroutine 1
also stops after ``max_seconds``, so a starved goroutine 2 cannot hang the
script, and goroutine 2 begins once goroutine 1 is looping (a thread may
take a while to start: the experiment is about the lock, not about that).
``threading.Lock``'s worst wait changes from run to run (from a
fraction of a millisecond to hundreds of milliseconds here: nothing bounds
it); the Mutex's stays near the 1 ms threshold plus one hold.

Run: ``python examples/mutex_starvation.py``
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from goconc import Chan, go, select, sync


@dataclass(frozen=True)
class Result:
    lock: str
    g1_acquisitions: int
    g2_acquisitions: int
    g2_max_wait_ms: float
    seconds: float


def experiment(
    name: str,
    lock: Callable[[], object],
    unlock: Callable[[], object],
    rounds: int = 10,
    hold: float = 100e-6,
    max_seconds: float = 2.0,
) -> Result:
    done: Chan[bool] = Chan(1)
    looping: Chan[None] = Chan()  # closed once goroutine 1 has taken the lock
    count = 0

    def goroutine1() -> None:
        nonlocal count
        deadline = time.monotonic() + max_seconds
        while True:
            lock()
            time.sleep(hold)
            count += 1
            unlock()
            if count == 1:
                looping.close()
            if select(done, default=True).index == 0 or time.monotonic() >= deadline:
                return

    g1 = go(goroutine1)
    looping.recv_ok(timeout=max_seconds + 10)
    t0 = time.monotonic()
    max_wait = 0.0
    for _ in range(rounds):  # goroutine 2
        time.sleep(hold)
        start = time.monotonic()
        lock()
        max_wait = max(max_wait, time.monotonic() - start)
        unlock()
    done.send(True)
    g1.join(timeout=max_seconds + 10)
    return Result(name, count, rounds, max_wait * 1000, time.monotonic() - t0)


def main(rounds: int = 30, max_seconds: float = 1.0) -> dict[str, Result]:
    results = {}
    plain = threading.Lock()
    mu = sync.Mutex()
    for name, lock, unlock in (
        ("threading.Lock", plain.acquire, plain.release),
        ("goconc.sync.Mutex", mu.lock, mu.unlock),
    ):
        r = experiment(name, lock, unlock, rounds=rounds, max_seconds=max_seconds)
        results[name] = r
        print(
            f"{name:18} goroutine 1: {r.g1_acquisitions:6} locks, goroutine 2: "
            f"{r.g2_acquisitions} locks, its longest wait {r.g2_max_wait_ms:7.2f} ms "
            f"({r.seconds:.2f}s)"
        )
    s = mu.statistics()
    print(
        f"{'':18} starvation mode entered {s.starvation_entries} times, "
        f"{s.handoffs} direct hand-offs"
    )
    return results


if __name__ == "__main__":
    main()
