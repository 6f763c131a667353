"""The spool: a local append-only log that makes accepted events survive a crash.

Design note
-----------
With a spool, ``Tracker.event()`` appends the event to the spool *before* it
puts it in the channel, so once ``event()`` returns the event is in the file,
and a ``kill -9`` of the process cannot lose it.  When the sink has taken a
batch (or the batch went to the dead-letter file), the worker appends an
*ack* record naming the batch's ids.  On the next start the spool replays
every event without an ack, and the tracker delivers those first: delivery is
at least once, and a consumer de-duplicates by event id (an event delivered
just before the crash, whose ack was not written yet, comes again).

Files.  A spool is a directory: ``LOCK`` (held with ``flock`` while a spool is
open, so two trackers never share one) and segments ``seg-000001.log``,
``seg-000002.log``...  Only the newest segment is appended to; it is rotated
once it exceeds ``segment_bytes``.  A record is one line::

    E <crc32> <id> <ts> <data JSON>        an accepted event
    A <crc32> <id>,<id>,...                 these events are resolved

The CRC covers the rest of the line, so a record cut short by a crash (or
garbage left by a power loss) is recognised and skipped, never misread.

Reclaiming space.  Every event's segment is remembered until it is acked.  A
segment is deleted once it and every older segment hold no unacked event;
deleting strictly oldest first keeps every ack of a surviving event with it.
Opening a spool rewrites the events still pending into a fresh segment
(fsynced) and then deletes the old ones, so a spool never grows across
restarts, and a crash during that step leaves both copies, which replay
merges by id.

Durability.  A record is written with one ``write`` to a file opened in
append mode: after ``append`` returns it is in the OS page cache, which
survives the crash of the process.  ``fsync=True`` also makes it survive a
power loss, at the cost of a disk flush per event.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._files import write_all
from .events import Event

__all__ = ["Spool", "SpoolLocked", "SpoolStatistics"]

_log = logging.getLogger("goconc.tracker")

_SEGMENT: Final = re.compile(r"seg-(\d{6,})\.log")


class SpoolLocked(RuntimeError):
    """Another open spool (in this or another process) holds the directory."""


@dataclass(frozen=True, slots=True)
class SpoolStatistics:
    """A snapshot of a spool (see :meth:`Spool.statistics`)."""

    #: Events appended (or recovered) and not yet acked.
    pending: int
    #: Segment files on disk.
    segments: int
    #: Events replayed from the previous run when the spool was opened.
    recovered: int
    #: Records skipped when the spool was opened (cut short by a crash, or damaged).
    corrupt_records: int


class Spool:
    """An append-only, crash-safe log of accepted events in ``directory``.

    Opening replays the previous run: :meth:`recovered` returns the events
    appended then and never acked, oldest first.  Thread-safe.

    Raises :class:`SpoolLocked` if the directory is in use by another open
    spool, ``OSError`` if it cannot be created or read.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = 16 << 20,
        fsync: bool = False,
    ) -> None:
        if isinstance(segment_bytes, bool) or segment_bytes < 1:
            raise ValueError(f"segment_bytes must be a positive int, got {segment_bytes!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock_fd = _lock_directory(self.directory)
        self._mu = threading.Lock()  # held for one record write and its bookkeeping
        # Guarded by _mu:
        # - _seg_of: id -> segment number, for every appended and not yet acked event.
        # - _live: segment number -> how many of _seg_of point to it; one entry
        #   per segment file on disk, ascending; the last one is _active.
        # - _fd, _size: the active segment's descriptor and size in bytes;
        #   _fd is None once closed.
        self._seg_of: dict[str, int] = {}
        self._live: dict[int, int] = {}
        self._fd: int | None = None
        self._size = 0
        self._active = 0
        try:
            self._recovered, self._corrupt = self._open()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- opening: replay and compact ---------------------------------------------------

    def _open(self) -> tuple[list[Event], int]:
        old = sorted(
            (int(m.group(1)), p)
            for p in self.directory.iterdir()
            if (m := _SEGMENT.fullmatch(p.name))
        )
        events: dict[str, Event] = {}
        acked: set[str] = set()
        corrupt = 0
        for _, path in old:
            corrupt += _replay(path, events, acked)
        pending = [ev for eid, ev in events.items() if eid not in acked]
        if corrupt:
            _log.warning("spool %s: skipped %d damaged records", self.directory, corrupt)
        self._active = old[-1][0] + 1 if old else 1
        self._start_segment()
        if pending:
            data = b"".join(_event_record(ev) for ev in pending)
            write_all(self._fd, data)  # type: ignore[arg-type]
            self._size += len(data)
            self._seg_of = {ev.id: self._active for ev in pending}
            self._live[self._active] = len(pending)
        os.fsync(self._fd)  # type: ignore[arg-type]
        for _, path in old:
            path.unlink()
        _fsync_dir(self.directory)
        return pending, corrupt

    def _start_segment(self) -> None:
        """Open segment number ``_active`` for appending (_mu held, or opening)."""
        path = self.directory / f"seg-{self._active:06d}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        self._size = 0
        self._live[self._active] = 0

    def recovered(self) -> list[Event]:
        """The events of the previous run that were never acked, oldest first."""
        return list(self._recovered)

    # -- appending and acking --------------------------------------------------------

    def append(self, ev: Event) -> None:
        """Record ``ev``; it survives a crash of the process once this returns.

        Raises ``OSError`` if it could not be written (and then it was not),
        ``ValueError`` if the spool is closed.
        """
        data = _event_record(ev)
        with self._mu:
            fd = self._fd
            if fd is None:
                raise ValueError("spool is closed")
            write_all(fd, data)
            if self._fsync:
                os.fsync(fd)
            self._size += len(data)
            self._seg_of[ev.id] = self._active
            self._live[self._active] += 1
            if self._size >= self._segment_bytes:
                self._rotate()

    def ack(self, events: Iterable[Event]) -> None:
        """Record that ``events`` are resolved (delivered, dead-lettered, or refused).

        Ids that are not pending are ignored.  An ack that is lost in a crash
        only makes its events come again; it is not fsynced.
        """
        ids = [ev.id for ev in events]
        if not ids:
            return
        data = _record(b"A", ",".join(ids).encode())
        with self._mu:
            if self._fd is None:
                raise ValueError("spool is closed")
            write_all(self._fd, data)
            self._size += len(data)
            live, seg_of = self._live, self._seg_of
            for eid in ids:
                seg = seg_of.pop(eid, None)
                if seg is not None:
                    live[seg] -= 1
            self._reclaim()
            if self._size >= self._segment_bytes:
                self._rotate()

    def _rotate(self) -> None:
        """Start a new active segment (_mu held)."""
        if self._fd is not None:
            os.close(self._fd)
        self._active += 1
        self._start_segment()
        self._reclaim()

    def _reclaim(self) -> None:
        """Delete the oldest segments while they hold nothing pending (_mu held)."""
        live = self._live
        for seg in list(live):
            if seg == self._active or live[seg] != 0:
                return
            del live[seg]
            try:
                (self.directory / f"seg-{seg:06d}.log").unlink()
            except FileNotFoundError:
                pass

    # -- inspection and closing ---------------------------------------------------

    def statistics(self) -> SpoolStatistics:
        """Pending events, segment files, and what opening recovered."""
        with self._mu:
            return SpoolStatistics(
                pending=len(self._seg_of),
                segments=len(self._live),
                recovered=len(self._recovered),
                corrupt_records=self._corrupt,
            )

    def close(self) -> None:
        """Close the spool and release its directory; idempotent.

        If nothing is pending the segment files are removed, so a cleanly
        stopped tracker leaves an empty spool.
        """
        with self._mu:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            os.close(fd)
            if not self._seg_of:
                for seg in self._live:
                    try:
                        (self.directory / f"seg-{seg:06d}.log").unlink()
                    except FileNotFoundError:
                        pass
                self._live.clear()
            os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r})"


