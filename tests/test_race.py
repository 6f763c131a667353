"""The race detector: the lessons' races found, their fixes silent, every edge honoured."""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import Chan, atomic, context, errgroup, go, race, sync

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _example(name: str) -> Any:
    sys.path.insert(0, str(EXAMPLES))
    try:
        mod = importlib.import_module(name)
        return importlib.reload(mod)
    finally:
        sys.path.remove(str(EXAMPLES))


def _join(*gs: Any) -> None:
    for g in gs:
        g.join(timeout=WAIT)


# -- the lessons' three races and their fixes, 20 runs each ------------------------------


@pytest.mark.parametrize(
    ("racy", "fixed"),
    [
        ("race_counter", "race_counter_fixed"),
        ("race_interface", "race_interface_fixed"),
        ("race_config", "race_config_fixed"),
    ],
)
def test_lesson_race_is_reported_and_its_fix_is_silent(
    detector: io.StringIO, racy: str, fixed: str
) -> None:
    bad, good = _example(racy), _example(fixed)
    race.watch_module(bad)
    race.watch_module(good)
    for _ in range(20):
        race.reset()
        bad.main(50)
        assert race.reports(), f"{racy}: no race reported"
        race.reset()
        good.main(50)
        assert race.reports() == [], f"{fixed}: {race.reports()[0].format()}"


def test_counter_race_report_has_gos_shape(detector: io.StringIO) -> None:
    mod = race.watch_module(_example("race_counter"))
    mod.main(10)
    text = detector.getvalue()
    assert "WARNING: DATA RACE" in text
    assert "counter (global of race_counter)" in text
    assert "Previous write at" in text
    assert "created at:" in text
    assert "race_counter.py" in text
    r = race.reports()[0]
    assert r.location.startswith("counter")
    assert {r.access, r.previous_access} <= {"read", "write"}
    assert r.stack and r.previous_stack and r.created_at


def test_each_distinct_race_is_reported_once(detector: io.StringIO) -> None:
    mod = race.watch_module(_example("race_counter"))
    mod.main(200)
    first = len(race.reports())
    mod.main(200)
    assert len(race.reports()) == first


