"""The goconc pytest plugin: fail a test that leaves goroutines running.

Installed with goconc (the ``pytest11`` entry point ``goconc``); it does
nothing until it is switched on, in any of these ways:

* for one test or module: ``@pytest.mark.goconc_leaks`` (or
  ``pytestmark = pytest.mark.goconc_leaks``);
* for a directory tree: ``goconc_leaks = True`` in its ``conftest.py``;
* for the whole run: ``pytest --goconc-leaks``, or ``goconc_leaks = true`` in
  the pytest configuration.

The closest setting wins: a marker over a ``conftest.py``, a ``conftest.py``
over the run's (``goconc_leaks = False`` there opts a directory out).

When on, the goroutines the test function starts (and that are still running
when it returns successfully) are noted, and once the test's fixtures are torn
down, the check of :func:`goconc.testing.verify_none` runs on them: one that is
still running after the grace period is a leak, which fails the test, with
each goroutine's name, where it was created and its current stack.
Goroutines started by fixtures, or left by earlier tests, are not the test's;
a goroutine the test starts and a fixture stops is not a leak.

The marker takes options, and turns the check off where it is on elsewhere::

    @pytest.mark.goconc_leaks(ignore=[Ignore(name="poller")], grace=3.0)
    def test_poller_keeps_running(): ...

    @pytest.mark.goconc_leaks(enabled=False)
    def test_that_hands_a_goroutine_to_the_next_one(): ...

The grace period (seconds) may also be set with ``goconc_leaks_grace`` in the
pytest configuration.  goconc itself is imported only by tests that are checked.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from . import IgnoreSpec

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_call",
    "pytest_runtest_protocol",
]

_MARKER = "goconc_leaks"
_CONFTEST_SWITCH = "goconc_leaks"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("goconc", "goconc concurrency checks")
    group.addoption(
        "--goconc-leaks",
        action="store_true",
        default=False,
        help="fail every test that leaves goconc goroutines running",
    )
    group.addoption(
        "--goconc-race",
        action="store_true",
        default=False,
        help="run with the goconc data race detector on; fail every test during which it "
        "reports a race (as go test -race)",
    )
    parser.addini(
        "goconc_leaks",
        type="bool",
        default=False,
        help="check every test for leaked goconc goroutines",
    )
    parser.addini(
        "goconc_leaks_grace",
        default="1.5",
        help="seconds a goroutine may take to finish before it counts as leaked",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--goconc-race", default=False):
        from .. import race

        race.enable()
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(enabled=True, ignore=(), grace=None): fail the test if it leaves "
        "goconc goroutines running (ignore: goconc.testing.Ignore entries, predicates or ids)",
    )


@dataclass(frozen=True)
class _Settings:
    ignore: tuple[IgnoreSpec, ...]
    grace: float


_SUSPECTS = pytest.StashKey["tuple[_Settings, frozenset[int]]"]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    if item.config.getoption("--goconc-race", default=False):
        return (yield from _race_checked(item))
    return (yield from _leak_checked(item))


def _race_checked(item: pytest.Item) -> Generator[None, Any, Any]:
    """Fail the test if the race detector reported a race while it ran."""
    from .. import race

    before = len(race.reports())
    result = yield from _leak_checked(item)
    found = race.reports()[before:]
    if found:
        text = "\n\n".join(r.format() for r in found)
        raise AssertionError(f"goconc race detector: {len(found)} data race(s)\n{text}")
    return result


def _leak_checked(item: pytest.Item) -> Generator[None, Any, Any]:
    settings = _settings(item)
    if settings is None:
        return (yield)
    from . import live_ids

    before = live_ids()
    result = yield  # a failing test raises here: its failure is reported, not a leak
    started = live_ids() - before
    if started:
        item.stash[_SUSPECTS] = (settings, started)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """For a checked test: run it, then check for leaks before its reports are logged.

    The check runs after the teardown, so that goroutines the test's fixtures
    stop are not leaks; a leak turns the test's passed call report into a
    failure (the way pytest-rerunfailures rewrites reports).
    """
    try:
        if _settings(item) is None:
            return None  # pytest's own protocol
    except pytest.UsageError:
        return None  # reported as the test's failure by pytest_runtest_call
    from _pytest.runner import runtestprotocol

    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    suspects = item.stash.get(_SUSPECTS, None)
    if suspects is not None:
        del item.stash[_SUSPECTS]
        failure = _check(*suspects)
        if failure is not None:
            for report in reports:
                if report.when == "call" and report.passed:
                    report.outcome = "failed"
                    report.longrepr = failure
    for report in reports:
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _check(settings: _Settings, started: frozenset[int]) -> str | None:
    """A report if a goroutine the test function started is still running, else None."""
    from . import LeakError, verify_none

    def not_started_by_the_test(g: Any) -> bool:
        return g.id not in started

    try:
        verify_none([not_started_by_the_test, *settings.ignore], grace=settings.grace)
    except LeakError as e:
        return f"goconc: the test left goroutines running\n{e}"
    return None


def _settings(item: pytest.Item) -> _Settings | None:
    """How ``item`` is checked, or None if it is not."""
    marker = item.get_closest_marker(_MARKER)
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    unknown = set(kwargs) - {"enabled", "ignore", "grace"}
    if unknown or (marker is not None and marker.args):
        raise pytest.UsageError(
            f"@pytest.mark.{_MARKER} takes only enabled=, ignore= and grace=, "
            f"got {marker.args if marker else ()} {sorted(unknown)}"
        )
    # The closest setting wins: the marker, then a conftest.py, then the run's.
    switch = _conftest_switch(item)
    if marker is not None:
        enabled = bool(kwargs.get("enabled", True))
    elif switch is not None:
        enabled = switch
    else:
        enabled = bool(item.config.getoption("goconc_leaks")) or bool(
            item.config.getini("goconc_leaks")
        )
    if not enabled:
        return None
    grace = kwargs.get("grace")
    if grace is None:
        grace = float(item.config.getini("goconc_leaks_grace"))
    return _Settings(ignore=tuple(kwargs.get("ignore", ())), grace=float(grace))


def _conftest_switch(item: pytest.Item) -> bool | None:
    """``goconc_leaks`` of the closest ``conftest.py`` above the test that sets it, or None."""
    best: tuple[int, bool] | None = None
    here = Path(str(item.path)).resolve().parent
    for plugin in item.config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if not file or Path(file).name != "conftest.py" or not hasattr(plugin, _CONFTEST_SWITCH):
            continue
        folder = Path(file).resolve().parent
        if folder == here or folder in here.parents:
            depth = len(folder.parts)
            if best is None or depth > best[0]:
                best = (depth, bool(getattr(plugin, _CONFTEST_SWITCH)))
    return None if best is None else best[1]
