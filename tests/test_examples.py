"""The lessons' examples run, and show what they claim (with short durations)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import WAIT

pytestmark = pytest.mark.goconc_leaks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_script(name: str) -> str:
    """Run ``python examples/<name>.py`` in its own interpreter; return its output."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_listed_in_the_readme() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for script in EXAMPLES.glob("*.py"):
        assert f"({script.name})" in readme, script.name


def test_list_directory_channel_leaks_when_not_drained_callback_does_not() -> None:
    r = load("list_directory").main(n_files=20)
    assert (r["everything"], r["streamed"]) == (20, 20)
    assert r["left_behind"] == 1
    assert r["callback_seen"] == 5 and r["walk_error"]


def test_leak_channel_script_shows_both_leaks_and_both_fixes() -> None:
    out = run_script("leak_channel")
    assert "leaky versions left 2 goroutines behind" in out
    assert "'receiver' [blocked: chan receive]" in out
    assert "'square worker' [blocked: chan receive]" in out
    assert "fixed versions left no goroutine behind" in out


def test_search_timeout_script_shows_the_blocked_sender() -> None:
    out = run_script("search_timeout")
    assert "goroutines left behind: 1" in out
    assert "'search sender' [blocked: chan send]" in out


def test_search_timeout_fixed_version_leaves_nothing() -> None:
    m = load("search_timeout")
    with pytest.raises(m.SearchCanceled):  # the search takes 25 times the timeout
        m.process_fixed("golang", timeout=0.01, search_delay=0.25)
    assert m.process_fixed("go", timeout=WAIT, search_delay=0) == "record for 'go'"


def test_serve_app_debug_one_failing_server_stops_the_other() -> None:
    r = load("serve_app_debug").main(run_for=0.2)
    assert sorted(r["clean"]) == [("app", True), ("debug", True)]
    assert sorted(r["failed"]) == [("app", False), ("debug", True)]
    assert r["replies"][0] == "Hello, QCon!"
    assert r["replies"][1].startswith("goroutine ")
    assert r["app_clean"] is None
    assert isinstance(r["app_failed"], OSError)


def test_errgroup_rpcs_first_error_wins_and_the_limit_holds() -> None:
    r = load("errgroup_rpcs").main(scale=0.5)
    for form in ("threads", "asyncio"):
        assert r[form]["error"] == "orders: backend unavailable"
        assert "orders: failed" in r[form]["log"]
    assert r["finished"] == 200 and 1 <= r["peak"] <= 8


def test_buffered_and_unbuffered_channels() -> None:
    r = load("buffered_unbuffered").main(receiver_delay=0.03)
    assert all(r["unbuffered_waited"])  # every rendezvous waited for the late receiver
    assert r["buffered_waited"][3]  # the 4th send found the buffer of 3 full
    assert r["after_close"] == [(0, True), (1, True), (2, True), (None, False)]


def test_mutex_starvation_experiment_runs_on_both_locks() -> None:
    results = load("mutex_starvation").main(rounds=5, max_seconds=0.3)
    assert set(results) == {"threading.Lock", "goconc.sync.Mutex"}
    for r in results.values():
        assert r.g2_acquisitions == 5 and r.g1_acquisitions >= 1


def test_pattern_timeout() -> None:
    r = load("pattern_timeout").main(unit=0.01)
    assert r["goroutine_timeout"] == "timed out"
    assert r["per_message"][-1] == "You're too slow."
    assert r["whole"][-1] == "You talk too much."
    assert r["recv_timeout"] == "TimeoutError"
    assert r["with_timeout"] == "context deadline exceeded"


def test_pattern_moving_on() -> None:
    r = load("pattern_moving_on").main(unit=0.01)
    assert r["query"].startswith("replica-")
    assert r["first"].startswith("fast:")
    assert r["slow_cancelled"]


def test_pattern_pipeline() -> None:
    r = load("pattern_pipeline").main(n=10)
    assert r["by_hand"] == [16, 81]
    assert r["total"] == sum(x * x for x in range(10))
    assert r["head"] == [1, 2, 3]
    assert r["tasks"] == [x * x for x in range(10)]


def test_pattern_fan_out_fan_in() -> None:
    r = load("pattern_fan_out_fan_in").main(n=20, workers=4)
    squares = [x * x for x in range(20)]
    assert r["by_hand"] == squares and r["merged"] == squares
    assert r["handled"] == 20 and r["error"] is None
    assert "cannot handle job 5" in r["failure"]


def test_pattern_cancel_by_close() -> None:
    r = load("pattern_cancel_by_close").main()
    assert r["first"] in (0, 1)
    assert r["blocked_before_close"] == 6


def test_pattern_context() -> None:
    r = load("pattern_context").main(unit=0.05)
    assert r["fast"] == "rows for request 1"
    assert r["slow"] == "request 2: context deadline exceeded"
    assert r["stopped"] == [
        "task worker stopped: Canceled('context canceled')",
        "thread worker stopped: Canceled('context canceled')",
    ]
    assert "stopped by the context" in r["bridged"]