# -- records ---------------------------------------------------------------------


def _record(kind: bytes, payload: bytes) -> bytes:
    return b"%s %08x %s\n" % (kind, zlib.crc32(payload), payload)


def _event_record(ev: Event) -> bytes:
    return _record(b"E", f"{ev.id} {ev.ts!r} {ev.data}".encode())


def _replay(path: Path, events: dict[str, Event], acked: set[str]) -> int:
    """Read one segment into ``events``/``acked``; return how many records were bad."""
    bad = 0
    with open(path, "rb") as f:
        for line in f:
            if len(line) < 12 or not line.endswith(b"\n") or line[1:2] != b" ":
                bad += 1
                continue
            payload = line[11:-1]
            try:
                ok = int(line[2:10], 16) == zlib.crc32(payload)
            except ValueError:
                ok = False
            if not ok:
                bad += 1
                continue
            kind = line[:1]
            if kind == b"E":
                eid, ts, data = payload.decode().split(" ", 2)
                events.setdefault(eid, Event(eid, float(ts), data))
            elif kind == b"A":
                acked.update(payload.decode().split(","))
            else:
                bad += 1
    return bad


def _lock_directory(directory: Path) -> int:
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolLocked(f"spool {str(directory)!r} is in use by another tracker") from None
    return fd


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
