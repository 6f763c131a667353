"""The free-threaded run really runs without the GIL.

CI runs the whole suite a second time on a free-threaded CPython (``python3.13t``, built by
``scripts/free-threaded-python.sh``) with ``GOCONC_EXPECT_FREE_THREADED=1``. These tests make
that run prove what it claims: the interpreter was built without the GIL, the GIL is off
while the tests run, and importing goconc and its dependencies does not turn it back on (an
extension module not marked safe for free threading would re-enable it). Elsewhere they are
skipped.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import sysconfig

import pytest

import goconc

pytestmark = pytest.mark.skipif(
    os.environ.get("GOCONC_EXPECT_FREE_THREADED") != "1",
    reason="set GOCONC_EXPECT_FREE_THREADED=1 to check a free-threaded interpreter",
)

# Third-party modules goconc's runtime dependencies bring (goconc.app, goconc.tracker).
_DEPENDENCIES = ("uvicorn", "prometheus_client", "redis")


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def test_the_interpreter_is_built_without_the_gil() -> None:
    assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1


def test_the_gil_is_off_during_the_run() -> None:
    assert _gil_enabled() is False


def test_importing_goconc_and_its_dependencies_keeps_the_gil_off() -> None:
    for name in _DEPENDENCIES:
        importlib.import_module(name)
    for module in pkgutil.walk_packages(goconc.__path__, prefix="goconc."):
        if module.name.endswith(".__main__"):
            continue  # importing it would run the command line
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as e:
            # An optional extra that is not installed here (e.g. the benchmarks' peers).
            if e.name is None or e.name.startswith("goconc"):
                raise
        assert _gil_enabled() is False, f"importing {module.name} turned the GIL on"
