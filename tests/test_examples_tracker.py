"""The lessons' two tracker designs: a goroutine per event loses events, one worker does not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.goconc_leaks

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_goroutine_per_event_loses_events_at_a_shutdown_deadline() -> None:
    out = load("tracker_waitgroup").main(n_events=100, sink_delay=0.005, shutdown_timeout=0.05)
    assert out["accepted"] == 100
    assert out["lost"] > 0 and out["delivered"] + out["lost"] == 100
    assert out["goroutines"] > 10  # one per event still waiting for the backend


def test_goroutine_per_event_delivers_everything_when_the_deadline_is_generous() -> None:
    out = load("tracker_waitgroup").main(n_events=30, sink_delay=0.001, shutdown_timeout=30)
    assert (out["delivered"], out["lost"]) == (30, 0)


def test_one_worker_drains_and_dead_letters_instead_of_losing(tmp_path: Path) -> None:
    out = load("tracker_worker").main(
        n_events=100, sink_delay=0.002, shutdown_timeout=0.05, directory=str(tmp_path)
    )
    lesson, tracker = out["lesson"], out["tracker"]
    assert lesson["delivered"] == lesson["accepted"] == 100 and lesson["err"] is None
    assert lesson["goroutines"] == 1
    assert tracker["accepted"] == 100 and tracker["lost"] == 0
    assert tracker["dead_lettered"] > 0  # the deadline was too short on purpose
    assert tracker["delivered"] + tracker["dead_lettered"] == 100
    got = sorted(e["event"] for e in tracker["received"] + tracker["dead_letters"])
    assert got == list(range(100))  # every event is in exactly one place
