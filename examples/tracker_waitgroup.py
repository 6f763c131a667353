"""Lesson: the event tracker, wrong design - a goroutine per event, then a WaitGroup.

In Go::

    func (a *App) Handle(w http.ResponseWriter, r *http.Request) {
        a.wg.Add(1)
        go func() {                     // one goroutine per event
            defer a.wg.Done()
            a.track.Event("this event")
        }()
    }

    func (a *App) Shutdown(ctx context.Context) error {
        ch := make(chan struct{})
        go func() { a.wg.Wait(); close(ch) }()
        select {
        case <-ch:
            return nil
        case <-ctx.Done():
            return ctx.Err()            // main returns: what is in flight is lost
        }
    }

Two problems.  Every event costs a goroutine (here an OS thread), and under
load their number has no bound: the backend is the bottleneck and they all
pile up in front of it.  And at shutdown, the wait must be bounded (a
deployment does not wait forever), so when the deadline comes the events
still in flight are simply gone - nobody counted them, nobody wrote them
down.  ``tracker_worker.py`` is the fix.

Run: ``python examples/tracker_waitgroup.py``
"""

from __future__ import annotations

from typing import Any

from goconc import context, go, runtime, sync
from goconc import time as gotime


class Backend:
    """A slow analytics backend that serves one request at a time (one connection)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.conn = sync.Mutex()
        self.received: list[Any] = []
        self.process_alive = True  # False once "the process has exited"
        self._mu = sync.Mutex()

    def send(self, data: Any) -> None:
        with self.conn:
            gotime.sleep(self.delay)
            with self._mu:
                if self.process_alive:
                    self.received.append(data)


class WaitGroupTracker:
    """The lesson's first design: ``event`` starts a goroutine that sends one event."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.wg = sync.WaitGroup()

    def event(self, data: Any) -> None:
        self.wg.add(1)
        go(self._send, data)

    def _send(self, data: Any) -> None:
        try:
            self.backend.send(data)
        finally:
            self.wg.done()

    def shutdown(self, ctx: context.Context) -> BaseException | None:
        """Wait for the goroutines, bounded by ``ctx``; return ``ctx.err()`` if it ended first."""
        try:
            self.wg.wait(ctx=ctx)
        except (context.Canceled, context.DeadlineExceeded) as e:
            return e
        return None


def main(
    n_events: int = 200, sink_delay: float = 0.002, shutdown_timeout: float = 0.1
) -> dict[str, Any]:
    """Track ``n_events`` through a slow backend and shut down with a deadline.

    Returns the figures: how many events were accepted, delivered before the
    process "exited", lost, and how many goroutines the design needed at once.
    """
    backend = Backend(sink_delay)
    tracker = WaitGroupTracker(backend)
    before = runtime.num_goroutine()
    for i in range(n_events):
        tracker.event({"event": i})
    peak = runtime.num_goroutine() - before
    with context.with_timeout(context.background(), shutdown_timeout) as ctx:
        err = tracker.shutdown(ctx)
    with backend._mu:
        backend.process_alive = False  # main returns here: the process is gone
        delivered = len(backend.received)
    lost = n_events - delivered
    print(f"goroutine per event: {n_events} accepted, {peak} goroutines at once")
    print(f"shutdown after {shutdown_timeout}s: {err!r}")
    print(f"delivered {delivered}, LOST {lost} (nothing records which ones)")
    # A real process would be gone; here the stragglers are let finish (they
    # deliver nothing now) so that the example leaves no goroutine behind.
    tracker.wg.wait(timeout=60)
    return {"accepted": n_events, "delivered": delivered, "lost": lost, "goroutines": peak}


if __name__ == "__main__":
    main()
