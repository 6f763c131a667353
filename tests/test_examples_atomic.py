"""The lessons' copy-on-write examples run briefly and show what they claim."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.goconc_leaks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_config_reload_readers_see_whole_configs_that_never_go_back() -> None:
    result = load("config_reload").main(duration=0.3, interval=0.02)
    # Every assertion about what readers saw ran inside the readers (join re-raises).
    assert result["reads"] > 0
    assert result["reloads"] >= 1
    assert result["final version loaded"] >= result["file versions written"] - 1


def test_cow_map_loses_updates_only_without_the_writers_lock() -> None:
    results = load("cow_map").main(duration=0.05, per_writer=100)
    bug = results["writers without the lock (the bug)"]
    assert bug["lost updates"] > 0
    for name in ("atomic.Value + writers' Mutex (Go)", "atomic.CopyOnWrite.update"):
        r = results[name]
        assert r["lost updates"] == 0, name
        assert r["inconsistent snapshots"] == 0, name
        assert r["keys in the map"] == r["keys inserted"], name
