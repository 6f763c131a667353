"""The lessons' event tracker: a bounded channel, one worker, a shutdown that drains.

Design note
-----------
Services report events (analytics, audit) without waiting for the backend:
``event(ctx, data)`` puts the event in a bounded channel and returns; one
worker takes events out, forms batches (by size and by time) and delivers
them to a sink.  This replaces "a goroutine per event, then a WaitGroup" (one
thread per event, unbounded, and what is in flight when the process exits is
lost) with a fixed cost and backpressure: when the channel is full,
``event()`` waits for room, bounded by its ``ctx``/``timeout``.

``shutdown(ctx)`` closes the channel (later ``event()`` calls raise
:class:`TrackerClosed`) and waits, bounded by ``ctx``, for the worker to
deliver everything accepted.  If ``ctx`` ends first, nothing is discarded:
the worker stops retrying and writes what it still holds to the dead-letter
file, and the result says how many events went where.

Accounting.  Every accepted event ends in exactly one of ``delivered``,
``dead_lettered`` or (only if the dead-letter file itself cannot be written,
each event then logged with its content) ``lost``; until then it is queued
(``queue_depth``) or held by the worker (``in_flight``).  Once the worker has
finished::

    accepted + recovered == delivered + dead_lettered + lost

where ``recovered`` counts events replayed from the spool of a previous run.

Ownership.  While the worker runs, only it takes events out of the channel,
so no event is resolved twice.  The worker never starts a sink call once a
shutdown deadline has passed; a sink call already in progress is not
interrupted (sinks bound their calls with socket timeouts), and its batch is
reported as ``in_flight`` until the call returns.  If no worker is running
when the deadline passes, ``shutdown`` itself dead-letters what is queued.

One worker loop, two worlds.  The worker's logic is one generator that yields
the three operations that can wait (receive, sink call, backoff sleep); ``run``
performs them blocking a thread, ``arun`` awaiting in a task.  Both wait only
through goconc primitives, so a shutdown from any thread or task wakes them.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from .. import runtime
from .. import time as gotime
from .._park import check_timeout
from ..chan import Chan, ChanClosed, select
from ..context import Canceled, Context, after_func, background, with_cancel
from .deadletter import DeadLetterFile
from .events import Encoder, Event, encode_json
from .retry import Retry
from .sinks import AsyncSink, JsonlSink, Sink
from .spool import Spool

__all__ = ["ShutdownResult", "Tracker", "TrackerClosed", "TrackerStatistics"]

_log = logging.getLogger("goconc.tracker")

# Worker states (guarded by Tracker._mu).
_IDLE: Final = 0  # no worker running; run() may start one
_RUNNING: Final = 1
_DONE: Final = 2  # everything resolved and resources closed

# The operations the worker generator yields: (_RECV, limit, timeout) -> (events,
# closed); (_WRITE, batch) -> exception or None; (_SLEEP, seconds) -> None.
_RECV: Final = 0
_WRITE: Final = 1
_SLEEP: Final = 2

# After a shutdown deadline, how long shutdown waits for a worker that is not
# inside a sink call to write what it holds to the dead-letter file and end.
_ABORT_GRACE: Final = 5.0

_UNLIMITED: Final = 1 << 62

_names = itertools.count(1)

_Op = tuple[Any, ...]
_Work = Generator[_Op, Any, None]


class TrackerClosed(RuntimeError):
    """``event()`` after ``shutdown()`` began: the tracker accepts no more events."""


@dataclass(frozen=True, slots=True)
class TrackerStatistics:
    """A snapshot of a tracker's counters (see :meth:`Tracker.statistics`)."""

    #: Events that entered the channel (event() returned for each of them).
    accepted: int
    #: Events replayed from the spool of a previous run.
    recovered: int
    #: Events the sink took.
    delivered: int
    #: Events written to the dead-letter file.
    dead_lettered: int
    #: Events neither delivered nor dead-lettered (the dead-letter file failed; logged).
    lost: int
    #: Events sent again after a failed sink call.
    retried: int
    #: Sink calls that raised.
    sink_errors: int
    #: Events waiting in the channel.
    queue_depth: int
    #: Events held by the worker: the batch being formed or in the sink, and
    #: recovered events not yet sent.
    in_flight: int
    #: Whether shutdown has begun.
    closed: bool


