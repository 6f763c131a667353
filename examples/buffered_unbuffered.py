"""Lesson: unbuffered and buffered channels behave differently.

* Unbuffered (``Chan()``, Go's ``make(chan T)``): a send completes only when a
  receiver takes the value.  The hand-over is synchronous, so the sender
  *knows* the value was received: the receive happens before the send
  completes.
* Buffered (``Chan(n)``): a send completes as soon as there is room in the
  buffer; the sender runs ahead of the receiver by up to ``n`` values and has
  no guarantee that anybody received them.  Larger buffers hide latency; they
  do not fix a slow consumer.
* Close: receivers still get every buffered value, then ``ok=False``.

Run: ``python examples/buffered_unbuffered.py``
"""

from __future__ import annotations

import time

from goconc import Chan, go


def send_timing(cap: int, n: int, receiver_delay: float) -> list[float]:
    """Send ``n`` values to a receiver that starts late; return when each send completed."""
    ch: Chan[int] = Chan(cap)
    t0 = time.monotonic()

    def receiver() -> list[int]:
        time.sleep(receiver_delay)
        return [ch.recv() for _ in range(n)]

    g = go(receiver)
    completed = []
    for i in range(n):
        ch.send(i)
        completed.append(time.monotonic() - t0)
    assert g.join(timeout=10) == list(range(n))
    return completed


def drain_after_close() -> list[tuple[int | None, bool]]:
    ch: Chan[int] = Chan(3)
    for i in range(3):
        ch.send(i)
    ch.close()
    return [ch.recv_ok() for _ in range(4)]


def main(receiver_delay: float = 0.05) -> dict[str, object]:
    n = 4
    unbuffered = send_timing(0, n, receiver_delay)
    buffered = send_timing(3, n, receiver_delay)
    ms = [f"{t * 1000:.0f}" for t in unbuffered]
    print(f"unbuffered: sends completed at {ms} ms: every one waited for the receiver")
    ms = [f"{t * 1000:.0f}" for t in buffered]
    print(f"buffered(3): sends completed at {ms} ms: three ran ahead, the 4th waited")
    closed = drain_after_close()
    print(f"closed with 3 buffered: recv_ok gives {closed}")
    return {
        "unbuffered_waited": [t >= receiver_delay for t in unbuffered],
        "buffered_waited": [t >= receiver_delay for t in buffered],
        "after_close": closed,
    }


if __name__ == "__main__":
    main()
