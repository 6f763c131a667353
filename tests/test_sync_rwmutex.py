"""sync.RWMutex: Go's rwmutex tests (parallel readers, hammer, misuse, RLocker) and more."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from conftest import WAIT, run_async
from goconc import context, sync
from goconc.sync import _rwmutex


def wait_until(cond: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.0005)


def start(fn: Callable[..., object], *args: object) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


@pytest.fixture
def readers_admitted_at_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every queued reader counts as starving: an unlocking writer admits them all (Go's way)."""
    monkeypatch.setattr(_rwmutex, "STARVATION_THRESHOLD", -1.0)
    yield


def test_parallel_readers_hold_the_read_lock_together() -> None:
    # Go's TestParallelReaders: n readers all inside at once.
    rw = sync.RWMutex()
    n = 5
    inside = threading.Barrier(n, timeout=WAIT)

    def reader() -> None:
        rw.rlock(timeout=WAIT)
        inside.wait()  # every reader gets here only if all hold the lock together
        rw.runlock()

    ts = [start(reader) for _ in range(n)]
    for t in ts:
        t.join(WAIT)
    assert rw.statistics().read_acquisitions == n


def test_writer_excludes_readers_and_writers() -> None:
    rw = sync.RWMutex()
    rw.lock()
    assert not rw.try_rlock()
    assert not rw.try_lock()
    rw.unlock()
    assert rw.try_rlock()
    assert not rw.try_lock()
    rw.runlock()
    assert rw.try_lock()
    rw.unlock()


def test_a_waiting_writer_blocks_new_readers() -> None:
    rw = sync.RWMutex()
    rw.rlock()
    got_write = threading.Event()

    def writer() -> None:
        rw.lock(timeout=WAIT)
        got_write.set()
        rw.unlock()

    t = start(writer)
    wait_until(lambda: rw.statistics().writers_waiting == 1)
    assert not rw.try_rlock()  # no writer starvation: new readers wait behind it
    with pytest.raises(TimeoutError):
        rw.rlock(timeout=0.02)
    rw.runlock()  # the last reader out hands the lock to the writer
    t.join(WAIT)
    assert got_write.is_set()
    assert rw.try_rlock()
    rw.runlock()


def test_a_writer_that_gives_up_lets_the_readers_it_held_back_in() -> None:
    rw = sync.RWMutex()
    rw.rlock()
    results: list[str] = []

    def writer() -> None:
        try:
            rw.lock(timeout=0.05)
        except TimeoutError:
            results.append("writer timed out")

    def reader() -> None:
        rw.rlock(timeout=WAIT)
        results.append("reader in")
        rw.runlock()

    tw = start(writer)
    wait_until(lambda: rw.statistics().writers_waiting == 1)
    tr = start(reader)
    wait_until(lambda: rw.statistics().readers_waiting == 1)
    tw.join(WAIT)
    tr.join(WAIT)
    assert sorted(results) == ["reader in", "writer timed out"]
    rw.runlock()
    s = rw.statistics()
    assert (s.readers, s.writer, s.readers_waiting, s.writers_waiting) == (0, False, 0, 0)


