"""The leak checker: the pytest plugin (through pytester) and the functions behind it."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import WAIT, run_async
from goconc import Chan, runtime
from goconc.testing import (
    Ignore,
    IgnoreSpec,
    LeakError,
    averify_none,
    check_leaks,
    find_leaks,
    format_leaks,
    live_ids,
    no_leaks,
    verify_none,
)

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

HEADER = f"""\
import sys
sys.path.insert(0, {str(EXAMPLES)!r})
import pytest
from goconc.testing import Ignore

def parked(name):
    # Wait (bounded) until the goroutine called name is parked, so that the
    # check sees it blocked however late its thread or task got to run.
    import time
    from goconc import runtime
    deadline = time.monotonic() + 10
    while not any(g.name == name and g.state == "blocked" for g in runtime.goroutines()):
        assert time.monotonic() < deadline, name + " never parked"
        time.sleep(0.005)
"""


def run(pytester: pytest.Pytester, src: str, *args: str) -> pytest.RunResult:
    """Run ``src`` as a test module in a fresh interpreter (leaks die with it)."""
    pytester.makepyfile(test_it=HEADER + textwrap.dedent(src))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "goconc_leaks_grace=0.3", *args, timeout=120
    )


# -- the plugin, on the lessons' examples --------------------------------------------------------

EXAMPLE_TESTS = """
from leak_channel import squares_fixed, squares_leaky
from search_timeout import SearchCanceled, process_fixed, process_leaky

# The leaky tests wait until their goroutine is parked for good, so a short grace does;
# the fixed ones get a long one, which their goroutines end well within.
pytestmark = pytest.mark.goconc_leaks(grace=0.2)

def test_forgotten_sender():
    with pytest.raises(SearchCanceled):
        process_leaky("golang", timeout=0.01, search_delay=0.25)
    parked("search sender")

@pytest.mark.goconc_leaks(grace=10)
def test_sender_with_a_buffer_of_one():
    with pytest.raises(SearchCanceled):
        process_fixed("golang", timeout=0.01, search_delay=0.25)

def test_never_closed_channel():
    assert squares_leaky([1, 2, 3]) == [1, 4, 9]
    parked("square worker")

@pytest.mark.goconc_leaks(grace=10)
def test_closed_channel():
    assert squares_fixed([1, 2, 3]) == [1, 4, 9]
"""


def test_plugin_fails_the_leaking_examples_and_passes_the_fixed_ones(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, EXAMPLE_TESTS, "-rf")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_it.py::test_forgotten_sender*",
            "FAILED test_it.py::test_never_closed_channel*",
            "*goroutine * 'search sender' [[]blocked: chan send[]] (thread)*",
            "*created at *search_timeout.py:* in _process*",
            "*goroutine * 'square worker' [[]blocked: chan receive[]] (thread)*",
            "*created at *leak_channel.py:* in _squares*",
            "*in _square_worker*",
        ]
    )
    assert "test_sender_with_a_buffer_of_one FAILED" not in result.stdout.str()


# -- how it is switched on ------------------------------------------------------------------------

LEAKY_TEST = """
from leak_channel import leak

def test_leaks():
    leak()
"""


def test_plugin_is_off_by_default(pytester: pytest.Pytester) -> None:
    run(pytester, LEAKY_TEST).assert_outcomes(passed=1)


def test_option_switches_the_check_on_for_every_test(pytester: pytest.Pytester) -> None:
    result = run(pytester, LEAKY_TEST, "--goconc-leaks")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the test left goroutines running*", "*'receiver'*"])


def test_ini_setting_switches_the_check_on_and_a_conftest_can_opt_out(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\ngoconc_leaks = true\ngoconc_leaks_grace = 0.2\n")
    sub = pytester.mkpydir("opted_out")
    (sub / "conftest.py").write_text("goconc_leaks = False\n")
    (sub / "test_sub.py").write_text(HEADER + textwrap.dedent(LEAKY_TEST))
    result = run(pytester, LEAKY_TEST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_it.py::test_leaks*"])


def test_conftest_switch_applies_to_its_directory_and_the_closest_one_wins(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("goconc_leaks = True\n")
    sub = pytester.mkpydir("relaxed")
    (sub / "conftest.py").write_text("goconc_leaks = False\n")
    (sub / "test_sub.py").write_text(HEADER + textwrap.dedent(LEAKY_TEST))
    result = run(pytester, LEAKY_TEST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_it.py::test_leaks*"])


OPTIONS_TESTS = """
import time
from goconc import Chan, runtime
from leak_channel import leak

