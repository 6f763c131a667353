"""Reading a goroutine's current stack, and what it is blocked on.

A thread goroutine's stack comes from ``sys._current_frames()``; a task
goroutine's from its coroutine's await chain (``cr_await`` links, which
``Task.get_stack()`` does not follow: it returns only the outermost frame of a
suspended task).

A goroutine is *blocked* when the innermost goconc frame of its stack is the
waiter's ``park``/``apark``; the ``op`` local of that frame says what it waits
for (its ``reason``, e.g. ``"chan receive"``), as Go's dump shows
``[chan receive]``.  Reading another thread's frame locals is a snapshot taken
without stopping that thread, so the answer is a hint that may be stale by the
time it is read, exactly as in Go's dump.

Free-threaded builds.  There, reading the frames of a thread that is running
can crash the interpreter (python/cpython#118680), so the runtime reads a
thread goroutine's frames only while it is parked (see ``goconc._park``) and a
task goroutine's on the thread running its loop, and keeps what it read as
:class:`FrozenFrame` records, never the live frames.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Collection, Iterable
from types import CodeType, FrameType
from typing import Any, Protocol, cast

from . import _park

__all__ = [
    "FrameLike",
    "FrozenFrame",
    "blocked_reason",
    "coro_frames",
    "format_frames",
    "go_frames",
    "thread_frames",
]

_PARK_CODES = frozenset({_park.park.__code__, _park.apark.__code__})


class FrameLike(Protocol):
    """What a snapshot reads of a frame: a live frame, or a :class:`FrozenFrame`."""

    @property
    def f_code(self) -> CodeType: ...

    @property
    def f_globals(self) -> dict[str, Any]: ...

    @property
    def f_lineno(self) -> int | None: ...


class FrozenFrame:
    """A frame's code, globals and current line, copied while the frame could not change."""

    __slots__ = ("f_code", "f_globals", "f_lineno")

    def __init__(self, frame: FrameType) -> None:
        self.f_code: CodeType = frame.f_code
        self.f_globals: dict[str, Any] = frame.f_globals
        self.f_lineno: int | None = frame.f_lineno


def thread_frames(frame: FrameType | None, stop: Collection[CodeType]) -> list[FrameType]:
    """Frames from ``frame`` outwards, stopping before one whose code is in ``stop``.

    Returned outermost first, as in a Python traceback.
    """
    out: list[FrameType] = []
    while frame is not None and frame.f_code not in stop:
        out.append(frame)
        frame = frame.f_back
    out.reverse()
    return out


def coro_frames(coro: Any) -> list[FrameType]:
    """The frames of a (suspended) coroutine and of everything it awaits, outermost first."""
    out: list[FrameType] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            frame = getattr(coro, "gi_frame", None)
        if frame is None:
            break
        out.append(frame)
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
    return out


def _is_goconc(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and (name == "goconc" or name.startswith("goconc."))


def blocked_reason(frames: list[FrameType]) -> str | None:
    """What the stack waits on if its innermost goconc frame is a park, else None."""
    for frame in reversed(frames):
        if not _is_goconc(frame):
            continue
        if frame.f_code not in _PARK_CODES:
            return None
        try:
            op = frame.f_locals.get("op")
        except Exception:  # the frame is being torn down
            return None
        reason = getattr(op, "reason", None)
        return reason if isinstance(reason, str) and reason else "blocked"
    return None


def go_frames(frames: Iterable[FrameLike]) -> list[tuple[str, str, int]]:
    """(function, file, line) for each frame, innermost first, for a Go-style dump."""
    out = [(f.f_code.co_qualname, f.f_code.co_filename, f.f_lineno or 0) for f in frames]
    out.reverse()
    return out


def format_frames(frames: Iterable[FrameLike]) -> list[str]:
    """The frames as ``traceback`` formats them, outermost first."""
    # (traceback reads only f_code and f_globals of a frame: a FrozenFrame does.)
    pairs = cast("Iterable[tuple[FrameType, int]]", ((f, f.f_lineno or 0) for f in frames))
    return traceback.StackSummary.extract(pairs).format()


def current_frames() -> dict[int, FrameType]:
    """The innermost frame of every thread (a snapshot)."""
    return sys._current_frames()