def _run_cli(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "goconc.cli", "race", str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize("script", ["race_counter.py", "race_interface.py", "race_config.py"])
def test_goconc_race_exits_66_with_a_report_on_a_racy_script(script: str) -> None:
    proc = _run_cli(script)
    assert proc.returncode == 66, proc.stderr
    assert "WARNING: DATA RACE" in proc.stderr
    assert "Found" in proc.stderr


@pytest.mark.parametrize(
    "script", ["race_counter_fixed.py", "race_interface_fixed.py", "race_config_fixed.py"]
)
def test_goconc_race_exits_0_on_the_fixed_script(script: str) -> None:
    proc = _run_cli(script)
    assert proc.returncode == 0, proc.stderr
    assert "DATA RACE" not in proc.stderr


def test_goconc_race_passes_the_scripts_exit_status(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text("import sys\nsys.exit(3)\n")
    proc = subprocess.run(
        [sys.executable, "-m", "goconc.cli", "race", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3


def test_goconc_race_environment_variable_turns_the_detector_on(tmp_path: Path) -> None:
    script = tmp_path / "env.py"
    script.write_text("import goconc\nfrom goconc import race\nprint(race.enabled())\n")
    env = dict(os.environ, GOCONC_RACE="1")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.stdout.strip() == "True", proc.stderr


# -- one pair of tests per happens-before edge ------------------------------------------
#
# Each scenario writes a shared location in one goroutine and reads it in
# another.  With the edge the write happens before the read: silent.  With the
# edge removed (the access moved to the other side of the synchronising
# operation, or the operation dropped) the accesses are concurrent: reported,
# however the run interleaves.


def _shared() -> race.SharedDict[str, int]:
    return race.Shared({"x": 0})


def _check(edge: bool) -> None:
    if edge:
        assert race.reports() == [], race.reports()[0].format()
    else:
        assert race.reports(), "the race was not reported"


EDGE = pytest.mark.parametrize("edge", [True, False], ids=["edge-silent", "no-edge-reported"])


@EDGE
def test_go_orders_the_creator_before_the_goroutine(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    if edge:
        s["x"] = 1
        g = go(lambda: s["x"])
    else:
        g = go(lambda: s["x"])
        s["x"] = 1
    _join(g)
    _check(edge)


@EDGE
def test_join_orders_the_goroutine_before_the_joiner(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    started = threading.Event()

    def body() -> None:
        started.set()
        s["x"] = 1

    g = go(body)
    if edge:
        g.join(timeout=WAIT)
        s["x"]
    else:
        started.wait(WAIT)
        s["x"]
        g.join(timeout=WAIT)
    _check(edge)


@EDGE
def test_task_goroutine_join(detector: io.StringIO, edge: bool) -> None:
    async def main() -> None:
        s = _shared()

        async def body() -> None:
            s["x"] = 1

        g = go(body)
        if not edge:
            await asyncio.sleep(0)
            s["x"]
        await g.ajoin(timeout=WAIT)
        s["x"]

    run_async(main())
    _check(edge)


@EDGE
def test_unbuffered_send_happens_before_the_receive(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ch: Chan[int] = Chan()

    def sender() -> None:
        if edge:
            s["x"] = 1
            ch.send(1, timeout=WAIT)
        else:
            ch.send(1, timeout=WAIT)
            s["x"] = 1

    def receiver() -> None:
        ch.recv(timeout=WAIT)
        s["x"]

    _join(go(sender), go(receiver))
    _check(edge)


@EDGE
def test_unbuffered_receive_happens_before_the_send_completes(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()
    ch: Chan[int] = Chan()

    def receiver() -> None:
        if edge:
            s["x"] = 1
            ch.recv(timeout=WAIT)
        else:
            ch.recv(timeout=WAIT)
            s["x"] = 1

    def sender() -> None:
        ch.send(1, timeout=WAIT)
        s["x"]

    _join(go(receiver), go(sender))
    _check(edge)


@EDGE
def test_buffered_send_happens_before_the_receive(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ch: Chan[int] = Chan(4)

    def sender() -> None:
        if edge:
            s["x"] = 1
            ch.send(1, timeout=WAIT)
        else:
            ch.send(1, timeout=WAIT)
            s["x"] = 1

    g = go(sender)
    ch.recv(timeout=WAIT)
    s["x"]
    _join(g)
    _check(edge)


@pytest.mark.parametrize("cap", [1, 3])
@EDGE
def test_kth_receive_happens_before_the_k_plus_cap_th_send_completes(
    detector: io.StringIO, edge: bool, cap: int
) -> None:
    # A channel of capacity C used as a semaphore: the (k+C)-th send waits for
    # the k-th receive.  With capacity C+1 that edge is gone.
    s = _shared()
    ch: Chan[int] = Chan(cap if edge else cap + 1)

    def receiver() -> None:
        s["x"]  # before its first receive
        ch.recv(timeout=WAIT)

    def sender() -> None:
        for i in range(cap + 1):
            ch.send(i, timeout=WAIT)  # the (cap+1)-th send waits for the first receive
        s["x"] = 1

    _join(go(receiver), go(sender))
    _check(edge)


@EDGE
def test_close_happens_before_a_receive_that_observes_it(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ch: Chan[int] = Chan()

    def closer() -> None:
        if edge:
            s["x"] = 1
            ch.close()
        else:
            ch.close()
            s["x"] = 1

    g = go(closer)
    assert ch.recv_ok(timeout=WAIT) == (None, False)
    s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_select_receive_is_a_receive(detector: io.StringIO, edge: bool) -> None:
    from goconc import select

    s = _shared()
    a: Chan[int] = Chan()
    b: Chan[int] = Chan()

    def sender() -> None:
        if edge:
            s["x"] = 1
            b.send(1, timeout=WAIT)
        else:
            b.send(1, timeout=WAIT)
            s["x"] = 1

    g = go(sender)
    assert select(a, b, timeout=WAIT).index == 1
    s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_mutex_unlock_happens_before_the_next_lock(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    mu = sync.Mutex()

    def body() -> None:
        for _ in range(20):
            if edge:
                with mu:
                    s["x"] = s["x"] + 1
            else:
                s["x"] = s["x"] + 1

    _join(go(body), go(body))
    _check(edge)


@EDGE
def test_rwmutex_unlock_happens_before_rlock(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    mu = sync.RWMutex()

    def writer() -> None:
        for _ in range(10):
            mu.lock()
            s["x"] = s["x"] + 1
            mu.unlock()

    def reader() -> None:
        for _ in range(10):
            if edge:
                mu.rlock()
                s["x"]
                mu.runlock()
            else:
                s["x"]

    _join(go(writer), go(reader), go(reader))
    _check(edge)


@EDGE
def test_waitgroup_done_happens_before_wait_returns(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    wg = sync.WaitGroup()
    wg.add(1)

    def body() -> None:
        if edge:
            s["x"] = 1
            wg.done()
        else:
            wg.done()
            s["x"] = 1

    g = go(body)
    wg.wait(timeout=WAIT)
    s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_once_function_happens_before_every_do_returns(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    once = sync.Once()

    def init() -> None:
        s["x"] = 1

    def user() -> None:
        if edge:
            once.do(init)
        s["x"]

    a = go(lambda: once.do(init))
    _join(a, go(user), go(user))
    _check(edge)


@EDGE
def test_atomic_store_happens_before_the_load_that_sees_it(
    detector: io.StringIO, edge: bool
) -> None:
    s = _shared()
    flag = atomic.Bool()
    plain = threading.Event()  # unknown to the detector: no edge

    def writer() -> None:
        s["x"] = 1
        if edge:
            flag.store(True)
        else:
            plain.set()

    g = go(writer)
    if edge:
        while not flag.load():
            plain.wait(0.001)
    else:
        plain.wait(WAIT)
    s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_cond_signal_with_its_mutex_orders_the_waiter(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    mu = sync.Mutex()
    cond = sync.Cond(mu)
    ready = [False]

    def signaller() -> None:
        with mu:
            s["x"] = 1
            ready[0] = True
            cond.signal()
        if not edge:
            s["x"] = 2

    g = go(signaller)
    with mu:
        while not ready[0]:
            cond.wait(timeout=WAIT)
        s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_semaphore_release_happens_before_acquire(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    sem = sync.Semaphore(1)
    sem.acquire(1, timeout=WAIT)

    def body() -> None:
        if edge:
            s["x"] = 1
            sem.release(1)
        else:
            sem.release(1)
            s["x"] = 1

    g = go(body)
    sem.acquire(1, timeout=WAIT)
    s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_context_cancel_happens_before_done_is_observed(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ctx, cancel = context.with_cancel(context.background())

    def body() -> None:
        if edge:
            s["x"] = 1
            cancel()
        else:
            cancel()
            s["x"] = 1

    g = go(body)
    ctx.done.recv_ok(timeout=WAIT)
    s["x"]
    _join(g)
    _check(edge)


@EDGE
def test_errgroup_wait_orders_every_function(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    started = threading.Event()

    def body() -> None:
        started.set()
        s["x"] = 1

    g = errgroup.Group()
    g.go(body)
    if not edge:
        started.wait(WAIT)
        s["x"]
    g.wait(timeout=WAIT)
    s["x"]
    _check(edge)


@EDGE
def test_tasks_on_one_loop_are_separate_goroutines(detector: io.StringIO, edge: bool) -> None:
    async def main() -> None:
        s = _shared()
        ch: Chan[int] = Chan()

        async def writer() -> None:
            if edge:
                s["x"] = 1
                await ch.asend(1)
            else:
                await ch.asend(1)
                s["x"] = 1

        async def reader() -> None:
            await ch.arecv()
            await asyncio.sleep(0)
            s["x"]

        await asyncio.gather(go(writer).ajoin(), go(reader).ajoin())

    run_async(main())
    _check(edge)


@EDGE
def test_thread_to_task_hand_off(detector: io.StringIO, edge: bool) -> None:
    s = _shared()
    ch: Chan[int] = Chan()

    def thread_side() -> None:
        if edge:
            s["x"] = 1
            ch.send(1, timeout=WAIT)
        else:
            ch.send(1, timeout=WAIT)
            s["x"] = 1

    async def task_side() -> None:
        await ch.arecv(timeout=WAIT)
        s["x"]

    t = go(thread_side)
    run_async(task_side())
    _join(t)
    _check(edge)


# -- watching ----------------------------------------------------------------------------


class _Point:
    def __init__(self) -> None:
        self.x = 0
        self.y = 0


def test_watch_reports_attribute_races_and_keeps_the_object_working(
    detector: io.StringIO,
) -> None:
    p = race.watch(_Point())
    assert isinstance(p, _Point)

    def writer() -> None:
        p.x = 5

    _join(go(writer), go(lambda: p.x))
    assert race.reports()
    assert "_Point.x" in race.reports()[0].location
    assert p.x == 5


def test_watch_is_a_no_op_while_the_detector_is_off() -> None:
    p = _Point()
    assert race.watch(p) is p
    assert type(p) is _Point


def test_watch_rejects_builtins_with_a_pointer_to_shared(detector: io.StringIO) -> None:
    with pytest.raises(TypeError, match=r"race\.Shared"):
        race.watch({"a": 1})


def test_concurrent_reads_are_not_a_race_but_a_later_unordered_write_is(
    detector: io.StringIO,
) -> None:
    s = _shared()
    readers = [go(lambda: s["x"]) for _ in range(3)]
    _join(*readers)
    assert race.reports() == []
    # The readers are joined: a write now is ordered after all of them.
    s["x"] = 1
    assert race.reports() == []
    readers = [go(lambda: s["x"]) for _ in range(3)]
    started = threading.Event()

    def writer() -> None:
        started.set()
        s["x"] = 2

    w = go(writer)
    _join(*readers, w)
    assert race.reports(), "a write concurrent with promoted reads must be reported"


def test_shared_list_indices_and_length_are_locations(detector: io.StringIO) -> None:
    lst = race.Shared([0, 0])
    assert isinstance(lst, race.SharedList)
    _join(go(lambda: lst.__setitem__(0, 1)), go(lambda: lst.__setitem__(1, 1)))
    assert race.reports() == []  # different indices do not conflict
    _join(go(lambda: lst.append(1)), go(lambda: len(lst)))
    assert race.reports()
    assert list(lst) == [1, 1, 1]


def test_shared_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="dict or a list"):
        race.Shared((1, 2))  # type: ignore[call-overload]


def test_watch_module_instruments_mutable_globals_only(detector: io.StringIO) -> None:
    mod = race.watch_module(_example("race_counter"))
    mod.main(5)
    locations = {r.location for r in race.reports()}
    assert locations and all(loc.startswith("counter") for loc in locations)


def test_detector_off_costs_one_flag_and_records_nothing() -> None:
    race.reset()
    s = _shared()
    _join(go(lambda: s.__setitem__("x", 1)), go(lambda: s["x"]))
    assert race.reports() == []


def test_summary_counts_races(detector: io.StringIO) -> None:
    assert race.summary() == ""
    s = _shared()
    _join(go(lambda: s.__setitem__("x", 1)), go(lambda: s.__setitem__("x", 2)))
    assert race.summary() == "Found 1 data race(s)"


_Hook = Callable[[], None]


# -- the pytest option --------------------------------------------------------------------

pytest_plugins = ["pytester"]

_RACY_TEST = """
from goconc import go, race, sync

def test_racy():
    s = race.Shared({"x": 0})
    gs = [go(lambda: s.__setitem__("x", s["x"] + 1)) for _ in range(2)]
    for g in gs:
        g.join(timeout=10)

def test_clean():
    s = race.Shared({"x": 0})
    mu = sync.Mutex()
    def inc():
        with mu:
            s["x"] = s["x"] + 1
    gs = [go(inc) for _ in range(2)]
    for g in gs:
        g.join(timeout=10)
"""


def test_pytest_option_fails_a_test_that_produced_a_race_report(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_races=_RACY_TEST)
    result = pytester.runpytest_subprocess("--goconc-race", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_racy*", "*WARNING: DATA RACE*"])


def test_without_the_option_racy_tests_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_races=_RACY_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
