"""Where a tracker delivers its events: a JSONL file, a Redis stream, or a callable.

A sink receives whole batches, in the order the worker formed them, from one
worker at a time.  ``write(batch)`` (or ``await awrite(batch)``) returns once
the batch is delivered and raises if it was not; the tracker then retries the
same batch with backoff, so a sink may see a batch more than once (every event
carries its unique ``id`` for consumers to de-duplicate).  A sink should bound
its own calls in time (socket timeouts): a call that never returns holds its
batch forever.  The tracker owns its sink and closes it when its worker ends.

Threads or asyncio: a sink offers ``write`` (blocking), ``awrite`` (a
coroutine), or both.  The worker calls the form that matches how it runs and
runs the other one in a goroutine (``goconc.go``) when it has to.

::

    Tracker(JsonlSink("events.jsonl"))
    Tracker(RedisStreamSink("redis://127.0.0.1:6379/0", "events", maxlen=1_000_000))
    Tracker(CallableSink(lambda batch: print(len(batch))))
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._files import write_all
from .events import Event

if TYPE_CHECKING:
    import redis

__all__ = ["AsyncSink", "CallableSink", "JsonlSink", "RedisStreamSink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """A blocking sink: ``write`` delivers a batch or raises."""

    def write(self, batch: Sequence[Event]) -> None: ...


@runtime_checkable
class AsyncSink(Protocol):
    """An asyncio sink: ``await awrite(batch)`` delivers a batch or raises."""

    async def awrite(self, batch: Sequence[Event]) -> None: ...


class JsonlSink:
    """Append events to a file, one JSON object per line (the embedded default).

    Each batch is written with one ``write`` call to a file opened in append
    mode, so a reader tailing the file (``tail -f``) only ever sees whole lines
    appended; nothing is rewritten.  If the file is renamed or removed (log
    rotation), the next batch goes to a new file at ``path``.

    ``fsync=True`` makes every batch durable against power loss before it
    counts as delivered (slower); by default a batch is in the OS page cache,
    which survives the crash of the process.  A batch cut short by a crash
    leaves one incomplete line; the next write ends it with a line break, so
    a reader skips one malformed line and never sees two records merged.

    Raises ``OSError`` from ``write`` when the file cannot be written; the
    tracker retries.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._mu = threading.Lock()  # held for one batch write; guards _fd and _file_id
        self._fd: int | None = None  # guarded by _mu
        self._file_id: tuple[int, int] | None = None  # guarded by _mu: (st_dev, st_ino) of _fd

    def _open(self) -> int:
        """The file descriptor for ``path``, reopened if the file was rotated (_mu held)."""
        fd = self._fd
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if fd is not None and current == self._file_id:
            return fd
        if fd is not None:
            os.close(fd)
            self._fd = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        st = os.fstat(fd)
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            # A write cut short by a crash: end that line, so the next batch
            # starts on a line of its own (its events come again from the spool).
            os.write(fd, b"\n")
        self._fd, self._file_id = fd, (st.st_dev, st.st_ino)
        return fd

    def write(self, batch: Sequence[Event]) -> None:
        """Append the batch as whole lines (and fsync if asked)."""
        data = "".join([f"{ev.line()}\n" for ev in batch]).encode()
        with self._mu:
            fd = self._open()
            write_all(fd, data)
            if self.fsync:
                os.fsync(fd)

    def close(self) -> None:
        """Close the file; a later write opens it again."""
        with self._mu:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


class RedisStreamSink:
    """Append events to a Redis stream with ``XADD`` (redis-py).

    ``target`` is a URL (``redis://host:port/db``; the sink makes and closes
    its own client, with ``socket_timeout`` seconds per call) or a
    ``redis.Redis`` client (left open).  Every event becomes one stream entry
    with the fields ``id``, ``ts`` and ``data`` (JSON text).  A batch is sent
    as one ``MULTI``/``EXEC`` pipeline, so it is appended whole or not at all.

    ``maxlen`` caps the stream (``XADD ... MAXLEN``); with ``approximate=True``
    (``MAXLEN ~``) Redis trims whole nodes only, which is much cheaper, and the
    stream may hold somewhat more than ``maxlen`` entries.

    Raises ``redis.RedisError`` from ``write`` when Redis is unreachable or
    refuses; the tracker retries.
    """

    def __init__(
        self,
        target: str | redis.Redis,
        stream: str,
        *,
        maxlen: int | None = None,
        approximate: bool = True,
        socket_timeout: float = 5.0,
    ) -> None:
        import redis as _redis

        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream must be a non-empty str, got {stream!r}")
        if maxlen is not None and (isinstance(maxlen, bool) or maxlen < 1):
            raise ValueError(f"maxlen must be None or a positive int, got {maxlen!r}")
        if isinstance(target, str):
            self.client: redis.Redis = _redis.Redis.from_url(
                target, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
            self._owned = True
        elif isinstance(target, _redis.Redis):
            self.client = target
            self._owned = False
        else:
            raise TypeError(f"target must be a URL or a redis.Redis, got {type(target).__name__}")
        self.stream = stream
        self.maxlen = maxlen
        self.approximate = approximate

    def write(self, batch: Sequence[Event]) -> None:
        """``XADD`` every event of the batch in one transaction."""
        with self.client.pipeline(transaction=True) as pipe:
            for ev in batch:
                pipe.xadd(
                    self.stream,
                    {"id": ev.id, "ts": repr(ev.ts), "data": ev.data},
                    maxlen=self.maxlen,
                    approximate=self.approximate,
                )
            pipe.execute()

    def close(self) -> None:
        """Close the client if the sink made it."""
        if self._owned:
            self.client.close()

    def __repr__(self) -> str:
        return f"RedisStreamSink({self.client!r}, {self.stream!r})"


class CallableSink:
    """A sink from a function of a batch, blocking or a coroutine function.

    For tests and custom backends: ``fn(batch)`` (``batch`` a list of
    :class:`Event`) delivers the batch or raises.  Both forms are offered:
    the one that does not match ``fn`` runs it in a goroutine (a coroutine
    function on the runtime's loop, a plain function on a thread).
    """

    def __init__(self, fn: Callable[[list[Event]], Any]) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)

    def write(self, batch: Sequence[Event]) -> None:
        """Call ``fn`` with the batch and wait for it."""
        if self.is_async:
            from ..runtime import go

            go(self.fn, list(batch)).join()
        else:
            self.fn(list(batch))

    async def awrite(self, batch: Sequence[Event]) -> None:
        """Call ``fn`` with the batch and wait for it (asyncio)."""
        if self.is_async:
            result: Awaitable[Any] = self.fn(list(batch))
            await result
        else:
            from ..runtime import go

            await go(self.fn, list(batch)).ajoin()

    def __repr__(self) -> str:
        return f"CallableSink({self.fn!r})"
