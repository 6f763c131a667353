"""sync under real races between threads and tasks on several loops, with timeouts and cancels.

Every test checks an invariant with plain counters (one holder of a Mutex, no
reader beside a writer, never more than a Semaphore's size, every item
produced consumed once), and that the primitive ends idle: no waiter left
queued, nothing held.  Bounded by iteration counts.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import sync

pytestmark = pytest.mark.goconc_leaks


class Worker:
    """A thread running ``fn(*args)``; ``join`` bounds the wait and re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.result = fn(*args)
        except BaseException as e:
            self.error = e

    def join(self, timeout: float = WAIT * 3) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker thread did not finish in time"
        if self.error is not None:
            raise self.error
        return self.result


class Guard:
    """Counts holders; records any overlap the primitive should have prevented."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.total = 0

    def enter(self, weight: int = 1) -> None:
        with self.lock:
            self.inside += weight
            self.total += 1
            self.peak = max(self.peak, self.inside)

    def leave(self, weight: int = 1) -> None:
        with self.lock:
            self.inside -= weight


async def _cancel_some(tasks: list[asyncio.Task[Any]], rnd: random.Random) -> None:
    for t in tasks:
        if rnd.random() < 0.2:
            await asyncio.sleep(rnd.random() * 0.002)
            t.cancel()


def test_mutex_exclusion_across_threads_and_tasks_with_timeouts_and_cancels() -> None:
    mu = sync.Mutex()
    guard = Guard()
    counter = [0]

    def thread_side(seed: int) -> int:
        rnd = random.Random(seed)
        got = 0
        for _ in range(300):
            try:
                mu.lock(timeout=rnd.choice([None, 0.0005, 0.01]))
            except TimeoutError:
                continue
            guard.enter()
            n = counter[0]
            if rnd.random() < 0.3:
                time.sleep(0)
            counter[0] = n + 1
            guard.leave()
            mu.unlock()
            got += 1
        return got

    async def task_side(seed: int) -> int:
        rnd = random.Random(seed)
        got = 0

        async def one() -> None:
            nonlocal got
            await mu.alock(timeout=WAIT)
            guard.enter()
            n = counter[0]
            try:
                await asyncio.sleep(0)  # a cancel here still counts the increment below
            finally:
                counter[0] = n + 1
                guard.leave()
                mu.unlock()
                got += 1

        for _ in range(30):
            tasks = [asyncio.ensure_future(one()) for _ in range(5)]
            await _cancel_some(tasks, rnd)
            await asyncio.gather(*tasks, return_exceptions=True)
        return got

    workers = [Worker(thread_side, i) for i in range(3)]
    workers += [Worker(run_async, task_side(10 + i), WAIT * 3) for i in range(2)]
    acquired = sum(w.join() for w in workers)
    assert guard.peak == 1
    assert counter[0] == acquired == guard.total
    s = mu.statistics()
    assert (s.locked, s.waiting, s.starving) == (False, 0, False)
    assert s.acquisitions >= acquired


def test_rwmutex_readers_never_meet_a_writer() -> None:
    rw = sync.RWMutex()
    readers = Guard()
    writers = Guard()
    errors: list[str] = []

    def check_read() -> None:
        if writers.inside:
            errors.append("reader with a writer")

    def check_write() -> None:
        if writers.inside != 1 or readers.inside:
            errors.append("writer not alone")

    def thread_reader(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(400):
            try:
                rw.rlock(timeout=rnd.choice([None, 0.001]))
            except TimeoutError:
                continue
            readers.enter()
            check_read()
            time.sleep(0)
            readers.leave()
            rw.runlock()

    def thread_writer(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(150):
            try:
                rw.lock(timeout=rnd.choice([None, 0.001]))
            except TimeoutError:
                continue
            writers.enter()
            check_write()
            time.sleep(0)
            writers.leave()
            rw.unlock()

    async def tasks(seed: int) -> None:
        rnd = random.Random(seed)

        async def read() -> None:
            await rw.arlock(timeout=WAIT)
            try:
                readers.enter()
                check_read()
                await asyncio.sleep(0)
            finally:
                readers.leave()
                rw.runlock()

        async def write() -> None:
            await rw.alock(timeout=WAIT)
            try:
                writers.enter()
                check_write()
                await asyncio.sleep(0)
            finally:
                writers.leave()
                rw.unlock()

        for _ in range(30):
            ts = [asyncio.ensure_future(read()) for _ in range(4)]
            ts.append(asyncio.ensure_future(write()))
            await _cancel_some(ts, rnd)
            await asyncio.gather(*ts, return_exceptions=True)

    workers = [Worker(thread_reader, i) for i in range(3)]
    workers += [Worker(thread_writer, 5 + i) for i in range(2)]
    workers += [Worker(run_async, tasks(9), WAIT * 3)]
    for w in workers:
        w.join()
    assert not errors
    s = rw.statistics()
    assert (s.readers, s.writer, s.readers_waiting, s.writers_waiting) == (0, False, 0, 0)


def test_weighted_semaphore_never_exceeds_its_size() -> None:
    size = 6
    sem = sync.Semaphore(size)
    guard = Guard()

    def thread_side(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(200):
            n = rnd.randint(1, size)
            try:
                sem.acquire(n, timeout=rnd.choice([None, 0.001]))
            except TimeoutError:
                continue
            guard.enter(n)
            time.sleep(0)
            guard.leave(n)
            sem.release(n)

    async def task_side(seed: int) -> None:
        rnd = random.Random(seed)

        async def one(n: int) -> None:
            await sem.aacquire(n, timeout=WAIT)
            try:
                guard.enter(n)
                await asyncio.sleep(0)
            finally:
                guard.leave(n)
                sem.release(n)

        for _ in range(25):
            ts = [asyncio.ensure_future(one(rnd.randint(1, size))) for _ in range(4)]
            await _cancel_some(ts, rnd)
            await asyncio.gather(*ts, return_exceptions=True)

    workers = [Worker(thread_side, i) for i in range(3)]
    workers += [Worker(run_async, task_side(20 + i), WAIT * 3) for i in range(2)]
    for w in workers:
        w.join()
    assert guard.peak <= size
    s = sem.statistics()
    assert (s.held, s.waiting) == (0, 0)


def test_cond_queue_between_threads_and_tasks_loses_nothing() -> None:
    mu = sync.Mutex()
    not_empty = sync.Cond(mu)
    items: list[int] = []
    got: list[int] = []
    per_producer = 300
    producers = 3
    consumers_threads = 2
    stop = -1

    def producer(base: int) -> None:
        for i in range(per_producer):
            with mu:
                items.append(base + i)
            not_empty.signal()

    def thread_consumer() -> None:
        while True:
            with mu:
                while not items:
                    not_empty.wait(timeout=WAIT)
                v = items.pop(0)
            if v == stop:
                return
            got.append(v)

    async def task_consumer() -> None:
        while True:
            async with mu:
                while not items:
                    await not_empty.wait_async(timeout=WAIT)
                v = items.pop(0)
            if v == stop:
                return
            got.append(v)

    async def task_consumers() -> None:
        await asyncio.gather(task_consumer(), task_consumer())

    consumers = [Worker(thread_consumer) for _ in range(consumers_threads)]
    consumers.append(Worker(run_async, task_consumers(), WAIT * 3))
    prods = [Worker(producer, 10_000 * (p + 1)) for p in range(producers)]
    for w in prods:
        w.join()
    for _ in range(consumers_threads + 2):
        with mu:
            items.append(stop)
        not_empty.broadcast()
    for w in consumers:
        w.join()
    assert Counter(got) == Counter(
        10_000 * (p + 1) + i for p in range(producers) for i in range(per_producer)
    )
    assert not_empty.statistics().waiters == 0


@pytest.mark.parametrize("rounds", [30])
def test_waitgroup_batches_of_threads_and_tasks(rounds: int) -> None:
    wg = sync.WaitGroup()
    done = [0]
    lock = threading.Lock()

    def work() -> None:
        with lock:
            done[0] += 1

    async def awork() -> None:
        await asyncio.sleep(0)
        with lock:
            done[0] += 1

    async def from_a_task() -> None:
        for _ in range(rounds):
            for _ in range(3):
                wg.go(awork)
                wg.go(work)
            await wg.wait_async(timeout=WAIT)

    run_async(from_a_task(), WAIT * 3)
    for _ in range(rounds):
        for _ in range(3):
            wg.go(work)
        wg.wait(timeout=WAIT)
    assert done[0] == rounds * 9
    assert wg.statistics().count == 0
