"""Race reports in the shape of Go's race detector output."""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ._detector import RawStack, _Access

__all__ = ["RaceReport", "clear", "found", "reports", "resolve", "set_output"]

Frames = tuple[tuple[str, int, str], ...]


@dataclass(frozen=True)
class RaceReport:
    """One data race: two conflicting accesses not ordered by happens-before."""

    location: str
    access: str  # "read" or "write", the access that found the race
    goroutine: str
    stack: Frames
    created_at: Frames
    previous_access: str
    previous_goroutine: str
    previous_stack: Frames
    previous_created_at: Frames
    previous_finished: bool

    def format(self) -> str:
        """The report as Go prints it."""
        lines = ["==================", "WARNING: DATA RACE"]
        lines.append(f"{self.access.capitalize()} at {self.location} by {self.goroutine}:")
        lines += _frames(self.stack)
        lines.append("")
        lines.append(
            f"Previous {self.previous_access} at {self.location} by {self.previous_goroutine}:"
        )
        lines += _frames(self.previous_stack)
        for who, state, created in (
            (self.goroutine, "running", self.created_at),
            (
                self.previous_goroutine,
                "finished" if self.previous_finished else "running",
                self.previous_created_at,
            ),
        ):
            lines.append("")
            if created:
                lines.append(f"{who[0].upper()}{who[1:]} ({state}) created at:")
                lines += _frames(created)
            else:
                lines.append(f"{who[0].upper()}{who[1:]} ({state}) was not started by goconc.go")
        lines.append("==================")
        return "\n".join(lines)


def _frames(frames: Frames) -> list[str]:
    if not frames:
        return ["  (no Python frames)"]
    out = []
    for filename, lineno, func in frames:
        out.append(f"  {func}()")
        out.append(f"      {filename}:{lineno}")
    return out


_ADDRESS = re.compile(r"0x[0-9a-f]+")
_mu = threading.Lock()
_reports: list[RaceReport] = []  # guarded by _mu
_seen: set[Any] = set()  # guarded by _mu: (location, both code sites) already reported
_out: TextIO | None = None  # None: sys.stderr at the time of printing


def resolve(raw: RawStack) -> Frames:
    """A stack as taken by the detector, as (file, line, function) frames."""
    return tuple((code.co_filename, line, code.co_qualname) for code, line in raw)


def found(location: str, acc: _Access, prev: _Access) -> None:
    """Record (once per distinct pair of code sites) and print a race."""
    # One report per (location, pair of code sites): the same bug on many
    # objects of one class is one report, whatever their addresses.
    key = (
        _ADDRESS.sub("", location),
        frozenset({(acc.write, acc.stack[:1]), (prev.write, prev.stack[:1])}),
    )
    with _mu:
        if key in _seen:
            return
        _seen.add(key)
        report = RaceReport(
            location=location,
            access="write" if acc.write else "read",
            goroutine=acc.g.label,
            stack=resolve(acc.stack),
            created_at=resolve(acc.g.created_at),
            previous_access="write" if prev.write else "read",
            previous_goroutine=prev.g.label,
            previous_stack=resolve(prev.stack),
            previous_created_at=resolve(prev.g.created_at),
            previous_finished=prev.g.finished,
        )
        _reports.append(report)
    out = _out if _out is not None else sys.stderr
    print(report.format(), file=out, flush=True)


def reports() -> list[RaceReport]:
    with _mu:
        return list(_reports)


def clear() -> None:
    with _mu:
        _reports.clear()
        _seen.clear()


def set_output(stream: TextIO | None) -> None:
    """Where reports are printed as they are found (None: standard error)."""
    global _out
    _out = stream