@dataclass(frozen=True, slots=True)
class ShutdownResult:
    """What ``shutdown`` achieved; counts are totals over the tracker's life.

    ``err`` is None when everything accepted was resolved in time, otherwise
    the reason the wait ended (``ctx.err()`` or ``TimeoutError``).
    ``in_flight`` counts events still held when shutdown returned: only
    events inside a sink call that had not returned (or queued behind it);
    they are delivered or dead-lettered when it returns.
    """

    accepted: int
    delivered: int
    dead_lettered: int
    lost: int
    in_flight: int
    err: BaseException | None

    @property
    def drained(self) -> bool:
        """True if everything accepted was delivered before the deadline."""
        return self.err is None and self.dead_lettered == 0 and self.lost == 0


class Tracker:
    """Report events through a bounded channel to one worker that batches them to a sink.

    ``Tracker(sink, buffer=1024, batch_size=256, flush_interval=0.05)``:
    ``buffer`` is the channel's capacity, a batch is sent once it has
    ``batch_size`` events or its first event has waited ``flush_interval``
    seconds.  ``spool`` (a directory or a :class:`Spool`) makes accepted
    events survive a crash; ``dead_letter`` (a path or a
    :class:`DeadLetterFile`) is where undeliverable events go (by default
    next to the spool or the JSONL file, else in the working directory,
    created on first use); ``retry`` is the :class:`Retry` policy for sink
    failures.  ``name`` names the worker goroutine and the statistics source
    ``"tracker:<name>"``.  The tracker owns the sink, the spool and the
    dead-letter file and closes them when its worker ends.

    Threads::

        tracker = Tracker(JsonlSink("events.jsonl"))
        go(tracker.run)
        tracker.event(ctx, {"user": 42, "action": "login"})
        result = tracker.shutdown(ctx)          # drains, bounded by ctx

    asyncio::

        async with Tracker(JsonlSink("events.jsonl")) as tracker:   # runs arun()
            await tracker.aevent(ctx, {"user": 42})

    Raises ``TypeError``/``ValueError`` naming the argument for bad arguments,
    :class:`SpoolLocked` if the spool is in use, ``ValueError`` if the name is
    taken by another live tracker.
    """

    def __init__(
        self,
        sink: Sink | AsyncSink,
        *,
        buffer: int = 1024,
        batch_size: int = 256,
        flush_interval: float = 0.05,
        spool: str | os.PathLike[str] | Spool | None = None,
        dead_letter: str | os.PathLike[str] | DeadLetterFile | None = None,
        retry: Retry | None = None,
        encoder: Encoder = encode_json,
        name: str | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        write = getattr(sink, "write", None)
        awrite = getattr(sink, "awrite", None)
        if not callable(write) and not callable(awrite):
            raise TypeError(f"sink must have write() or awrite(), got {type(sink).__name__}")
        _check_int("buffer", buffer, 0)
        _check_int("batch_size", batch_size, 1)
        _check_seconds("flush_interval", flush_interval)
        _check_seconds("shutdown_timeout", shutdown_timeout)
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a Retry, got {type(retry).__name__}")
        if not callable(encoder):
            raise TypeError(f"encoder must be callable, got {type(encoder).__name__}")
        if name is None:
            name = str(next(_names))
        elif not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        self.name = name
        self.sink = sink
        self._write: Callable[[Sequence[Event]], None] | None = write if callable(write) else None
        self._awrite: Callable[[Sequence[Event]], Awaitable[None]] | None = (
            awrite if callable(awrite) else None
        )
        self._batch_size = batch_size
        self._flush_interval = float(flush_interval)
        self._shutdown_timeout = float(shutdown_timeout)
        self._retry = retry if retry is not None else Retry()
        self._encoder = encoder
        self._ch: Chan[Event] = Chan(buffer)
        self._stopped: Chan[None] = Chan()  # closed once everything is resolved
        #: Closed once a worker runs (App readiness: ``select(tracker.ready, ...)``).
        self.ready: Chan[None] = Chan()
        self._abort_ctx, self._abort_cancel = with_cancel(background())
        self._mu = threading.Lock()  # held only for counter and state updates
        # Guarded by _mu:
        # - the counters (see TrackerStatistics).  _received counts events taken
        #   out of the channel (so accepted == _received + len(_ch), exactly, even
        #   for a send whose task was cancelled after its value was taken); each
        #   taken event is added to _held (or dead-lettered) in the same critical
        #   section and later moves once to delivered, dead-lettered or lost.
        # - _state: _IDLE -> _RUNNING (run) -> _IDLE (the worker died) or _DONE;
        #   _ran: _state has been _RUNNING once.
        # - _backlog: recovered (or given back) events no worker has taken yet.
        # - _held: the worker's current batch; only the worker changes it.
        # - _in_sink: the worker is inside a sink call with _held.
        # - _closing: shutdown began (the channel is closed, or about to be).
        # - _aborted: a shutdown deadline passed: no more sink calls.
        self._received = 0
        self._delivered = 0
        self._dead_lettered = 0
        self._lost = 0
        self._retried = 0
        self._sink_errors = 0
        self._state = _IDLE
        self._ran = False  # a worker has started once (ready is closed)
        self._held: list[Event] = []
        self._in_sink = False
        self._closing = False
        self._aborted = False
        self._stats_key = f"tracker:{name}"
        ref = weakref.ref(self)
        runtime.register_statistics(self._stats_key, lambda: _stats_of(ref))
        self._unregister = weakref.finalize(self, _unregister, self._stats_key)
        try:
            self._spool = _open_spool(spool)
            self._dead = _open_dead_letter(dead_letter, self._spool, sink, name)
        except BaseException:
            self._unregister()
            raise
        self._backlog: list[Event] = self._spool.recovered() if self._spool else []
        self._recovered = len(self._backlog)
        if self._recovered:
            _log.info("tracker %s: %d events recovered from the spool", name, self._recovered)
        self._goroutine: runtime.Goroutine[None] | None = None

    # -- accepting events ---------------------------------------------------------

    def event(self, ctx: Context | None, data: Any, *, timeout: float | None = None) -> str:
        """Accept ``data`` as an event; return its unique id.

        The data is encoded (JSON by default) here, so data that cannot be
        encoded raises ``TypeError``/``ValueError`` now.  With a spool the
        event is on disk before it is queued.  Waits for room in the channel;
        raises ``ctx.err()`` if ``ctx`` ends first, ``TimeoutError`` after
        ``timeout`` seconds (the event was then not accepted), and
        :class:`TrackerClosed` once shutdown has begun.
        """
        ev = self._prepare(data)
        try:
            self._ch.send(ev, timeout=timeout, ctx=ctx)
        except BaseException as e:
            self._refused(ev)
            if isinstance(e, ChanClosed):
                raise TrackerClosed(f"tracker {self.name}: shut down") from None
            raise
        return ev.id

    async def aevent(self, ctx: Context | None, data: Any, *, timeout: float | None = None) -> str:
        """The asyncio form of :meth:`event`.

        If the task is cancelled while waiting for room, ``CancelledError``
        propagates and the event is not guaranteed: asyncio cannot take back a
        send that a receiver completed at that very moment, so it may still be
        delivered (and is then counted as accepted), but the spool does not
        keep it.  With a spool, the append is a short blocking write on the
        loop's thread (plus an fsync if the spool was opened with ``fsync=True``).
        """
        ev = self._prepare(data)
        try:
            await self._ch.asend(ev, timeout=timeout, ctx=ctx)
        except BaseException as e:
            self._refused(ev)
            if isinstance(e, ChanClosed):
                raise TrackerClosed(f"tracker {self.name}: shut down") from None
            raise
        return ev.id

    def _prepare(self, data: Any) -> Event:
        if self._closing:
            raise TrackerClosed(f"tracker {self.name}: shut down")
        ev = Event.new(data, self._encoder)
        if self._spool is not None:
            try:
                self._spool.append(ev)
            except ValueError:
                if self._closing:  # the spool closed as the worker finished
                    raise TrackerClosed(f"tracker {self.name}: shut down") from None
                raise
        return ev

    def _refused(self, ev: Event) -> None:
        if self._spool is not None:
            try:
                self._spool.ack((ev,))
            except (OSError, ValueError):
                _log.warning("tracker %s: could not record refused event %s", self.name, ev.id)

    # -- the worker ---------------------------------------------------------------

    def run(self) -> None:
        """The worker: deliver events until shutdown has drained them (blocking).

        Run it in its own goroutine (``go(tracker.run)``).  Returns once
        shutdown has begun and everything accepted is resolved; returns at
        once if that is already so.  If it is stopped by an exception
        (``KeyboardInterrupt``), what it held is kept and ``run`` may be
        called again.  Raises ``RuntimeError`` if a worker is already running.
        """
        if not self._enter():
            return
        work = self._work()
        try:
            op = next(work)
            while True:
                kind = op[0]
                if kind == _RECV:
                    result: Any = self._recv(op[1], op[2])
                elif kind == _WRITE:
                    result = self._write_sync(op[1])
                else:
                    result = None
                    try:
                        gotime.sleep(op[1], ctx=self._abort_ctx)
                    except Canceled:
                        pass  # aborted: the generator sees it and stops retrying
                op = work.send(result)
        except StopIteration:
            self._finish()
        except BaseException:
            work.close()
            self._died()
            raise

    async def arun(self) -> None:
        """The asyncio form of :meth:`run` (``go(tracker.arun())`` or a task).

        A sink with only a blocking ``write`` is called in a thread goroutine,
        so the event loop never blocks on it.  If the task is cancelled, what
        the worker held is kept (a batch inside the sink may be delivered
        twice) and ``arun`` may be called again.
        """
        if not self._enter():
            return
        work = self._work()
        try:
            op = next(work)
            while True:
                kind = op[0]
                if kind == _RECV:
                    result: Any = await self._arecv(op[1], op[2])
                elif kind == _WRITE:
                    result = await self._write_async(op[1])
                else:
                    result = None
                    try:
                        await gotime.asleep(op[1], ctx=self._abort_ctx)
                    except Canceled:
                        pass  # aborted: the generator sees it and stops retrying
                op = work.send(result)
        except StopIteration:
            self._finish()
        except BaseException:
            work.close()
            self._died()
            raise

    def _enter(self) -> bool:
        with self._mu:
            if self._state == _RUNNING:
                raise RuntimeError(f"tracker {self.name}: a worker is already running")
            if self._state == _DONE:
                return False
            self._state = _RUNNING
            first = not self._ran
            self._ran = True
        if first:
            self.ready.close()
        return True

    def _work(self) -> _Work:
        """The worker's logic; yields the operations that wait (see module note)."""
        while True:
            with self._mu:
                # After an abort everything goes to the dead-letter file in one write.
                n = len(self._backlog) if self._aborted else self._batch_size
                batch = self._backlog[:n]
                del self._backlog[:n]
                self._held = batch
            if not batch:
                break
            yield from self._deliver(batch)
        batch, deadline, closed = self._held, 0.0, False
        while not closed:
            limit = self._batch_size - len(batch)
            if self._aborted:
                timeout: float | None = 0.0
                limit = _UNLIMITED
            elif batch:
                timeout = max(0.0, deadline - time.monotonic())
            else:
                timeout = None
            got, closed = yield (_RECV, limit, timeout)
            if got:
                if not batch:
                    deadline = time.monotonic() + self._flush_interval
                with self._mu:
                    self._received += len(got)
                    batch.extend(got)
            if batch and (
                closed
                or len(batch) >= self._batch_size
                or self._aborted
                or time.monotonic() >= deadline
            ):
                yield from self._deliver(batch)
                batch = self._held  # a fresh list: _deliver resolved the batch

    def _deliver(self, batch: list[Event]) -> _Work:
        """Send ``batch`` (which is ``_held``) to the sink, retrying with backoff;
        else dead-letter it.  Either way ``_held`` is a fresh empty list after."""
        calls = 0
        while True:
            with self._mu:
                aborted = self._aborted
                self._in_sink = not aborted
            if aborted:
                self._dead_letter(batch, "shutdown deadline passed before delivery", held=True)
                return
            err = yield (_WRITE, batch)
            with self._mu:
                self._in_sink = False
                if err is None:
                    self._delivered += len(batch)
                    self._held = []
                else:
                    self._sink_errors += 1
            if err is None:
                self._ack(batch)
                return
            calls += 1
            if self._retry.gives_up_after(calls):
                reason = f"sink failed {calls} times, last: {err!r}"
                self._dead_letter(batch, reason, held=True)
                return
            delay = self._retry.delay(calls)
            _log.warning(
                "tracker %s: sink failed (%r); retrying %d events in %.3f s",
                self.name,
                err,
                len(batch),
                delay,
            )
            with self._mu:
                self._retried += len(batch)
            yield (_SLEEP, delay)

    # Receiving: the first event blocks (bounded by timeout and by an abort),
    # the rest are taken only if they are already there.

    def _recv(self, limit: int, timeout: float | None) -> tuple[list[Event], bool]:
        out: list[Event] = []
        if timeout is None or timeout > 0:
            try:
                out.append(self._ch.recv(timeout=timeout, ctx=self._abort_ctx))
            except ChanClosed:
                return out, True
            except (TimeoutError, Canceled):
                return out, False
        return out, self._take_ready(out, limit)

    async def _arecv(self, limit: int, timeout: float | None) -> tuple[list[Event], bool]:
        out: list[Event] = []
        if timeout is None or timeout > 0:
            try:
                out.append(await self._ch.arecv(timeout=timeout, ctx=self._abort_ctx))
            except ChanClosed:
                return out, True
            except (TimeoutError, Canceled):
                return out, False
        return out, self._take_ready(out, limit)

    def _take_ready(self, out: list[Event], limit: int) -> bool:
        """Move events that are ready into ``out`` (up to ``limit``); True if closed and empty.

        Buffered events are taken with ``recv(timeout=0)``, which never waits
        while one is there (the worker is the only receiver); ``select`` with a
        default then looks for a parked sender or the close.
        """
        ch = self._ch
        while len(out) < limit:
            k = min(len(ch), limit - len(out))
            if k:
                try:
                    for _ in range(k):
                        out.append(ch.recv(timeout=0))
                except TimeoutError:
                    pass
                except ChanClosed:
                    return True
                continue
            index, value, ok = select(ch, default=True)
            if index < 0:
                return False
            if not ok:
                return True
            out.append(value)
        return False

    def _write_sync(self, batch: list[Event]) -> Exception | None:
        try:
            if self._write is not None:
                self._write(batch)
            else:
                assert self._awrite is not None
                runtime.go_named(f"tracker:{self.name}:sink", self._awrite, batch).join()
        except Exception as e:
            return e
        return None

    async def _write_async(self, batch: list[Event]) -> Exception | None:
        try:
            if self._awrite is not None:
                await self._awrite(batch)
            else:
                assert self._write is not None
                await runtime.go_named(f"tracker:{self.name}:sink", self._write, batch).ajoin()
        except Exception as e:
            return e
        return None

    # -- resolving events -----------------------------------------------------------

    def _ack(self, events: Sequence[Event]) -> None:
        if self._spool is not None:
            try:
                self._spool.ack(events)
            except (OSError, ValueError) as e:
                # Only costs duplicates: these events come again after a restart.
                _log.warning(
                    "tracker %s: could not ack %d events in the spool: %r",
                    self.name,
                    len(events),
                    e,
                )

    def _dead_letter(
        self, events: Sequence[Event], reason: str, *, held: bool = False, backlog: bool = False
    ) -> None:
        """Write ``events`` to the dead-letter file and count them.

        ``held``/``backlog``: they are all of ``_held``/``_backlog``, emptied in
        the same critical section as the count, so a snapshot never sees an
        event twice or not at all.
        """
        if not events:
            return
        try:
            self._dead.write(events, reason)
        except OSError as e:
            with self._mu:
                self._lost += len(events)
                self._release(held, backlog)
            _log.error(
                "tracker %s: %d events could not be delivered nor dead-lettered to %s (%r)%s:\n%s",
                self.name,
                len(events),
                self._dead.path,
                e,
                "; the spool keeps them for the next start" if self._spool else "",
                "\n".join(ev.line() for ev in events),
            )
            return
        with self._mu:
            self._dead_lettered += len(events)
            self._release(held, backlog)
        self._ack(events)
        _log.error(
            "tracker %s: %d events dead-lettered to %s: %s",
            self.name,
            len(events),
            self._dead.path,
            reason,
        )

    def _release(self, held: bool, backlog: bool) -> None:
        """Empty ``_held`` and/or ``_backlog`` (_mu held)."""
        if held:
            self._held = []
        if backlog:
            self._backlog = []

    def _finish(self) -> None:
        """The worker resolved everything: close the resources, then announce it."""
        with self._mu:
            self._state = _DONE
        self._close_resources()

    def _died(self) -> None:
        """The worker was stopped by an exception: keep what it held for the next run."""
        with self._mu:
            self._backlog[:0] = self._held
            self._held = []
            self._in_sink = False
            self._state = _IDLE
        _log.error("tracker %s: worker stopped by an exception; events kept", self.name)

    def _close_resources(self) -> None:
        try:
            close = getattr(self.sink, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    _log.exception("tracker %s: closing the sink failed", self.name)
            if self._spool is not None:
                self._spool.close()
            self._dead.close()
        finally:
            self._unregister()
            self._stopped.close()

    # -- shutting down ---------------------------------------------------------------

    def shutdown(
        self, ctx: Context | None = None, *, timeout: float | None = None
    ) -> ShutdownResult:
        """Stop accepting events and wait until everything accepted is delivered.

        Bounded by ``ctx`` and ``timeout``: when either ends first, the worker
        stops retrying and what remains goes to the dead-letter file (a sink
        call in progress is not interrupted: its events are ``in_flight``).
        Never raises for the deadline: the result reports it.  May be called
        again (and from several threads or tasks); each call waits with its
        own bound.  With no worker running and no bound, waits until one runs.
        """
        check_timeout(timeout)
        self._close_input()
        err: BaseException | None = None
        try:
            self._stopped.recv_ok(timeout=timeout, ctx=ctx)
        except (TimeoutError, Canceled) as e:
            err = e
        if err is not None and self._abort():
            try:
                self._stopped.recv_ok(timeout=_ABORT_GRACE)
            except TimeoutError:
                pass
        return self._result(err)

    async def ashutdown(
        self, ctx: Context | None = None, *, timeout: float | None = None
    ) -> ShutdownResult:
        """The asyncio form of :meth:`shutdown`."""
        check_timeout(timeout)
        self._close_input()
        err: BaseException | None = None
        try:
            await self._stopped.arecv_ok(timeout=timeout, ctx=ctx)
        except (TimeoutError, Canceled) as e:
            err = e
        if err is not None and self._abort():
            try:
                await self._stopped.arecv_ok(timeout=_ABORT_GRACE)
            except TimeoutError:
                pass
        return self._result(err)

    def _close_input(self) -> None:
        with self._mu:
            if self._closing:
                return
            self._closing = True
        self._ch.close()

    def _abort(self) -> bool:
        """A deadline passed: stop delivering; True if the worker will end promptly."""
        with self._mu:
            self._aborted = True
            state, in_sink = self._state, self._in_sink
            if state == _IDLE:
                self._state = _DONE  # no worker: this call resolves everything
        self._abort_cancel()
        if state == _IDLE:
            self._drain_to_dead_letter()
            self._close_resources()
            return False
        return state == _RUNNING and not in_sink

    def _drain_to_dead_letter(self) -> None:
        rest: list[Event] = []
        self._take_ready(rest, _UNLIMITED)  # the channel is closed: this empties it
        with self._mu:
            self._received += len(rest)
            self._backlog += rest
            rest = self._backlog
        self._dead_letter(rest, "shutdown deadline passed before delivery", backlog=True)

    def _result(self, err: BaseException | None) -> ShutdownResult:
        with self._mu:
            depth = len(self._ch)
            return ShutdownResult(
                accepted=self._received + depth,
                delivered=self._delivered,
                dead_lettered=self._dead_lettered,
                lost=self._lost,
                in_flight=len(self._held) + len(self._backlog) + depth,
                err=err,
            )

    # -- the App server protocol and context managers ---------------------------------

    def start(self, ctx: Context | None = None) -> None:
        """Run the worker until the tracker is shut down (an App server's start).

        With ``stop``, ``ready`` and ``endpoint`` this makes a Tracker a
        ``goconc.app`` server: ``App(servers=[tracker, ...])``.  If ``ctx``
        ends first, shutdown begins (stop accepting, then drain, without a
        deadline: bound it with :meth:`stop`).
        """
        stop = after_func(ctx, self._close_input) if ctx is not None else None
        try:
            self.run()
        finally:
            if stop is not None:
                stop()

    async def astart(self, ctx: Context | None = None) -> None:
        """The asyncio form of :meth:`start`."""
        stop = after_func(ctx, self._close_input) if ctx is not None else None
        try:
            await self.arun()
        finally:
            if stop is not None:
                stop()

    def stop(self, ctx: Context | None = None) -> ShutdownResult:
        """``shutdown(ctx)`` (an App server's stop)."""
        return self.shutdown(ctx)

    async def astop(self, ctx: Context | None = None) -> ShutdownResult:
        """``await ashutdown(ctx)``."""
        return await self.ashutdown(ctx)

    def accepting(self) -> bool:
        """True while a worker runs and shutdown has not begun."""
        with self._mu:
            return self._state == _RUNNING and not self._closing

    def endpoint(self) -> str | None:
        """None: a tracker serves no network address, so an App registers none for it."""
        return None

    def __enter__(self) -> Tracker:
        """Start the worker in a thread goroutine; ``with`` exit shuts down."""
        self._goroutine = runtime.go_named(f"tracker:{self.name}", self.run)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        result = self.shutdown(timeout=self._shutdown_timeout)
        g, self._goroutine = self._goroutine, None
        if g is not None and result.in_flight == 0:
            g.join(timeout=_ABORT_GRACE)

    async def __aenter__(self) -> Tracker:
        """Start the worker as a task of the running loop; ``async with`` exit shuts down."""
        self._goroutine = runtime.go_named(f"tracker:{self.name}", self.arun())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        result = await self.ashutdown(timeout=self._shutdown_timeout)
        g, self._goroutine = self._goroutine, None
        if g is not None and result.in_flight == 0:
            await g.ajoin(timeout=_ABORT_GRACE)

    # -- inspection -----------------------------------------------------------------

    def statistics(self) -> TrackerStatistics:
        """A snapshot of the counters (also under ``runtime.statistics()["tracker:<name>"]``)."""
        with self._mu:
            depth = len(self._ch)  # the channel's lock is only ever taken inside ours
            return TrackerStatistics(
                accepted=self._received + depth,
                recovered=self._recovered,
                delivered=self._delivered,
                dead_lettered=self._dead_lettered,
                lost=self._lost,
                retried=self._retried,
                sink_errors=self._sink_errors,
                queue_depth=depth,
                in_flight=len(self._held) + len(self._backlog),
                closed=self._closing,
            )

    @property
    def dead_letter_path(self) -> Path:
        """Where undeliverable events are written."""
        return self._dead.path

    @property
    def spool(self) -> Spool | None:
        """The spool, if the tracker has one."""
        return self._spool

    def __repr__(self) -> str:
        return f"<Tracker {self.name} sink={self.sink!r}>"


# -- helpers ---------------------------------------------------------------------------


def _stats_of(ref: weakref.ref[Tracker]) -> TrackerStatistics | None:
    t = ref()
    return None if t is None else t.statistics()


def _unregister(key: str) -> None:
    try:
        runtime.unregister_statistics(key)
    except KeyError:
        pass


def _open_spool(spool: str | os.PathLike[str] | Spool | None) -> Spool | None:
    if spool is None or isinstance(spool, Spool):
        return spool
    if isinstance(spool, str | os.PathLike):
        return Spool(spool)
    raise TypeError(f"spool must be a path or a Spool, got {type(spool).__name__}")


def _open_dead_letter(
    dead_letter: str | os.PathLike[str] | DeadLetterFile | None,
    spool: Spool | None,
    sink: object,
    name: str,
) -> DeadLetterFile:
    if isinstance(dead_letter, DeadLetterFile):
        return dead_letter
    if dead_letter is not None:
        if not isinstance(dead_letter, str | os.PathLike):
            raise TypeError(
                f"dead_letter must be a path or a DeadLetterFile, got {type(dead_letter).__name__}"
            )
        return DeadLetterFile(dead_letter)
    if spool is not None:
        return DeadLetterFile(spool.directory / "dead-letter.jsonl")
    if isinstance(sink, JsonlSink):
        return DeadLetterFile(sink.path.with_name(sink.path.stem + ".dead-letter.jsonl"))
    return DeadLetterFile(Path.cwd() / f"goconc-tracker-{name}.dead-letter.jsonl")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
