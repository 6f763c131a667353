"""Lesson: the event tracker, right design - a bounded channel, one worker, a draining shutdown.

In Go::

    type Tracker struct {
        ch   chan string
        stop chan struct{}
    }

    func (t *Tracker) Event(ctx context.Context, data string) error {
        select {
        case t.ch <- data:               // room in the buffer: accepted
            return nil
        case <-ctx.Done():               // the caller gives up waiting
            return ctx.Err()
        }
    }

    func (t *Tracker) Run() {
        for data := range t.ch {         // one worker; ends when ch is closed and drained
            send(data)
        }
        t.stop <- struct{}{}
    }

    func (t *Tracker) Shutdown(ctx context.Context) {
        close(t.ch)                      // no more events
        select {
        case <-t.stop:                   // everything accepted was sent
        case <-ctx.Done():               // or the deadline came
        }
    }

One worker costs the same whatever the load; a full buffer pushes back on the
callers (bounded by their ctx) instead of piling up goroutines; the caller of
``go tracker.Run()`` controls its lifetime; and shutdown drains.

Below, :class:`LessonTracker` is that code with goconc.  It still has a gap:
if the deadline comes first, the events left in the channel are not counted
anywhere.  ``goconc.tracker.Tracker`` closes it: batching, retries, and every
event it could not deliver in time written to a dead-letter file, counted -
shown second, with a deadline too short on purpose.

Run: ``python examples/tracker_worker.py``
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from goconc import Chan, context, go, runtime, sync
from goconc import time as gotime
from goconc.tracker import CallableSink, Event, Tracker, read_dead_letters


class Backend:
    """A slow analytics backend that serves one request at a time (one connection)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.conn = sync.Mutex()
        self.received: list[Any] = []
        self._mu = threading.Lock()

    def send(self, data: Any) -> None:
        with self.conn:
            gotime.sleep(self.delay)
            with self._mu:
                self.received.append(data)

    def send_batch(self, batch: list[Event]) -> None:
        """One request for a whole batch: the production tracker batches."""
        with self.conn:
            gotime.sleep(self.delay)
            with self._mu:
                self.received.extend(ev.value() for ev in batch)


class LessonTracker:
    """The lesson's Tracker, line for line."""

    def __init__(self, backend: Backend, buffer: int = 10) -> None:
        self.backend = backend
        self.ch: Chan[Any] = Chan(buffer)
        self.stop: Chan[None] = Chan()

    def event(self, ctx: context.Context, data: Any) -> None:
        self.ch.send(data, ctx=ctx)  # raises ctx.err() if there is no room in time

    def run(self) -> None:
        for data in self.ch:
            self.backend.send(data)
        self.stop.close()

    def shutdown(self, ctx: context.Context) -> BaseException | None:
        self.ch.close()
        try:
            self.stop.recv_ok(ctx=ctx)
        except (context.Canceled, context.DeadlineExceeded) as e:
            return e
        return None


def lesson(n_events: int, sink_delay: float, shutdown_timeout: float) -> dict[str, Any]:
    backend = Backend(sink_delay)
    tracker = LessonTracker(backend)
    before = runtime.num_goroutine()
    worker = go(tracker.run)  # the caller owns the worker's lifetime
    bg = context.background()
    for i in range(n_events):
        tracker.event(bg, {"event": i})
    goroutines = runtime.num_goroutine() - before
    with context.with_timeout(bg, shutdown_timeout) as ctx:
        err = tracker.shutdown(ctx)
    worker.join(timeout=60)
    delivered = len(backend.received)
    print(f"lesson tracker: {n_events} accepted with {goroutines} goroutine; shutdown: {err!r}")
    print(f"  delivered {delivered}, lost {n_events - delivered}")
    return {"accepted": n_events, "delivered": delivered, "goroutines": goroutines, "err": err}


def production(
    n_events: int, sink_delay: float, shutdown_timeout: float, directory: Path
) -> dict[str, Any]:
    backend = Backend(sink_delay)
    tracker = Tracker(
        CallableSink(backend.send_batch),
        buffer=n_events,
        batch_size=10,
        dead_letter=directory / "dead-letter.jsonl",
    )
    worker = go(tracker.run)
    bg = context.background()
    for i in range(n_events):
        tracker.event(bg, {"event": i})
    with context.with_timeout(bg, shutdown_timeout) as ctx:
        result = tracker.shutdown(ctx)
    worker.join(timeout=60)  # a batch in the backend at the deadline is resolved now
    s = tracker.statistics()
    dead = [dl.event.value() for dl in read_dead_letters(tracker.dead_letter_path)]
    print(f"goconc.tracker, {shutdown_timeout}s deadline: {result.err!r}")
    print(f"  delivered {s.delivered}, dead-lettered {len(dead)} to {tracker.dead_letter_path}")
    return {
        "accepted": s.accepted,
        "delivered": s.delivered,
        "dead_lettered": s.dead_lettered,
        "lost": s.accepted - s.delivered - len(dead),
        "dead_letters": dead,
        "received": list(backend.received),
    }


def main(
    n_events: int = 200,
    sink_delay: float = 0.002,
    shutdown_timeout: float = 0.1,
    directory: str | None = None,
) -> dict[str, Any]:
    """Run the lesson's tracker with a generous deadline, then goconc's with a short one."""
    out: dict[str, Any] = {"lesson": lesson(n_events, sink_delay, shutdown_timeout=60.0)}
    with tempfile.TemporaryDirectory() as tmp:
        out["tracker"] = production(
            n_events, sink_delay * 5, shutdown_timeout, Path(directory or tmp)
        )
    return out


if __name__ == "__main__":
    main()