@pytest.mark.goconc_leaks(enabled=False)
def test_opted_out():
    leak()

@pytest.mark.goconc_leaks(ignore=[Ignore(name="receiver")])
def test_ignored_by_name():
    leak()

@pytest.mark.goconc_leaks(ignore=[Ignore(function="_receive_one")])
def test_ignored_by_function():
    leak()
    parked("receiver")

@pytest.mark.goconc_leaks(ignore=[Ignore(created_at="leak_channel.py")])
def test_ignored_by_creation_site():
    leak()

@pytest.fixture
def server():
    stop = Chan()
    g = runtime.go_named("fixture server", stop.recv_ok)
    yield
    stop.close()
    g.join(timeout=10)

def test_goroutines_of_fixtures_are_not_counted(server):
    pass

@pytest.fixture
def stopped_at_teardown():
    chans = []
    yield chans
    for ch in chans:
        ch.close()

def test_goroutines_a_fixture_stops_at_teardown_are_not_leaks(stopped_at_teardown):
    ch = Chan()
    stopped_at_teardown.append(ch)
    runtime.go_named("keep-alive", ch.recv_ok)

@pytest.mark.goconc_leaks(grace=10)
def test_a_goroutine_ending_within_the_grace_period_passes():
    runtime.go(time.sleep, 0.2)

def test_a_failing_test_reports_its_own_failure():
    leak()
    assert 1 == 2, "the real failure"

@pytest.mark.goconc_leaks(1)
def test_bad_marker():
    pass
