"""Many threads hammering one primitive at once: the exact invariants that matter without a GIL.

goconc promises that nothing in it relies on the GIL: every primitive guards its state with its
own lock.  On free-threaded CPython (``python3.13t``) the threads below really run at the same
time on every core, so a missing lock shows up as a lost or duplicated value, a wrong count or
two holders inside one critical section.  The same tests run on the default interpreter, where
a very short switch interval makes the GIL change hands inside the primitives' code as often as
it can.

Each test checks something exact (multiset equality of what was sent and received, counts,
mutual exclusion held, snapshots never torn), never a timing.  Every blocking call is bounded
by ``WAIT``; each test runs a few thousand operations and takes at most a few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from conftest import WAIT
from goconc import Chan, ChanClosed, Recv, Send, atomic, select, sync
from goconc.chan import aselect

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()

# Enough threads to keep every core busy and several threads queued on each primitive.
THREADS = 12
# Bound for one whole test's threads to finish (each blocking call inside has its own WAIT).
JOIN = 60.0


@pytest.fixture(autouse=True)
def frequent_switches() -> Iterator[None]:
    """Under the GIL, hand it over every few microseconds instead of every 5 ms."""
    if FREE_THREADED:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def run_threads(*targets: Callable[[], Any]) -> list[Any]:
    """Run each target on its own thread, all released at once; return their results in order.

    Re-raises the first exception a target raised; fails if a thread is still running
    after ``JOIN`` seconds.
    """
    start = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def body(i: int, fn: Callable[[], Any]) -> None:
        try:
            start.wait(WAIT)
            results[i] = fn()
        except BaseException as e:
            errors.append(e)
            start.abort()

    threads = [
        threading.Thread(target=body, args=(i, fn), name=f"stress-{i}", daemon=True)
        for i, fn in enumerate(targets)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + JOIN
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads still running after {JOIN}s: {alive}"
    return results


def on_loop(*coros: Callable[[], Any]) -> Callable[[], list[Any]]:
    """A thread target that runs the coroutine functions as tasks on an event loop of its own."""

    async def main() -> list[Any]:
        async with asyncio.timeout(JOIN):
            return list(await asyncio.gather(*(c() for c in coros)))

    return lambda: asyncio.run(main())


def spin(n: int) -> int:
    """A few bytecodes of work, to widen the window a missing lock would leave open."""
    x = 0
    for i in range(n):
        x += i
    return x


# -- channels ----------------------------------------------------------------------------

SENDERS = 8
RECEIVERS = 8
PER_SENDER = 400


def check_all_received_once(received: list[list[tuple[int, int]]], senders: int) -> None:
    """Every (sender, seq) value sent was received exactly once, and each stream (one
    receiver's values from one channel) has every sender's values in the order sent."""
    everything = [v for got in received for v in got]
    expected = [(s, i) for s in range(senders) for i in range(PER_SENDER)]
    assert Counter(everything) == Counter(expected)
    for got in received:
        last: dict[int, int] = {}
        for s, i in got:
            assert i > last.get(s, -1), f"sender {s}: value {i} received after {last[s]}"
            last[s] = i


def per_channel(
    received: list[list[tuple[int, tuple[int, int]]]], n_chans: int
) -> list[list[tuple[int, int]]]:
    """Split each selector's (channel index, value) arrivals into one stream per channel:
    the order of one sender's values holds per channel, not across channels."""
    return [[v for k, v in got if k == c] for got in received for c in range(n_chans)]


@pytest.mark.parametrize("cap", [0, 1, 16])
def test_every_value_sent_by_many_threads_is_received_exactly_once(cap: int) -> None:
    ch: Chan[tuple[int, int]] = Chan(cap)
    senders_left = atomic.Int(SENDERS)

    def sender(s: int) -> None:
        for i in range(PER_SENDER):
            ch.send((s, i), timeout=WAIT)
        if senders_left.add(-1) == 0:
            ch.close()

    def receiver() -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        while True:
            v, ok = ch.recv_ok(timeout=WAIT)
            if not ok:
                return got
            assert v is not None
            got.append(v)

    results = run_threads(*(partial(sender, s) for s in range(SENDERS)), *([receiver] * RECEIVERS))
    check_all_received_once(results[SENDERS:], SENDERS)
    stats = ch.statistics()
    parked = stats.senders_waiting + stats.receivers_waiting
    assert (stats.len, stats.closed, parked) == (0, True, 0)


@pytest.mark.parametrize("cap", [0, 8])
def test_threads_and_tasks_on_several_loops_share_one_channel_without_loss(cap: int) -> None:
    ch: Chan[tuple[int, int]] = Chan(cap)
    n_senders = 4 + 2 * 2  # four threads, two loops of two tasks
    senders_left = atomic.Int(n_senders)

    def sender(s: int) -> None:
        for i in range(PER_SENDER):
            ch.send((s, i), timeout=WAIT)
        if senders_left.add(-1) == 0:
            ch.close()

    async def asender(s: int) -> None:
        for i in range(PER_SENDER):
            await ch.asend((s, i), timeout=WAIT)
        if senders_left.add(-1) == 0:
            ch.close()

    def receiver() -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        while True:
            try:
                got.append(ch.recv(timeout=WAIT))
            except ChanClosed:
                return got

    async def areceiver() -> list[tuple[int, int]]:
        got: list[tuple[int, int]] = []
        while True:
            v, ok = await ch.arecv_ok(timeout=WAIT)
            if not ok:
                return got
            assert v is not None
            got.append(v)

    results = run_threads(
        *(partial(sender, s) for s in range(4)),
        on_loop(partial(asender, 4), partial(asender, 5)),
        on_loop(partial(asender, 6), partial(asender, 7)),
        *([receiver] * 4),
        on_loop(areceiver, areceiver),
        on_loop(areceiver, areceiver),
    )
    received = results[6:10] + [got for loop in results[10:] for got in loop]
    check_all_received_once(received, n_senders)


def test_select_across_shared_channels_loses_and_duplicates_nothing() -> None:
    """Senders select among four shared channels (two unbuffered, two buffered), receivers
    select among all four; the channel each value went through is the same on both sides."""
    chans: list[Chan[tuple[int, int]]] = [Chan(0), Chan(0), Chan(2), Chan(8)]
    senders_left = atomic.Int(SENDERS)

    def sender(s: int) -> dict[tuple[int, int], int]:
        rng = random.Random(s)
        went: dict[tuple[int, int], int] = {}
        for i in range(PER_SENDER):
            v = (s, i)
            if i % 5 == 4:  # now and then a plain send on one channel
                k = rng.randrange(len(chans))
                chans[k].send(v, timeout=WAIT)
                went[v] = k
                continue
            # Some cases disabled (None keeps its index), never all of them.
            cases = [Send(c, v) if rng.random() < 0.7 else None for c in chans]
            keep = rng.randrange(len(chans))
            cases[keep] = Send(chans[keep], v)
            sel = select(*cases, timeout=WAIT)
            assert sel.ok and sel.value is None
            went[v] = sel.index
        if senders_left.add(-1) == 0:
            for c in chans:
                c.close()
        return went

    def receiver(polling: bool) -> list[tuple[int, tuple[int, int]]]:
        cases: list[Chan[tuple[int, int]] | None] = list(chans)
        got = []
        deadline = time.monotonic() + JOIN
        while any(c is not None for c in cases):
            if polling:  # select with a default: never parks
                sel = select(*cases, default=True)
                if sel.index == -1:
                    assert time.monotonic() < deadline, "polling receiver never finished"
                    time.sleep(0)
                    continue
            else:
                sel = select(*cases, timeout=WAIT)
            if sel.ok:
                got.append((sel.index, sel.value))
            else:
                cases[sel.index] = None  # closed and drained: disable it, as a nil channel
        return got

    results = run_threads(
        *(partial(sender, s) for s in range(SENDERS)),
        *(partial(receiver, k % 4 == 3) for k in range(RECEIVERS)),
    )
    went: dict[tuple[int, int], int] = {}
    for w in results[:SENDERS]:
        went.update(w)
    arrivals = [pair for got in results[SENDERS:] for pair in got]
    assert sorted(v for _, v in arrivals) == sorted(went)  # each value once
    assert all(went[v] == k for k, v in arrivals), "a value arrived on another channel"
    check_all_received_once(per_channel(results[SENDERS:], len(chans)), SENDERS)


def test_async_selectors_on_several_loops_and_thread_senders_lose_nothing() -> None:
    chans: list[Chan[tuple[int, int]]] = [Chan(0), Chan(0), Chan(4)]
    senders_left = atomic.Int(4)

    def sender(s: int) -> None:
        for i in range(PER_SENDER):
            select(*(Send(c, (s, i)) for c in chans), timeout=WAIT)
        if senders_left.add(-1) == 0:
            for c in chans:
                c.close()

    async def areceiver() -> list[tuple[int, tuple[int, int]]]:
        cases: list[Recv | None] = [Recv(c) for c in chans]
        got = []
        while any(c is not None for c in cases):
            sel = await aselect(*cases, timeout=WAIT)
            if sel.ok:
                got.append((sel.index, sel.value))
            else:
                cases[sel.index] = None
        return got

    results = run_threads(
        *(partial(sender, s) for s in range(4)),
        on_loop(areceiver, areceiver, areceiver),
        on_loop(areceiver, areceiver, areceiver),
    )
    check_all_received_once(per_channel([got for loop in results[4:] for got in loop], 3), 4)


# -- Mutex and RWMutex -------------------------------------------------------------------


class Guarded:
    """State changed only under the lock being tested, by a non-atomic read-modify-write."""

    def __init__(self) -> None:
        self.count = 0
        self.inside = False
        self.overlaps = 0  # holders that found another holder inside

    def critical(self, work: int = 20) -> None:
        if self.inside:
            self.overlaps += 1
        self.inside = True
        v = self.count
        spin(work)
        self.count = v + 1
        self.inside = False


def test_mutex_keeps_mutual_exclusion_under_threads_tasks_and_try_lock() -> None:
    mu = sync.Mutex()
    st = Guarded()
    per = 1000

    def locker() -> None:
        for _ in range(per):
            mu.lock(timeout=WAIT)
            try:
                st.critical()
            finally:
                mu.unlock()

    def try_locker() -> None:
        deadline = time.monotonic() + JOIN
        for _ in range(per):
            while not mu.try_lock():
                assert time.monotonic() < deadline, "try_lock never succeeded"
                time.sleep(0)
            try:
                st.critical()
            finally:
                mu.unlock()

    async def alocker() -> None:
        for i in range(per):
            await mu.alock(timeout=WAIT)
            try:
                st.critical()
                if i % 4 == 0:
                    await asyncio.sleep(0)  # hold it across a suspension now and then
            finally:
                mu.unlock()

    targets = [locker] * 8 + [try_locker] * 2 + [on_loop(alocker, alocker)] * 2
    run_threads(*targets)
    assert st.overlaps == 0
    assert st.count == 14 * per
    s = mu.statistics()
    assert (s.locked, s.waiting, s.acquisitions) == (False, 0, 14 * per)


def test_rwmutex_readers_never_see_a_writer_inside_and_writes_are_not_lost() -> None:
    rw = sync.RWMutex()
    st = Guarded()
    pair = [0, 0]  # written by writers as (n, -n), one element at a time
    torn: list[tuple[int, int]] = []
    per = 500

    def writer() -> None:
        for _ in range(per):
            rw.lock(timeout=WAIT)
            try:
                st.critical()
                pair[0] = st.count
                spin(10)
                pair[1] = -st.count
            finally:
                rw.unlock()

    def reader() -> int:
        seen = 0
        for _ in range(per * 2):
            rw.rlock(timeout=WAIT)
            try:
                a, b = pair
                if st.inside or a != -b:
                    torn.append((a, b))
                seen = max(seen, a)
            finally:
                rw.runlock()
        return seen

    run_threads(*([writer] * 4), *([reader] * 8))
    assert torn == []
    assert st.overlaps == 0
    assert st.count == 4 * per
    assert pair == [4 * per, -4 * per]
    s = rw.statistics()
    assert (s.readers, s.writer, s.readers_waiting, s.writers_waiting) == (0, False, 0, 0)


# -- WaitGroup ---------------------------------------------------------------------------


def test_wait_returns_only_after_every_done_of_its_round() -> None:
    """Each round a coordinator adds W, W workers finish and call done, M waiters wait; every
    waiter must see all W workers' writes (plain list stores: the WaitGroup orders them)."""
    workers, waiters, rounds = 8, 3, 120
    wg = sync.WaitGroup()
    finished = [[False] * workers for _ in range(rounds)]
    begin = threading.Barrier(1 + workers + waiters)
    end = threading.Barrier(1 + workers + waiters)
    incomplete: list[tuple[int, int]] = []

    def coordinator() -> None:
        for _ in range(rounds):
            wg.add(workers)
            begin.wait(WAIT)
            end.wait(WAIT)

    def worker(k: int) -> None:
        rng = random.Random(k)
        for r in range(rounds):
            begin.wait(WAIT)
            spin(rng.randrange(400))
            finished[r][k] = True
            wg.done()
            end.wait(WAIT)

    def waiter() -> None:
        for r in range(rounds):
            begin.wait(WAIT)
            wg.wait(timeout=WAIT)
            if not all(finished[r]):
                incomplete.append((r, finished[r].count(True)))
            end.wait(WAIT)

    run_threads(coordinator, *(partial(worker, k) for k in range(workers)), *[waiter] * waiters)
    assert incomplete == []
    s = wg.statistics()
    assert (s.count, s.waiters) == (0, 0)


def test_add_and_done_from_many_threads_never_reach_zero_or_go_negative() -> None:
    """With one unit held throughout, concurrent add/done pairs never make the counter
    negative (no spurious "negative WaitGroup counter") and never release a waiter."""
    wg = sync.WaitGroup()
    wg.add(1)
    stop = threading.Event()
    per = 2000

    def churner(k: int) -> None:
        for i in range(per):
            n = 1 + (i + k) % 3
            wg.add(n)
            for _ in range(n):
                wg.done()

    def waiter() -> int:
        timeouts = 0
        while not stop.is_set() or timeouts == 0:
            with pytest.raises(TimeoutError):
                wg.wait(timeout=0.001)
            timeouts += 1
        return timeouts

    def churners() -> None:
        try:
            run_threads(*(partial(churner, k) for k in range(THREADS - 2)))
        finally:
            stop.set()

    results = run_threads(churners, waiter, waiter)
    assert all(n > 0 for n in results[1:])
    assert wg.statistics().count == 1
    wg.done()
    wg.wait(timeout=WAIT)
    with pytest.raises(sync.SyncError, match="negative WaitGroup counter"):
        wg.done()


def test_wait_sees_every_goroutine_of_a_tree_grown_from_many_threads() -> None:
    """Goroutines started with wg.go add their children before they end: wait returns only
    once the whole tree has run."""
    wg = sync.WaitGroup()
    ran = atomic.Int()
    fanout, depth = 3, 4  # 1 + 3 + 9 + 27 + 81 goroutines per root

    def node(level: int) -> None:
        ran.add(1)
        if level < depth:
            for _ in range(fanout):
                wg.go(node, level + 1)

    def root() -> None:
        wg.go(node, 0)

    run_threads(*[root] * 6)
    wg.wait(timeout=WAIT)
    assert ran.load() == 6 * sum(fanout**i for i in range(depth + 1))
    assert wg.statistics().count == 0


# -- atomic ------------------------------------------------------------------------------


def test_atomic_int_add_is_exact_and_returns_each_new_value_once() -> None:
    n = atomic.Int()
    per = 10_000  # long enough for the threads to overlap

    def adder() -> list[int]:
        return [n.add(1) for _ in range(per)]

    results = run_threads(*[adder] * THREADS)
    # Every add reached the counter exactly once: the new values it returned are 1..total.
    assert sorted(v for got in results for v in got) == list(range(1, THREADS * per + 1))
    assert n.load() == THREADS * per


def test_atomic_int_adds_of_any_size_from_many_threads_sum_exactly() -> None:
    n = atomic.Int(7)
    per = 5000

    def adder(k: int) -> int:
        total = 0
        for i in range(per):
            d = (i * 7919 + k) % 1001 - 500  # negative, zero and positive deltas
            n.add(d)
            total += d
            if i % 3 == 0:  # and additions that cancel out, racing the others
                n.add(k + 2**40)
                n.add(-(k + 2**40))
        return total

    results = run_threads(*(partial(adder, k) for k in range(THREADS)))
    assert n.load() == 7 + sum(results)


def test_compare_and_swap_increments_from_many_threads_are_exact() -> None:
    n = atomic.Int()
    per = 5000

    def incrementer() -> tuple[list[int], int]:
        won, retries = [], 0
        for _ in range(per):
            while True:
                old = n.load()
                if n.compare_and_swap(old, old + 1):
                    won.append(old)
                    break
                retries += 1
        return won, retries

    results = run_threads(*[incrementer] * THREADS)
    won = sorted(v for got, _ in results for v in got)
    assert won == list(range(THREADS * per))  # each old value won by exactly one thread
    assert n.load() == THREADS * per


def test_atomic_bool_compare_and_swap_works_as_a_spin_lock() -> None:
    flag = atomic.Bool()
    st = Guarded()
    per = 500

    def worker() -> None:
        deadline = time.monotonic() + JOIN
        for _ in range(per):
            while not flag.compare_and_swap(False, True):
                assert time.monotonic() < deadline, "spin lock never acquired"
                time.sleep(0)
            st.critical()
            assert flag.swap(False) is True

    run_threads(*[worker] * 8)
    assert st.overlaps == 0
    assert st.count == 8 * per


class Snapshot:
    """A multi-field record built completely before it is stored, then never changed."""

    __slots__ = ("gen", "items", "square", "text")

    def __init__(self, gen: int) -> None:
        self.gen = gen
        self.square = gen * gen
        self.text = str(gen)
        self.items = [gen] * 8

    def consistent(self) -> bool:
        g = self.gen
        return self.square == g * g and self.text == str(g) and self.items == [g] * 8


def test_atomic_value_readers_never_see_a_torn_or_older_snapshot() -> None:
    """Writers advance the generation by compare-and-swap; readers load concurrently.  Every
    load is a complete snapshot, and one reader's generations never go backwards."""
    value = atomic.Value(Snapshot(0))
    writers_done = threading.Event()
    per = 600

    def writer() -> int:
        wins = 0
        while wins < per:
            cur = value.load()
            assert cur is not None
            if value.compare_and_swap(cur, Snapshot(cur.gen + 1)):
                wins += 1
        return wins

    def writers() -> list[int]:
        try:
            return run_threads(*[writer] * 4)
        finally:
            writers_done.set()

    def reader() -> tuple[int, list[int]]:
        loads, last, bad = 0, 0, []
        while not writers_done.is_set() or loads == 0:
            s = value.load()
            assert s is not None
            if not s.consistent() or s.gen < last:
                bad.append(s.gen)
            last = s.gen
            loads += 1
        return loads, bad

    results = run_threads(writers, *[reader] * 8)
    assert sum(results[0]) == 4 * per
    final = value.load()
    assert final is not None and final.gen == 4 * per
    assert [bad for _, bad in results[1:] if bad] == []


def test_atomic_value_swap_hands_every_stored_value_to_exactly_one_caller() -> None:
    first = Snapshot(-1)
    value = atomic.Value(first)
    per = 800

    def swapper(k: int) -> list[Snapshot]:
        out = []
        for i in range(per):
            old = value.swap(Snapshot(k * per + i))
            assert old is not None and old.consistent()
            out.append(old)
        return out

    results = run_threads(*(partial(swapper, k) for k in range(8)))
    final = value.load()
    assert final is not None
    handed = [s.gen for got in results for s in got] + [final.gen]
    assert sorted(handed) == list(range(-1, 8 * per))


@dataclass(frozen=True)
class Table:
    count: int
    keys: frozenset[str]


def add_key(key: str, t: Table) -> Table:
    return Table(t.count + 1, t.keys | {key})


def test_copy_on_write_updates_from_many_threads_are_all_kept_and_snapshots_whole() -> None:
    table = atomic.CopyOnWrite(Table(0, frozenset()))
    writers_done = threading.Event()
    per = 300

    def writer(k: int) -> None:
        for i in range(per):
            table.update(partial(add_key, f"{k}:{i}"))

    def writers() -> None:
        try:
            run_threads(*(partial(writer, k) for k in range(6)))
        finally:
            writers_done.set()

    def reader() -> list[int]:
        last, bad = 0, []
        while not writers_done.is_set():
            t = table.load()
            if t.count != len(t.keys) or t.count < last:
                bad.append(t.count)
            last = t.count
        return bad

    results = run_threads(writers, *[reader] * 6)
    assert [bad for bad in results[1:] if bad] == []
    final = table.load()
    assert final.keys == {f"{k}:{i}" for k in range(6) for i in range(per)}
    assert final.count == 6 * per


# -- Pool --------------------------------------------------------------------------------


class Buffer:
    """A pooled object that records who holds it."""

    serial = itertools.count()

    def __init__(self) -> None:
        self.id = next(Buffer.serial)
        self.holder: int | None = None


def test_pool_never_hands_one_object_to_two_holders_at_once() -> None:
    """Users take and give back objects while full garbage collections rotate the pool's
    caches under them: an object is never held by two users, and every get, put and call
    of ``new`` is counted."""
    made: list[Buffer] = []
    made_mu = threading.Lock()

    def new() -> Buffer:
        b = Buffer()
        with made_mu:
            made.append(b)
        return b

    pool: sync.Pool[Buffer] = sync.Pool(new=new)
    held: set[int] = set()  # ids of the objects held now, guarded by held_mu
    held_mu = threading.Lock()
    doubles: list[int] = []
    users_done = threading.Event()
    per = 1500

    def take(k: int) -> Buffer:
        b = pool.get()
        assert isinstance(b, Buffer)
        with held_mu:
            if b.id in held:
                doubles.append(b.id)
            held.add(b.id)
        if b.holder is not None:
            doubles.append(b.id)
        b.holder = k
        return b

    def give(k: int, b: Buffer) -> None:
        assert b.holder == k
        b.holder = None
        with held_mu:
            held.remove(b.id)
        pool.put(b)

    def user(k: int) -> tuple[int, int]:
        rng = random.Random(k)
        mine: list[Buffer] = []
        gets = 0
        for _ in range(per):
            if mine and (len(mine) >= 3 or rng.random() < 0.5):
                give(k, mine.pop(rng.randrange(len(mine))))
            else:
                mine.append(take(k))
                gets += 1
                spin(10)
        for b in mine:
            give(k, b)
        return gets, per - gets + len(mine)

    def users() -> list[tuple[int, int]]:
        try:
            return run_threads(*(partial(user, k) for k in range(THREADS)))
        finally:
            users_done.set()

    def collector() -> int:
        n = 0
        while not users_done.is_set():
            gc.collect()
            n += 1
            users_done.wait(0.005)
        return n

    results = run_threads(users, collector)
    assert doubles == []
    assert held == set()
    assert all(b.holder is None for b in made)
    s = pool.statistics()
    gets = sum(g for g, _ in results[0])
    puts = sum(p for _, p in results[0])
    assert (s.gets, s.puts, s.news) == (gets, puts, len(made))
