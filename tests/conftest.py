"""Shared test helpers: every blocking call in a test is bounded in time."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# The default bound for one blocking call in a test.  Generous, so that a
# loaded CI machine does not fail a correct test, and finite, so that a broken
# primitive fails instead of hanging the run.
WAIT = 10.0


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run ``coro`` on a fresh event loop, failing if it takes over ``timeout``."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


@pytest.fixture
def wait() -> float:
    return WAIT


# Every test of this suite fails if it leaves goconc goroutines running
# (goconc.testing.plugin; opt out with @pytest.mark.goconc_leaks(enabled=False)).
goconc_leaks = True


@pytest.fixture
def detector() -> Iterator[io.StringIO]:
    """The race detector on for one test, its reports printed into the returned buffer."""
    from goconc import race

    out = io.StringIO()
    race.enable(summary_at_exit=False)
    race.reset()
    race.set_output(out)
    try:
        yield out
    finally:
        race.disable()
        race.reset()
        race.set_output(None)