def test_readers_queued_during_a_write_are_admitted_together(
    readers_admitted_at_once: None,
) -> None:
    async def main() -> None:
        rw = sync.RWMutex()
        inside: list[int] = []
        await rw.alock()

        async def reader(i: int) -> None:
            await rw.arlock(timeout=WAIT)
            inside.append(i)
            await asyncio.sleep(0.01)
            rw.runlock()

        readers = [asyncio.ensure_future(reader(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        writer2 = asyncio.ensure_future(rw.alock(timeout=WAIT))
        await asyncio.sleep(0.01)
        rw.unlock()  # admits all three readers before the second writer
        assert rw.statistics().readers == 3
        assert not rw.try_lock()
        await asyncio.wait_for(writer2, WAIT)
        assert sorted(inside) == [0, 1, 2]
        assert rw.statistics().writer
        rw.unlock()
        await asyncio.gather(*readers)

    run_async(main())


def test_an_unlocking_writer_may_relock_before_woken_readers_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_rwmutex, "STARVATION_THRESHOLD", 1e9)

    async def main() -> None:
        rw = sync.RWMutex()
        await rw.alock()
        got: list[str] = []

        async def reader() -> None:
            await rw.arlock(timeout=WAIT)
            got.append("read")
            rw.runlock()

        r = asyncio.ensure_future(reader())
        await asyncio.sleep(0)
        rw.unlock()  # wakes the reader
        assert rw.try_lock()  # the writer goes again first
        for _ in range(3):
            await asyncio.sleep(0)
        assert got == []  # the reader found it written and queued again
        rw.unlock()
        await asyncio.wait_for(r, WAIT)
        assert got == ["read"]

    run_async(main())


def test_reader_starvation_is_bounded_under_a_busy_writer() -> None:
    rw = sync.RWMutex()
    stop = threading.Event()
    box = [0]

    def writer() -> None:
        while not stop.is_set():
            rw.lock(timeout=WAIT)
            box[0] += 1
            rw.unlock()

    t = start(writer)
    try:
        for _ in range(20):
            rw.rlock(timeout=WAIT)
            rw.runlock()
    finally:
        stop.set()
        t.join(WAIT)


def test_hammer_readers_and_writers_keep_exclusion() -> None:
    # Go's HammerRWMutex: an activity counter (+1 per reader, +10000 per writer).
    rw = sync.RWMutex()
    activity = [0]
    lock = threading.Lock()
    errors: list[str] = []

    def reader(n: int) -> None:
        for _ in range(n):
            rw.rlock(timeout=WAIT)
            with lock:
                activity[0] += 1
                if activity[0] >= 10000:
                    errors.append("reader with a writer")
            time.sleep(0)
            with lock:
                activity[0] -= 1
            rw.runlock()

    def writer(n: int) -> None:
        for _ in range(n):
            rw.lock(timeout=WAIT)
            with lock:
                activity[0] += 10000
                if activity[0] != 10000:
                    errors.append("writer not alone")
            time.sleep(0)
            with lock:
                activity[0] -= 10000
            rw.unlock()

    ts = [start(writer, 200) for _ in range(2)] + [start(reader, 400) for _ in range(4)]
    for t in ts:
        t.join(WAIT * 3)
        assert not t.is_alive()
    assert not errors
    s = rw.statistics()
    assert (s.read_acquisitions, s.write_acquisitions) == (1600, 400)


def test_threads_and_tasks_share_one_rwmutex() -> None:
    rw = sync.RWMutex()
    box = {"v": 0, "writing": False}
    errors: list[str] = []

    def thread_writer() -> None:
        for _ in range(200):
            with rw:
                box["writing"] = True
                box["v"] += 1
                time.sleep(0)
                box["writing"] = False

    async def task_reader() -> None:
        for _ in range(200):
            await rw.arlock(timeout=WAIT)
            if box["writing"]:
                errors.append("read during a write")
            await asyncio.sleep(0)
            rw.runlock()

    async def task_writer() -> None:
        for _ in range(100):
            async with rw:
                box["writing"] = True
                box["v"] += 1
                await asyncio.sleep(0)
                box["writing"] = False

    async def tasks() -> None:
        await asyncio.gather(task_reader(), task_reader(), task_writer())

    ts = [start(thread_writer), start(run_async, tasks())]
    for t in ts:
        t.join(WAIT * 3)
        assert not t.is_alive()
    assert not errors
    assert box["v"] == 300


def test_misuse_raises_go_messages() -> None:
    rw = sync.RWMutex()
    with pytest.raises(sync.SyncError, match="sync: RUnlock of unlocked RWMutex"):
        rw.runlock()
    with pytest.raises(sync.SyncError, match="sync: Unlock of unlocked RWMutex"):
        rw.unlock()
    rw.rlock()
    with pytest.raises(sync.SyncError, match="sync: Unlock of unlocked RWMutex"):
        rw.unlock()
    rw.runlock()
    rw.lock()
    with pytest.raises(sync.SyncError, match="sync: RUnlock of unlocked RWMutex"):
        rw.runlock()
    rw.unlock()


def test_rlocker_is_a_locker_of_the_read_side() -> None:
    rw = sync.RWMutex()
    rl = rw.rlocker()
    assert isinstance(rl, sync.Locker)
    rl.lock()
    rl.lock()
    assert rw.statistics().readers == 2
    assert not rw.try_lock()
    rl.unlock()
    with rl:
        assert rw.statistics().readers == 2
    rl.unlock()
    assert rw.try_lock()
    rw.unlock()

    async def main() -> None:
        await rl.alock()
        async with rl:
            assert rw.statistics().readers == 2
        rl.unlock()

    run_async(main())


def test_cancelled_reader_and_writer_leave_no_trace() -> None:
    async def main() -> None:
        rw = sync.RWMutex()
        await rw.alock()
        r = asyncio.ensure_future(rw.arlock())
        w = asyncio.ensure_future(rw.alock())
        await asyncio.sleep(0.01)
        r.cancel()
        w.cancel()
        await asyncio.gather(r, w, return_exceptions=True)
        s = rw.statistics()
        assert (s.readers_waiting, s.writers_waiting) == (0, 0)
        rw.unlock()
        assert rw.try_lock()
        rw.unlock()

    run_async(main())


def test_write_lock_granted_to_a_cancelled_task_is_passed_on() -> None:
    async def main() -> None:
        rw = sync.RWMutex()
        await rw.arlock()
        w = asyncio.ensure_future(rw.alock())
        await asyncio.sleep(0)
        rw.runlock()  # hands the write lock to w, which has not run yet
        assert rw.statistics().writer
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w
        assert not rw.statistics().writer
        assert rw.try_rlock()
        rw.runlock()

    run_async(main())


def test_read_lock_granted_to_a_cancelled_task_is_released(readers_admitted_at_once: None) -> None:
    async def main() -> None:
        rw = sync.RWMutex()
        await rw.alock()
        r = asyncio.ensure_future(rw.arlock())
        await asyncio.sleep(0)
        rw.unlock()  # admits r, which has not run yet
        assert rw.statistics().readers == 1
        r.cancel()
        with pytest.raises(asyncio.CancelledError):
            await r
        assert rw.statistics().readers == 0
        assert rw.try_lock()
        rw.unlock()

    run_async(main())


def test_rlock_and_lock_honour_contexts() -> None:
    rw = sync.RWMutex()
    rw.lock()
    ctx, cancel = context.with_timeout(context.background(), 0.02)
    with pytest.raises(context.DeadlineExceeded):
        rw.rlock(ctx=ctx)
    with pytest.raises(context.DeadlineExceeded):
        rw.lock(ctx=ctx)
    cancel()
    rw.unlock()
    ctx2, cancel2 = context.with_cancel(context.background())
    cancel2()
    with pytest.raises(context.Canceled):
        rw.rlock(ctx=ctx2)
