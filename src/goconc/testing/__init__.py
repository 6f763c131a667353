"""Goroutine leak checking, in the spirit of uber-go/goleak.

A goroutine that outlives the code that started it is a leak: a sender
blocked on a channel nobody reads any more, a receiver ranging over a channel
nobody closes, a worker whose context is never cancelled.  This module finds
the goconc goroutines (threads and tasks) still running and reports each one
with its name, its state, where it was created and its current stack.

Goroutines that are finishing need a moment to leave the registry, so a check
retries with exponential backoff for a short grace period before it reports
(by default 1.5 s in all, sleeping 100 µs doubling up to 100 ms).

Use it in tests (see :mod:`goconc.testing.plugin` for pytest) or anywhere::

    from goconc.testing import no_leaks, verify_none, Ignore

    with no_leaks():                     # goroutines already running are not counted
        run_the_pipeline()

    verify_none(ignore=[Ignore(name="metrics-flusher")])

    async with no_leaks(grace=3.0):      # retries with asyncio.sleep
        await serve_once()

A leak raises :class:`LeakError` (an ``AssertionError``) whose message lists
every leaked goroutine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ContextDecorator
from dataclasses import dataclass
from types import TracebackType
from typing import TypeAlias

from .. import runtime as _runtime

__all__ = [
    "Ignore",
    "IgnoreSpec",
    "LeakError",
    "averify_none",
    "check_leaks",
    "find_leaks",
    "format_leaks",
    "live_ids",
    "no_leaks",
    "verify_none",
]

#: The default grace period, in seconds, before a running goroutine counts as leaked.
DEFAULT_GRACE = 1.5

_FIRST_SLEEP = 1e-4
_MAX_SLEEP = 0.1


@dataclass(frozen=True)
class Ignore:
    """Which goroutines a check ignores: every given field must match.

    Each field is a substring: ``name`` of the goroutine's name,
    ``created_at`` of where it was created (``"file:line in function"``),
    ``function`` of any frame of its current stack as ``traceback`` formats
    it (``File "...", line N, in function`` and the source line), so a
    function's name matches wherever that function is on the stack.
    ``Ignore()`` with no field set matches nothing.
    """

    name: str | None = None
    function: str | None = None
    created_at: str | None = None

    def __call__(self, g: _runtime.GoroutineInfo) -> bool:
        if self.name is None and self.function is None and self.created_at is None:
            return False
        if self.name is not None and self.name not in g.name:
            return False
        if self.created_at is not None and self.created_at not in g.created_at:
            return False
        return self.function is None or any(self.function in frame for frame in g.stack)


#: An ignore entry: an :class:`Ignore`, a predicate, or a goroutine id.
IgnoreSpec: TypeAlias = Ignore | Callable[[_runtime.GoroutineInfo], bool] | int


class LeakError(AssertionError):
    """Goroutines were still running at the end of a check.

    ``leaks`` holds their :class:`goconc.runtime.GoroutineInfo` records.
    """

    def __init__(self, leaks: list[_runtime.GoroutineInfo]) -> None:
        super().__init__(format_leaks(leaks))
        self.leaks = leaks


def live_ids() -> frozenset[int]:
    """The ids of the goroutines running now (to ignore them in a later check)."""
    if _runtime.num_goroutine() == 0:
        return frozenset()  # the common case, without taking every stack
    return frozenset(g.id for g in _runtime.goroutines() if g.state != "done")


def find_leaks(ignore: Iterable[IgnoreSpec] = ()) -> list[_runtime.GoroutineInfo]:
    """The goroutines running now, except the caller and those ``ignore`` matches.

    A single look, without a grace period: see :func:`verify_none`.
    """
    ids, preds = _split(ignore)
    if _runtime.num_goroutine() == 0:
        return []
    me = _current_id()
    return [
        g
        for g in _runtime.goroutines()
        if g.state != "done" and g.id != me and g.id not in ids and not any(p(g) for p in preds)
    ]


def verify_none(ignore: Iterable[IgnoreSpec] = (), *, grace: float = DEFAULT_GRACE) -> None:
    """Raise :class:`LeakError` if goroutines are still running after ``grace`` seconds.

    Looks at once, then again with exponential backoff until none is left or
    ``grace`` seconds have passed.  The calling goroutine and the goroutines
    ``ignore`` matches (:class:`Ignore` entries, predicates over
    ``GoroutineInfo``, goroutine ids) are not counted.
    """
    ignore = list(ignore)
    for delay in _delays(grace):
        leaks = find_leaks(ignore)
        if not leaks:
            return
        if delay is None:
            raise LeakError(leaks)
        time.sleep(delay)


async def averify_none(ignore: Iterable[IgnoreSpec] = (), *, grace: float = DEFAULT_GRACE) -> None:
    """The asyncio form of :func:`verify_none`: sleeps with ``asyncio.sleep``.

    Tasks of the running loop thus get to finish while the check waits.
    """
    ignore = list(ignore)
    for delay in _delays(grace):
        leaks = find_leaks(ignore)
        if not leaks:
            return
        if delay is None:
            raise LeakError(leaks)
        await asyncio.sleep(delay)


class no_leaks(ContextDecorator):
    """A block (or a decorated function) that must not leave goroutines running.

    Goroutines running when the block starts are not counted (goleak's
    ``IgnoreCurrent``) unless ``ignore_current=False``.  On a normal exit,
    :func:`verify_none` (``async with``: :func:`averify_none`) runs with
    ``ignore`` and ``grace``; if the block raised, its exception propagates
    and no check is made.

    ::

        with no_leaks(ignore=[Ignore(function="serve_forever")]):
            ...
    """

    def __init__(
        self,
        ignore: Iterable[IgnoreSpec] = (),
        *,
        grace: float = DEFAULT_GRACE,
        ignore_current: bool = True,
    ) -> None:
        if not grace >= 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
        self._ignore = list(ignore)
        self._grace = grace
        self._ignore_current = ignore_current
        self._baseline: frozenset[int] = frozenset()

    def _start(self) -> None:
        self._baseline = live_ids() if self._ignore_current else frozenset()

    def _specs(self) -> list[IgnoreSpec]:
        return [*self._ignore, *self._baseline]

    def __enter__(self) -> no_leaks:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            verify_none(self._specs(), grace=self._grace)

    async def __aenter__(self) -> no_leaks:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await averify_none(self._specs(), grace=self._grace)


#: Another name for :class:`no_leaks`.
check_leaks = no_leaks


def format_leaks(leaks: list[_runtime.GoroutineInfo]) -> str:
    """A report of leaked goroutines: name, state, where created, current stack."""
    n = len(leaks)
    lines = [f"found {n} leaked goroutine{'s' if n != 1 else ''}:"]
    for g in leaks:
        lines.append("")
        state = g.state if g.waiting_on is None else f"{g.state}: {g.waiting_on}"
        lines.append(f"goroutine {g.id} {g.name!r} [{state}] ({g.kind})")
        lines.append(f"  created at {g.created_at}")
        if g.stack:
            lines.append("  current stack (most recent call last):")
            lines.extend("    " + line for frame in g.stack for line in frame.rstrip().splitlines())
    return "\n".join(lines)


def _split(ignore: Iterable[IgnoreSpec]) -> tuple[set[int], list[Callable[..., bool]]]:
    ids: set[int] = set()
    preds: list[Callable[..., bool]] = []
    for spec in ignore:
        if isinstance(spec, bool):
            raise TypeError("ignore: expected an Ignore, a predicate or a goroutine id, got bool")
        if isinstance(spec, int):
            ids.add(spec)
        elif callable(spec):
            preds.append(spec)
        else:
            raise TypeError(
                "ignore: expected an Ignore, a predicate or a goroutine id, "
                f"got {type(spec).__name__}"
            )
    return ids, preds


def _current_id() -> int | None:
    g = _runtime.current()
    return None if g is None else g.id


def _delays(grace: float) -> Iterator[float | None]:
    """Sleeps between looks, exponential, within ``grace`` seconds; None: the last look."""
    deadline = time.monotonic() + grace
    delay = _FIRST_SLEEP
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            yield None
            return
        yield min(delay, left)
        delay = min(delay * 2, _MAX_SLEEP)
