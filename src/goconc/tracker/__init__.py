"""goconc.tracker: report events through a bounded channel; lose none at shutdown or crash.

The lessons' event tracker, production-grade: ``event(ctx, data)`` waits for
room in a bounded channel (or gives up when ``ctx`` ends); one worker batches
events to a sink, retrying failures with backoff; ``shutdown(ctx)`` stops
accepting and drains, bounded by ``ctx``, and whatever could not be delivered
goes to a dead-letter file, counted.  With a spool, every accepted event also
survives ``kill -9`` and is delivered on the next start (at least once; every
event carries a unique id).

Threads::

    from goconc import context, go
    from goconc.tracker import JsonlSink, Tracker

    tracker = Tracker(JsonlSink("events.jsonl"), spool="spool/")
    go(tracker.run)
    tracker.event(context.background(), {"user": 42, "action": "login"})
    with context.with_timeout(context.background(), 5) as ctx:
        print(tracker.shutdown(ctx))

asyncio::

    async with Tracker(RedisStreamSink("redis://127.0.0.1:6379/0", "events")) as tracker:
        await tracker.aevent(ctx, {"user": 42})
"""

from __future__ import annotations

from .deadletter import DeadLetter, DeadLetterFile, read_dead_letters
from .events import Encoder, Event, encode_json, new_event_id
from .retry import Retry
from .sinks import AsyncSink, CallableSink, JsonlSink, RedisStreamSink, Sink
from .spool import Spool, SpoolLocked, SpoolStatistics
from .tracker import ShutdownResult, Tracker, TrackerClosed, TrackerStatistics

__all__ = [
    "AsyncSink",
    "CallableSink",
    "DeadLetter",
    "DeadLetterFile",
    "Encoder",
    "Event",
    "JsonlSink",
    "RedisStreamSink",
    "Retry",
    "ShutdownResult",
    "Sink",
    "Spool",
    "SpoolLocked",
    "SpoolStatistics",
    "Tracker",
    "TrackerClosed",
    "TrackerStatistics",
    "encode_json",
    "new_event_id",
    "read_dead_letters",
]