"""


def test_marker_options_fixtures_grace_and_failures(pytester: pytest.Pytester) -> None:
    result = run(pytester, OPTIONS_TESTS, "--goconc-leaks", "-rf")
    result.assert_outcomes(passed=7, failed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_it.py::test_a_failing_test_reports_its_own_failure*",
            "FAILED test_it.py::test_bad_marker*",
            "*takes only enabled=, ignore= and grace=*",
        ]
    )
    assert "fixture server" not in out and "keep-alive" not in out
    assert "the real failure" in out
    failure = out.split("test_a_failing_test_reports_its_own_failure")[1]
    assert "left goroutines running" not in failure.split("test_bad_marker")[0]


def test_async_tests_and_task_goroutines_are_checked(pytester: pytest.Pytester) -> None:
    src = """
    import asyncio
    from goconc import Chan, runtime

    async def forever(ch):
        await ch.arecv()

    @pytest.mark.goconc_leaks(grace=0.2)
    def test_task_leak():
        runtime.go(forever, Chan())   # a task on the runtime loop, never ends
        parked("forever")

    @pytest.mark.goconc_leaks(grace=0.2)
    def test_task_finishes():
        async def main():
            ch = Chan(1)
            g = runtime.go(forever, ch)
            await ch.asend(1)
            await g.ajoin(timeout=5)
        asyncio.run(main())
    """
    result = run(pytester, src)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*'forever' [[]blocked: chan receive[]] (task)*"])


# -- the functions behind the plugin ---------------------------------------------------------------


@pytest.fixture
def blocked() -> Iterator[runtime.Goroutine[tuple[int | None, bool]]]:
    """A goroutine blocked on a channel, released (and joined) after the test."""
    ch: Chan[int] = Chan()
    g = runtime.go_named("parked worker", ch.recv_ok)
    wait_parked(g)
    yield g
    ch.close()
    g.join(timeout=WAIT)


Blocked = runtime.Goroutine[tuple[int | None, bool]]


def wait_parked(g: Blocked) -> None:
    """Wait (bounded) until ``g`` is parked on its channel, so its stack shows ``recv_ok``."""
    deadline = time.monotonic() + WAIT
    while not any(i.id == g.id and i.state == "blocked" for i in runtime.goroutines()):
        assert time.monotonic() < deadline, f"{g!r} never parked"
        time.sleep(0.005)


def only(g: Blocked) -> Callable[[runtime.GoroutineInfo], bool]:
    """Ignore every goroutine but ``g`` (others' leftovers may start or end meanwhile)."""
    return lambda info: info.id != g.id


def foreign(info: runtime.GoroutineInfo) -> bool:
    """A goroutine not started by this module (a leftover of another test's code)."""
    return __file__ not in info.created_at


def test_verify_none_reports_name_creation_site_and_stack(blocked: Blocked) -> None:
    with pytest.raises(LeakError) as info:
        verify_none([only(blocked)], grace=0.05)
    text = str(info.value)
    assert "found 1 leaked goroutine:" in text
    assert f"goroutine {blocked.id} 'parked worker' [blocked: chan receive] (thread)" in text
    assert "created at " in text and "test_testing_plugin.py" in text
    assert "recv_ok" in text
    assert [g.id for g in info.value.leaks] == [blocked.id]
    assert isinstance(info.value, AssertionError)


def test_ignore_by_id_name_function_creation_site_and_predicate(blocked: Blocked) -> None:
    def found(spec: IgnoreSpec) -> bool:
        return blocked.id in {g.id for g in find_leaks([spec])}

    for spec in (
        blocked.id,
        Ignore(name="parked"),
        Ignore(function="recv_ok"),
        Ignore(created_at="test_testing_plugin.py"),
        Ignore(name="parked", created_at="test_testing_plugin"),
        lambda g: g.kind == "thread",
    ):
        assert not found(spec), spec
    for spec in (Ignore(), Ignore(name="other"), Ignore(name="parked", function="nothing")):
        assert found(spec), spec
    with pytest.raises(TypeError):
        find_leaks(["parked"])  # type: ignore[list-item]


def test_no_leaks_ignores_goroutines_already_running(blocked: Blocked) -> None:
    with no_leaks([foreign], grace=WAIT):
        g = runtime.go(lambda: None)
    assert g.done()
    assert blocked.id in live_ids()


def test_no_leaks_fails_a_block_that_leaks() -> None:
    ch: Chan[int] = Chan()
    try:
        with pytest.raises(LeakError, match="leaky"), check_leaks([foreign], grace=0.05):
            runtime.go_named("leaky", ch.recv_ok)
    finally:
        ch.close()
    verify_none([foreign], grace=WAIT)


def test_no_leaks_does_not_check_a_block_that_raised() -> None:
    ch: Chan[int] = Chan()
    try:
        with pytest.raises(KeyError), no_leaks(grace=0.05):
            runtime.go_named("leaky", ch.recv_ok)
            raise KeyError("the block's own failure wins")
    finally:
        ch.close()


def test_no_leaks_as_a_decorator() -> None:
    @no_leaks([foreign], grace=WAIT)
    def tidy() -> int:
        return runtime.go(lambda: 7).join(timeout=WAIT)

    assert tidy() == 7


def test_the_grace_period_waits_for_finishing_goroutines() -> None:
    with no_leaks([foreign], grace=WAIT):
        runtime.go(time.sleep, 0.05)


def test_averify_none_lets_tasks_of_the_running_loop_finish() -> None:
    async def main() -> None:
        async def short() -> None:
            await asyncio.sleep(0.02)

        async with no_leaks([foreign], grace=WAIT):
            runtime.go(short)  # a task on this loop: a blocking sleep would starve it
        runtime.go(short)
        await averify_none([foreign], grace=WAIT)

    run_async(main())


def test_format_leaks_of_nothing_and_bad_grace() -> None:
    assert format_leaks([]) == "found 0 leaked goroutines:"
    with pytest.raises(ValueError):
        no_leaks(grace=-1)
