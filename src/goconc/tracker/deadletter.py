"""The dead-letter file: where accepted events go when they cannot be delivered.

A tracker never discards an event it accepted.  An event that the sink keeps
refusing (retries exhausted) or that is still queued when a shutdown deadline
ends is appended here, one JSON object per line, with the reason::

    {"id":"0190a5c2-...","ts":1718000000.123,"data":{"user":42},"reason":"shutdown deadline"}

Each write is flushed and fsynced before it is counted as dead-lettered, so the
file is the durable record of what was not delivered.  The file is created on
the first dead letter only.  :func:`read_dead_letters` reads it back, e.g. to
send the events again::

    for dl in read_dead_letters("events.dead.jsonl"):
        print(dl.event.id, dl.reason)
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from ._files import write_all
from .events import Event

__all__ = ["DeadLetter", "DeadLetterFile", "read_dead_letters"]


class DeadLetter(NamedTuple):
    """One line of a dead-letter file: the event and why it was not delivered."""

    event: Event
    reason: str


class DeadLetterFile:
    """An append-only JSONL file of undelivered events, safe to share across threads.

    ``write(events, reason)`` returns once the lines are on disk (fsync), or
    raises ``OSError`` if they could not be written.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._mu = threading.Lock()  # held for one write; guards _fd
        self._fd: int | None = None  # guarded by _mu; opened on the first dead letter

    def write(self, events: Sequence[Event], reason: str) -> None:
        """Append ``events`` with ``reason``; durable when this returns."""
        if not events:
            return
        r = json.dumps(reason, ensure_ascii=False)
        text = "".join(f'{ev.line()[:-1]},"reason":{r}}}\n' for ev in events)
        data = text.encode()
        with self._mu:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            write_all(self._fd, data)
            if self._fsync:
                os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (a later write opens it again)."""
        with self._mu:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __repr__(self) -> str:
        return f"DeadLetterFile({str(self.path)!r})"


def read_dead_letters(path: str | os.PathLike[str]) -> Iterator[DeadLetter]:
    """The dead letters in ``path``, oldest first (nothing if it does not exist).

    A last line without its line break (a write cut short by a crash) is
    skipped; any other malformed line raises ``ValueError``.
    """
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.endswith("\n"):
                return
            reason = json.loads(line).get("reason", "")
            yield DeadLetter(Event.from_line(line), str(reason))
