"""The race detector is silent on correct goconc programs: examples, patterns, primitives.

Each scenario runs with the detector on and watches the state whose
correctness rests on a goconc happens-before edge (``race.Shared``,
``race.watch``, ``race.watch_module``); a report is a false positive and fails
the test with the report printed.  The edges that such scenarios showed
missing have a pair of tests at the end, in the style of ``test_race.py``: the
edge present -> silent, the edge removed -> reported.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import Chan, atomic, context, errgroup, go, patterns, race, runtime, select, sync
from goconc import time as gotime
from goconc.tracker import CallableSink, Event, Tracker

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _silent() -> None:
    found = race.reports()
    assert found == [], "\n\n".join(r.format() for r in found)


def _reported() -> None:
    assert race.reports(), "the race was not reported"


def _join(*gs: Any) -> None:
    for g in gs:
        g.join(timeout=WAIT)


def _shared() -> race.SharedDict[str, Any]:
    return race.Shared({"x": 0})


def _until(cond: Callable[[], bool]) -> None:
    """Poll ``cond`` (invisible to the detector: no edge) until it holds."""
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.0005)


class _Box:
    """A mutable object handed from goroutine to goroutine (watched)."""

    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.out = 0


def _box(n: int = 0) -> _Box:
    return race.watch(_Box(n))


# -- the examples ------------------------------------------------------------------------
#
# Every example runs in-process with its mutable globals instrumented and every
# instance of a class it defines watched, so that each attribute written after
# construction is checked against every later access.  Skipped: race_counter.py,
# race_interface.py and race_config.py, which race by design (they are the
# lessons' races, reported in test_race.py).  leak_channel.py and
# search_timeout.py leave goroutines blocked forever by design: they run under
# ``goconc race`` in a process of their own instead.  Inside the other examples,
# deliberately broken variants stay in: cow_map's writers without a lock lose
# updates through atomic loads and stores (a logic race, not a data race), and
# the leaky tracker and leak demonstrations race on nothing.


def _load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"race_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _watch_instances(module: ModuleType) -> None:
    """Watch every instance of every (non-exception) class ``module`` defines."""
    for value in list(vars(module).values()):
        if (
            isinstance(value, type)
            and value.__module__ == module.__name__
            and not issubclass(value, BaseException)
        ):
            init = value.__init__

            def watched_init(self: Any, *args: Any, __init: Any = init, **kw: Any) -> None:
                __init(self, *args, **kw)
                race.watch(self)

            value.__init__ = watched_init  # type: ignore[misc]


EXAMPLE_RUNS: list[Any] = [
    ("buffered_unbuffered", {"receiver_delay": 0.01}),
    ("config_reload", {"duration": 0.3, "interval": 0.02}),
    ("cow_map", {"duration": 0.05, "per_writer": 40}),
    ("errgroup_rpcs", {"scale": 0.1}),
    ("list_directory", {"n_files": 10}),
    ("mutex_starvation", {"rounds": 5, "max_seconds": 0.3}),
    ("pattern_cancel_by_close", {}),
    ("pattern_context", {"unit": 0.01}),
    ("pattern_fan_out_fan_in", {"n": 10, "workers": 3}),
    ("pattern_moving_on", {"unit": 0.005}),
    ("pattern_pipeline", {"n": 6}),
    ("pattern_timeout", {"unit": 0.01}),
    ("serve_app_debug", {"run_for": 0.2}),
    ("tracker_waitgroup", {"n_events": 50, "sink_delay": 0.001, "shutdown_timeout": 0.02}),
    ("tracker_worker", {"n_events": 30, "sink_delay": 0.001, "shutdown_timeout": 0.05}),
    ("race_counter_fixed", {"times": 50}),
    ("race_interface_fixed", {"rounds": 50}),
    ("race_config_fixed", {"rounds": 30}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [pytest.param(*r, id=r[0]) if type(r) is tuple else r for r in EXAMPLE_RUNS],
)
def test_example_runs_without_a_report(
    detector: io.StringIO, name: str, kwargs: dict[str, Any]
) -> None:
    module = _load_example(name)
    race.watch_module(module)
    _watch_instances(module)
    module.main(**kwargs)
    _silent()


@pytest.mark.parametrize("script", ["leak_channel.py", "search_timeout.py"])
def test_leaking_example_runs_under_goconc_race_without_a_report(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "goconc.cli", "race", str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "DATA RACE" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr


def test_channel_select_cond_and_errgroup_suites_pass_with_the_detector_on() -> None:
    # Their scenarios watch nothing, so they cannot report; they check that the
    # hooks change nothing else (cancellation, undo, hand-over paths included).
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--goconc-race",
            "tests/test_chan.py",
            "tests/test_select.py",
            "tests/test_sync_cond.py",
            "tests/test_errgroup.py",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


# -- patterns ----------------------------------------------------------------------------


def test_first_winner_result_is_ordered_before_the_caller(detector: io.StringIO) -> None:
    def fast(ctx: context.Context) -> _Box:
        b = _box(1)
        b.out = 2
        return b

    def slow(ctx: context.Context) -> _Box:
        gotime.sleep(WAIT, ctx=ctx)
        return _box()

    for _ in range(5):
        winner = patterns.first(None, fast, slow)
        assert winner.out == 2
        winner.out = 3  # the caller owns the winner's result now
    _silent()


def test_afirst_winner_result_is_ordered_before_the_caller(detector: io.StringIO) -> None:
    async def fast(ctx: context.Context) -> _Box:
        b = _box(1)
        b.out = 2
        return b

    def thread_fast(ctx: context.Context) -> _Box:
        b = _box(1)
        b.out = 3
        return b

    async def main() -> None:
        for _ in range(5):
            winner = await patterns.afirst(None, fast, thread_fast)
            assert winner.out in (2, 3)

    run_async(main())
    _silent()


def test_with_timeout_result_is_ordered_before_the_caller(detector: io.StringIO) -> None:
    s = _shared()

    def work(ctx: context.Context, b: _Box) -> _Box:
        assert s["x"] == 1  # written by the caller before the call
        b.out = b.n * 2
        s["x"] = 2
        return b

    s["x"] = 1
    b = patterns.with_timeout(WAIT, work, _box(21))
    assert b.out == 42 and s["x"] == 2

    def too_slow(ctx: context.Context) -> None:
        gotime.sleep(WAIT, ctx=ctx)

    with pytest.raises(context.DeadlineExceeded):
        patterns.with_timeout(0.01, too_slow)
    _silent()


def test_awith_timeout_result_is_ordered_before_the_caller(detector: io.StringIO) -> None:
    s = _shared()

    async def awork(ctx: context.Context, b: _Box) -> _Box:
        b.out = s["x"] + b.n
        return b

    def work(ctx: context.Context, b: _Box) -> _Box:
        b.out = s["x"] + b.n
        s["x"] = 5
        return b

    async def main() -> None:
        s["x"] = 1
        assert (await patterns.awith_timeout(WAIT, awork, _box(1))).out == 2
        assert (await patterns.awith_timeout(WAIT, work, _box(2))).out == 3
        assert s["x"] == 5

    run_async(main())
    _silent()


def test_pipeline_stages_hand_items_over_without_races(detector: io.StringIO) -> None:
    def square(b: _Box) -> _Box:
        b.out = b.n * b.n  # each stage writes what the next one reads
        return b

    def plus_one(b: _Box) -> _Box:
        b.out += 1
        return b

    boxes = [_box(i) for i in range(20)]
    with context.with_cancel(context.background()) as ctx:
        src = patterns.generate(boxes, ctx=ctx, cap=2)
        mid = patterns.map_stage(square, src, workers=3, ctx=ctx)
        out = patterns.map_stage(plus_one, mid, workers=2, ctx=ctx, cap=4)
        got = sorted(b.out for b in out)
    assert got == sorted(i * i + 1 for i in range(20))
    _silent()


def test_async_pipeline_stages_hand_items_over_without_races(detector: io.StringIO) -> None:
    async def square(b: _Box) -> _Box:
        await asyncio.sleep(0)
        b.out = b.n * b.n
        return b

    async def items() -> Any:
        for i in range(10):
            yield _box(i)

    async def main() -> list[int]:
        out = patterns.map_stage(square, patterns.generate(items()), workers=2)
        return sorted([b.out async for b in out])

    assert run_async(main()) == sorted(i * i for i in range(10))
    _silent()


def test_fan_in_and_fan_out_hand_items_over_without_races(detector: io.StringIO) -> None:
    done = race.Shared({}, name="done")
    mu = sync.Mutex()

    def produce(lo: int, hi: int) -> Chan[_Box]:
        return patterns.generate([_box(i) for i in range(lo, hi)])

    merged = patterns.fan_in(produce(0, 10), produce(10, 20), cap=3)

    def handle(b: _Box) -> None:
        b.out = b.n + 1
        with mu:
            done[b.n] = b.out

    g = patterns.fan_out(merged, 3, handle)
    assert g.wait(timeout=WAIT) is None
    assert sorted(done.values()) == list(range(1, 21))  # after wait: every handle

    async def ahandle(b: _Box) -> None:
        b.out = -b.n
        async with mu:
            done[b.n] = b.out

    g = patterns.fan_out(produce(0, 10), 2, ahandle)
    assert g.wait(timeout=WAIT) is None
    assert sorted(done[i] for i in range(10)) == sorted(-i for i in range(10))
    _silent()


def test_or_done_and_drop_hand_items_over_without_races(detector: io.StringIO) -> None:
    ch: Chan[_Box] = Chan(4)

    def producer() -> None:
        for i in range(10):
            b = _box(i)
            b.out = i * 3
            while not patterns.drop(ch, b):
                gotime.sleep(0.001)
        ch.close()

    p = go(producer)
    with context.with_cancel(context.background()) as ctx:
        got = [b.out for b in patterns.or_done(ctx, ch)]
    _join(p)
    assert got == [i * 3 for i in range(10)]
    _silent()


def test_parallel_map_results_are_ordered_before_the_caller(detector: io.StringIO) -> None:
    s = race.Shared({}, name="results")
    mu = sync.Mutex()

    def work(b: _Box) -> int:
        b.out = b.n * 2
        with mu:
            s[b.n] = b.out
        return b.out

    boxes = [_box(i) for i in range(30)]
    assert patterns.parallel_map(work, boxes, limit=4) == [i * 2 for i in range(30)]
    assert [b.out for b in boxes] == [s[i] for i in range(30)]
    _silent()


def test_aparallel_map_results_are_ordered_before_the_caller(detector: io.StringIO) -> None:
    async def awork(b: _Box) -> int:
        await asyncio.sleep(0)
        b.out = b.n + 100
        return b.out

    async def main() -> list[int]:
        boxes = [_box(i) for i in range(20)]
        got = await patterns.aparallel_map(awork, boxes, limit=3)
        assert [b.out for b in boxes] == got
        return got

    assert run_async(main()) == [i + 100 for i in range(20)]
    _silent()


# -- errgroup and WaitGroup ----------------------------------------------------------------


@pytest.mark.parametrize("limit", [-1, 1, 3])
def test_errgroup_threads_results_are_ordered_before_wait(
    detector: io.StringIO, limit: int
) -> None:
    s = race.Shared(dict.fromkeys(range(12), 0), name="parts")  # keys made before
    g, _ = errgroup.with_context(context.background())
    g.set_limit(limit)
    s["start"] = 1

    def part(i: int) -> None:
        assert s["start"] == 1
        s[i] = i * i  # a key of its own: no two parts touch the same location

    for i in range(12):
        g.go(part, i)
    assert g.wait(timeout=WAIT) is None
    assert [s[i] for i in range(12)] == [i * i for i in range(12)]
    _silent()


@pytest.mark.parametrize("limit", [-1, 2])
def test_errgroup_tasks_results_are_ordered_before_wait(detector: io.StringIO, limit: int) -> None:
    async def main() -> None:
        s = race.Shared(dict.fromkeys(range(10), -1), name="parts")
        g = errgroup.Group()
        g.set_limit(limit)

        async def part(i: int) -> None:
            await asyncio.sleep(0)
            s[i] = i

        for i in range(10):
            await g.ago(part, i)
        assert await g.wait_async(timeout=WAIT) is None
        assert sorted(s.values()) == list(range(10))

    run_async(main())
    _silent()


def test_errgroup_limit_of_one_serialises_its_functions(detector: io.StringIO) -> None:
    # With a limit of one, each function ends before the next one starts (Go:
    # the k-th receive from the semaphore channel happens before the (k+1)-th
    # send): an unguarded counter is not a race.
    counter = race.Shared({"n": 0})
    g = errgroup.Group()
    g.set_limit(1)

    def inc() -> None:
        counter["n"] = counter["n"] + 1

    for i in range(10):
        g.go(inc)
        if i % 3 == 0:
            _until(lambda: g.statistics().active == 0)  # the slot is free when go() asks
    assert g.wait(timeout=WAIT) is None
    assert counter["n"] == 10
    _silent()


def test_errgroup_error_and_context_without_races(detector: io.StringIO) -> None:
    s = _shared()

    def failing() -> None:
        s["x"] = 1
        raise ValueError("boom")

    def waiting(ctx: context.Context) -> None:
        ctx.done.recv_ok(timeout=WAIT)
        assert s["x"] == 1  # the failure cancelled ctx after writing

    g, ctx = errgroup.with_context(context.background())
    g.go(waiting, ctx)
    g.go(failing)
    err = g.wait(timeout=WAIT)
    assert isinstance(err, ValueError)
    s["x"] = 2
    _silent()


def test_waitgroup_go_orders_every_function_before_wait(detector: io.StringIO) -> None:
    s = race.Shared(dict.fromkeys(range(8), -1), name="results")
    wg = sync.WaitGroup()

    def part(i: int) -> None:
        s[i] = i

    async def apart(i: int) -> None:
        s[i] = i

    for i in range(8):
        wg.go(part if i % 2 else apart, i)
    wg.wait(timeout=WAIT)
    assert sorted(s.values()) == list(range(8))
    _silent()


# -- the tracker ---------------------------------------------------------------------------


def test_tracker_delivers_into_shared_state_without_races(
    detector: io.StringIO, tmp_path: Path
) -> None:
    delivered = race.Shared([], name="delivered")
    sink_calls = race.Shared({"n": 0})

    def write(batch: list[Event]) -> None:
        sink_calls["n"] = sink_calls["n"] + 1  # only the worker calls the sink
        delivered.extend(ev.value() for ev in batch)

    tracker = Tracker(
        CallableSink(write), buffer=8, batch_size=5, dead_letter=tmp_path / "dead.jsonl"
    )
    worker = go(tracker.run)
    producers = [go(_track, tracker, p) for p in range(3)]
    _join(*producers)
    result = tracker.shutdown(timeout=WAIT)
    _join(worker)
    assert result.delivered == 30 and result.drained
    assert sorted(v["i"] for v in delivered) == sorted(range(30))
    assert sink_calls["n"] >= 6
    _silent()


def _track(tracker: Tracker, p: int) -> None:
    for i in range(10):
        tracker.event(None, {"i": p * 10 + i}, timeout=WAIT)


def test_async_tracker_with_an_async_sink_without_races(
    detector: io.StringIO, tmp_path: Path
) -> None:
    delivered = race.Shared([], name="delivered")

    async def awrite(batch: list[Event]) -> None:
        await asyncio.sleep(0)
        delivered.extend(ev.value() for ev in batch)

    async def main() -> None:
        tracker = Tracker(CallableSink(awrite), batch_size=4, dead_letter=tmp_path / "d.jsonl")
        worker = go(tracker.arun)
        for i in range(12):
            await tracker.aevent(None, {"i": i})
        result = await tracker.ashutdown(timeout=WAIT)
        await worker.ajoin(timeout=WAIT)
        assert result.delivered == 12
        assert sorted(v["i"] for v in delivered) == list(range(12))

    run_async(main())
    _silent()


# -- sync ----------------------------------------------------------------------------------


def test_semaphore_as_a_lock_and_as_a_limiter(detector: io.StringIO) -> None:
    counter = race.Shared({"n": 0})
    sem = sync.Semaphore(1)

    def inc() -> None:
        for i in range(20):
            if i % 2:
                sem.acquire(timeout=WAIT)
            else:
                while not sem.try_acquire():
                    time.sleep(0.0005)
            try:
                counter["n"] = counter["n"] + 1
            finally:
                sem.release()

    async def ainc() -> None:
        for _ in range(20):
            await sem.aacquire(timeout=WAIT)
            try:
                counter["n"] = counter["n"] + 1
            finally:
                sem.release()

    _join(go(inc), go(inc), go(ainc))
    assert counter["n"] == 60

    # A weighted limiter: acquiring the whole size waits for every holder.
    results = race.Shared(dict.fromkeys(range(9), -1), name="results")
    limiter = sync.Semaphore(3)

    def work(i: int) -> None:
        try:
            results[i] = i
        finally:
            limiter.release()

    for i in range(9):
        limiter.acquire(timeout=WAIT)
        go(work, i)
    limiter.acquire(3, timeout=WAIT)
    assert sorted(results.values()) == list(range(9))
    _silent()


def test_pool_objects_move_between_goroutines_without_races(detector: io.StringIO) -> None:
    pool: sync.Pool[_Box] = sync.Pool(new=_box)

    def use(k: int) -> None:
        for i in range(30):
            b = pool.get()
            assert b is not None
            b.n = k  # a pooled object belongs to whoever got it
            b.out = b.n + i
            pool.put(b)

    async def ause(k: int) -> None:
        for i in range(30):
            b = pool.get()
            assert b is not None
            b.n = k
            await asyncio.sleep(0)
            b.out = b.n + i
            pool.put(b)

    _join(*(go(use, k) for k in range(3)), go(ause, 9))
    _silent()


def test_cond_queue_hands_items_over_without_races(detector: io.StringIO) -> None:
    mu = sync.Mutex()
    cond = sync.Cond(mu)
    queue = race.Shared([], name="queue")
    got = race.Shared([], name="got")

    def producer() -> None:
        for i in range(20):
            b = _box(i)
            b.out = i + 1  # written before the hand-over
            with mu:
                queue.append(b)
                cond.signal()
        with mu:
            queue.append(None)
            cond.broadcast()

    def consumer() -> None:
        while True:
            with mu:
                while not queue:
                    cond.wait(timeout=WAIT)
                b = queue.pop(0)
            if b is None:
                return
            b.out += 100  # the consumer owns it now
            with mu:
                got.append(b.out)

    _join(go(consumer), go(producer))
    assert sorted(got) == list(range(101, 121))
    _silent()


def test_once_and_once_value_publish_their_results(detector: io.StringIO) -> None:
    s = _shared()
    once = sync.Once()

    def init() -> None:
        s["x"] = 42

    def user() -> None:
        once.do(init)
        assert s["x"] == 42

    async def auser() -> None:
        await once.ado(init)
        assert s["x"] == 42

    _join(*(go(user) for _ in range(3)), go(auser))

    def build() -> _Box:
        b = _box(7)
        b.out = 49
        return b

    get = sync.once_value(build)

    def reader() -> None:
        assert get().out == 49

    _join(*(go(reader) for _ in range(4)))
    _silent()


def test_rwmutex_readers_and_writers_without_races(detector: io.StringIO) -> None:
    table = race.Shared({"a": 0, "b": 0})
    mu = sync.RWMutex()

    def writer() -> None:
        for i in range(20):
            with mu:
                table["a"] = i
                table["b"] = -i

    def reader() -> None:
        for _ in range(20):
            mu.rlock(timeout=WAIT)
            try:
                assert table["a"] == -table["b"]
            finally:
                mu.runlock()

    async def areader() -> None:
        for _ in range(10):
            await mu.arlock(timeout=WAIT)
            try:
                assert table["a"] == -table["b"]
            finally:
                mu.runlock()

    _join(go(writer), go(reader), go(reader), go(areader), go(writer))
    _silent()


# -- atomic --------------------------------------------------------------------------------


def test_atomic_value_publishes_an_object(detector: io.StringIO) -> None:
    current: atomic.Value[_Box] = atomic.Value(_box(0))

    def writer() -> None:
        for i in range(1, 50):
            b = _box(i)
            b.out = i * 2  # written before the store
            current.store(b)

    def reader() -> None:
        for _ in range(100):
            b = current.load()
            assert b is not None and b.out == b.n * 2

    _join(go(writer), go(reader), go(reader))
    _silent()


def test_atomic_swap_and_compare_and_swap_publish_objects(detector: io.StringIO) -> None:
    slot: atomic.Value[_Box] = atomic.Value(_box(0))

    def swapper(k: int) -> None:
        for i in range(30):
            b = _box(i)
            b.out = i
            old = slot.swap(b)
            assert old is not None
            old.out = old.n  # the swapped-out object is now ours alone

    _join(go(swapper, 1), go(swapper, 2))
    _silent()


def test_atomic_int_and_bool_flags_order_plain_state(detector: io.StringIO) -> None:
    s = race.Shared({"data": 0, "more": 0})
    ready = atomic.Bool()
    count = atomic.Int()

    def writer() -> None:
        s["data"] = 1
        ready.store(True)
        s["more"] = 2
        count.add(1)

    def reader() -> None:
        while not ready.load():
            time.sleep(0.0005)
        assert s["data"] == 1
        while count.load() < 1:
            time.sleep(0.0005)
        assert s["more"] == 2

    def claimer() -> None:
        while not count.compare_and_swap(1, 2):
            time.sleep(0.0005)
        assert s["more"] == 2

    _join(go(reader), go(claimer), go(writer))
    _silent()


def test_copy_on_write_publishes_its_snapshots(detector: io.StringIO) -> None:
    routes: atomic.CopyOnWrite[dict[str, _Box]] = atomic.CopyOnWrite({})

    def add(i: int) -> dict[str, _Box]:
        def change(cur: dict[str, _Box]) -> dict[str, _Box]:
            b = _box(i)
            b.out = i + 1
            return {**cur, str(i): b}

        return routes.update(change)

    def writer(lo: int) -> None:
        for i in range(lo, lo + 15):
            add(i)

    def reader() -> None:
        for _ in range(60):
            for b in routes.load().values():
                assert b.out == b.n + 1

    _join(go(writer, 0), go(writer, 100), go(reader), go(reader))
    assert len(routes.load()) == 30
    _silent()


# -- context and time ----------------------------------------------------------------------


def test_context_cancel_orders_the_canceller_before_observers(detector: io.StringIO) -> None:
    s = _shared()
    ctx, cancel = context.with_cancel_cause(context.background())
    child = context.with_value(ctx, "k", "v")

    def canceller() -> None:
        s["x"] = 1
        cancel(ConnectionResetError("gone"))

    def by_done() -> None:
        child.done.recv_ok(timeout=WAIT)
        assert s["x"] == 1

    def by_select() -> None:
        select(child.done, timeout=WAIT)
        assert s["x"] == 1

    async def by_task() -> None:
        await child.done.arecv_ok(timeout=WAIT)
        assert s["x"] == 1

    def by_err() -> None:
        while child.err() is None:
            time.sleep(0.0005)
        assert s["x"] == 1

    def by_cause() -> None:
        while context.cause(child) is None:
            time.sleep(0.0005)
        assert s["x"] == 1

    gs = [go(f) for f in (by_done, by_select, by_task, by_err, by_cause)]
    _join(go(canceller), *gs)
    _silent()


def test_timers_and_sleep_without_races(detector: io.StringIO) -> None:
    s = _shared()

    def ticker_user() -> None:
        t = gotime.tick(0.002)
        try:
            for _ in range(3):
                t.recv(timeout=WAIT)
                s["x"] = s["x"] + 1
        finally:
            t.stop()

    _join(go(ticker_user))
    gotime.after(0.002).recv(timeout=WAIT)
    gotime.sleep(0.001)
    assert s["x"] == 3
    _silent()


# -- asyncio entry points ------------------------------------------------------------------


def test_asyncio_run_and_gather_order_their_tasks_before_the_caller(
    detector: io.StringIO,
) -> None:
    s = race.Shared(dict.fromkeys(range(4), 0), name="parts")

    async def part(i: int) -> int:
        await asyncio.sleep(0)
        s[i] = i  # a plain asyncio task (gather's), not a goroutine
        return i

    async def child() -> None:
        s[3] = 3

    async def main() -> None:
        assert await asyncio.gather(*(part(i) for i in range(3))) == [0, 1, 2]
        assert [s[i] for i in range(3)] == [0, 1, 2]
        await go(child).ajoin(timeout=WAIT)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(part(0))

    run_async(main())
    assert [s[i] for i in range(4)] == [0, 1, 2, 3]
    _silent()


@dataclass(frozen=True)
class _Frozen:
    a: int


@dataclass(frozen=True, slots=True)
class _FrozenSlotted:
    a: int


def test_watch_keeps_frozen_and_slotted_objects_working(detector: io.StringIO) -> None:
    f = race.watch(_Frozen(1))
    assert f == _Frozen(1) and _Frozen(1) == f and f.a == 1
    assert f.__class__ is _Frozen and isinstance(f, _Frozen)
    fs = race.watch(_FrozenSlotted(2))
    assert fs == _FrozenSlotted(2) and fs.a == 2
    g = go(lambda: (f.a, fs.a))  # reads only: never a race
    assert (f.a, fs.a) == (1, 2)
    _join(g)
    _silent()


# -- the edges these scenarios needed: one pair each --------------------------------------
#
# As in test_race.py: a write in one goroutine, a read in another; with the
# edge silent, with the edge removed (the access moved past the synchronising
# operation, or the operation dropped) reported, however the run interleaves.

EDGE = pytest.mark.parametrize("edge", [True, False], ids=["edge-silent", "no-edge-reported"])


def _check(edge: bool) -> None:
    if edge:
        _silent()
    else:
        _reported()


@EDGE
def test_errgroup_limit_orders_a_finished_function_before_the_next_start(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()
    g = errgroup.Group()
    if edge:
        g.set_limit(1)
    g.go(lambda: s.__setitem__("x", 1))
    _until(lambda: g.statistics().active == 0)  # the slot is free: go() does not wait
    g.go(lambda: s["x"])
    assert g.wait(timeout=WAIT) is None
    _check(edge)


def _cancel_in_goroutine(s: race.SharedDict[str, Any], edge: bool) -> context.Context:
    """A context cancelled by another goroutine, which writes x before (edge) or after."""
    ctx, cancel = context.with_cancel_cause(context.background())
    cancelled = threading.Event()  # unknown to the detector: no edge

    def canceller() -> None:
        if edge:
            s["x"] = 1
        cancel(None)
        if not edge:
            s["x"] = 1
        cancelled.set()

    go(canceller)
    assert cancelled.wait(WAIT)
    return ctx


@EDGE
def test_done_fetched_after_the_end_orders_the_cancel(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ctx = _cancel_in_goroutine(s, edge)
    assert ctx.done.recv_ok(timeout=WAIT) == (None, False)  # first use of done: after the end
    s["x"]
    _check(edge)


@EDGE
def test_cause_orders_the_cancel(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ctx = _cancel_in_goroutine(s, edge)
    assert isinstance(context.cause(ctx), context.Canceled)
    s["x"]
    _check(edge)


@EDGE
def test_a_child_of_an_ended_context_is_ordered_after_the_cancel(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()
    ctx = _cancel_in_goroutine(s, edge)
    child, cancel = context.with_timeout(ctx, WAIT)  # ends at once, as its parent has
    g = go(lambda: (child.err(), s["x"]))
    _join(g)
    cancel()
    _check(edge)


@EDGE
def test_context_after_func_on_an_ended_context_runs_after_the_cancel(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()
    ctx = _cancel_in_goroutine(s, edge)
    ran: Chan[None] = Chan(1)
    context.after_func(ctx, lambda: (s["x"], ran.send(None)))
    ran.recv(timeout=WAIT)
    _check(edge)


@EDGE
def test_context_after_func_runs_after_the_cancel(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ran: Chan[None] = Chan(1)
    ctx, cancel = context.with_cancel(context.background())
    context.after_func(ctx, lambda: (s["x"], ran.send(None)))

    def canceller() -> None:
        if edge:
            s["x"] = 1
            cancel()
        else:
            cancel()
            s["x"] = 1

    _join(go(canceller))
    ran.recv(timeout=WAIT)
    _check(edge)


@pytest.mark.parametrize("reset", [False, True], ids=["after_func", "reset"])
@EDGE
def test_setting_a_timer_happens_before_its_function_runs(
    detector: io.StringIO, edge: bool, reset: bool
) -> None:
    s = _shared()
    ran: Chan[None] = Chan(1)
    started = threading.Event()  # unknown to the detector

    def fn() -> None:
        started.set()
        s["x"]
        ran.send(None)

    if reset:
        t = gotime.after_func(WAIT, fn)
        if edge:
            s["x"] = 1
        t.reset(0.001)
    else:
        if edge:
            s["x"] = 1
        gotime.after_func(0.001, fn)
    if not edge:
        assert started.wait(WAIT)
        s["x"] = 1
    ran.recv(timeout=WAIT)
    _check(edge)


@EDGE
def test_a_plain_asyncio_task_ends_before_its_creator_goes_on(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()

    async def main() -> None:
        go_on = asyncio.Event()

        async def child() -> None:
            s["x"] = 1
            await go_on.wait()

        t = asyncio.create_task(child())
        if edge:
            go_on.set()
            await t
        else:
            await asyncio.sleep(0.01)  # the child has written, and is still running
        s["x"]
        go_on.set()
        await t

    run_async(main())
    _check(edge)


@EDGE
def test_asyncio_run_orders_its_main_task_before_the_caller(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()
    written = threading.Event()  # unknown to the detector

    async def main() -> None:
        s["x"] = 1
        written.set()
        await asyncio.sleep(0.05 if not edge else 0)

    if edge:
        run_async(main())
        s["x"]
    else:
        t = threading.Thread(target=run_async, args=(main(),))
        t.start()
        assert written.wait(WAIT)
        s["x"]  # the loop runs in another thread: its task is not ordered before us
        t.join(WAIT)
    _check(edge)


@EDGE
def test_failed_compare_and_swap_acquires_the_store_it_read(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()
    flag = atomic.Int()

    def writer() -> None:
        s["x"] = 1
        flag.store(1)

    if edge:
        g = go(writer)
        while flag.compare_and_swap(0, 0):  # succeeds (and so fails to see 1) until the store
            time.sleep(0.0005)
    else:
        g = go(writer)
        _until(lambda: flag._v == 1)  # a peek the detector does not see: no edge
    s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_pool_put_happens_before_the_get_that_returns_it(detector: io.StringIO, edge: bool) -> None:
    pool: sync.Pool[_Box] = sync.Pool()
    taken = threading.Event()  # unknown to the detector

    def owner() -> None:
        pool.put(_box())  # fills this thread's private slot: the next put is shared
        b = _box()
        if edge:
            b.n = 1
            pool.put(b)
        else:
            pool.put(b)
            assert taken.wait(WAIT)
            b.n = 1

    g = go(owner)
    _until(lambda: pool.statistics().pooled == 2)
    got = pool.get()  # the shared one (this thread's private slot is empty)
    assert got is not None
    taken.set()
    got.n = 2
    _join(g)
    _check(edge)


@EDGE
def test_copy_on_write_update_publishes_what_fn_wrote(detector: io.StringIO, edge: bool) -> None:
    cow: atomic.CopyOnWrite[list[_Box]] = atomic.CopyOnWrite([])
    plain: list[_Box] = []  # unknown to the detector
    done = threading.Event()

    def writer() -> None:
        b = _box()
        b.out = 1
        if edge:
            cow.update(lambda cur: [*cur, b])
        else:
            plain.append(b)
        done.set()

    g = go(writer)
    if edge:
        _until(lambda: bool(cow.load()))
        b = cow.load()[0]
    else:
        assert done.wait(WAIT)
        b = plain[0]
    assert b.out == 1
    _join(g)
    _check(edge)


@EDGE
def test_runlock_happens_before_the_next_lock(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    mu = sync.RWMutex()
    read = threading.Event()

    def reader() -> None:
        if edge:
            mu.rlock(timeout=WAIT)
            s["x"]
            mu.runlock()
        else:
            s["x"]
        read.set()

    g = go(reader)
    assert read.wait(WAIT)
    with mu:
        s["x"] = 1
    _join(g)
    _check(edge)


class _Slotted:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


@EDGE
def test_watched_slotted_object_attributes_are_locations(detector: io.StringIO, edge: bool) -> None:
    o = race.watch(_Slotted())
    mu = sync.Mutex()

    def inc() -> None:
        for _ in range(5):
            if edge:
                with mu:
                    o.n += 1
            else:
                o.n += 1

    _join(go(inc), go(inc))
    if edge:
        assert o.n == 10  # without the mutex, increments may be lost (and are, without the GIL)
    _check(edge)


def test_a_channel_that_reuses_a_dead_channels_id_starts_clean(detector: io.StringIO) -> None:
    # A dead channel with a value left in its buffer must not pass its buffer
    # count to a newcomer at the same address: the newcomer's k-th receive would
    # look for the k-th send's clock in the wrong slot.
    reused = 0
    for _ in range(30):
        old: Chan[int] = Chan(3)
        old.send(0)  # never received
        old_id = id(old)
        del old
        ch: Chan[int] = Chan(2)
        reused += id(ch) == old_id
        s = _shared()

        def sender(s: race.SharedDict[str, Any] = s, ch: Chan[int] = ch) -> None:
            s["x"] = 1
            ch.send(1, timeout=WAIT)

        g = go(sender)
        _until(lambda ch=ch: len(ch) == 1)  # the value waits in the buffer
        ch.recv(timeout=WAIT)
        s["x"]
        _join(g)
    if not reused:
        pytest.skip("no channel reused a dead one's address in this run")
    _silent()


@pytest.mark.parametrize("cap", [0, 2])
@pytest.mark.parametrize("path", ["to-a-parked-receiver", "into-the-buffer"])
@EDGE
def test_a_value_put_back_by_a_cancelled_receiver_keeps_the_send_edge(
    detector: io.StringIO, edge: bool, path: str, cap: int
) -> None:
    # One loop, so the interleaving is fixed: receiver R parks; sender S hands
    # R the value and cancels R before it resumes; R puts the value back; T
    # receives it (parked before, or from the buffer after) and reads what S
    # wrote before (edge) or after (no edge) its send.
    s = _shared()

    async def main() -> None:
        ch: Chan[int] = Chan(cap)
        r = asyncio.create_task(ch.arecv(timeout=WAIT))
        await asyncio.sleep(0)  # R parks

        async def sender() -> None:
            if edge:
                s["x"] = 1
            await ch.asend(1, timeout=WAIT)  # completes R, which has not resumed yet
            r.cancel()
            if not edge:
                s["x"] = 1

        t = None
        if path == "to-a-parked-receiver":
            t = asyncio.create_task(ch.arecv(timeout=WAIT))
            await asyncio.sleep(0)  # T parks behind R
        g = go(sender)
        with pytest.raises(asyncio.CancelledError):
            await r
        got = await t if t is not None else await ch.arecv(timeout=WAIT)
        assert got == 1
        s["x"]
        await g.ajoin(timeout=WAIT)

    run_async(main())
    _check(edge)


@pytest.mark.parametrize(
    "observe",
    [
        pytest.param("result", id="result"),
        pytest.param("exception", id="exception"),
        pytest.param("done", id="done"),
    ],
)
def test_seeing_a_goroutine_done_orders_its_end(detector: io.StringIO, observe: str) -> None:
    s = _shared()

    def body() -> int:
        s["x"] = 1
        return 1

    g = go(body)
    if observe == "done":
        _until(g.done)
    else:
        _until(lambda: g._state == runtime._DONE)  # finished, seen without an edge
    if observe == "exception":
        assert g.exception() is None
    elif observe == "result":
        assert g.result() == 1
    s["x"]  # (without the observation only join() would order it: test_race.py's pair)
    _join(g)
    _silent()
