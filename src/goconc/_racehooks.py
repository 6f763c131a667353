"""The race detector's hooks, as the synchronising primitives see them.

Every goconc operation that creates a happens-before edge calls one of these
functions, behind a single check of :data:`enabled`::

    if _racehooks.enabled:
        _racehooks.release(self)

While the detector is off (the default) that check is all a primitive pays.
``goconc.race`` replaces the functions below with the detector's when it is
turned on; this module imports nothing so that every primitive can use it.

The edges, in the terms of Go's memory model:

* ``release(obj)`` then a later ``acquire(obj)``: everything the releasing
  goroutine did happens before what the acquiring goroutine does next
  (unlock -> lock, done -> wait, store -> load, cancel -> done observed).
* ``release_acquire(obj)``: both at once, for objects that order every
  party with every other (a buffer slot of a channel).
* ``handoff(w)``: called by ``Waiter.complete``, so for every wake-up: the
  current goroutine completes the parked waiter ``w`` and everything it did
  happens before ``w`` resumes (the waiter acquires the clock stored in
  ``w.race_hb``).  Every goconc wake-up is such an edge in Go's model.
* ``park_clock()``: the clock of a goroutine about to park, kept in
  ``w.race_vc``; ``absorb(w)``: what the parked goroutine of ``w`` did before
  parking happens before what the current goroutine does next (a receiver
  taking a parked sender's value, a sender whose value a parked receiver
  takes).
* ``chan_send(ch, cap, w)``/``chan_recv(ch, cap)``: a value enters (sent by the
  current goroutine, or by the parked sender ``w``) or leaves a channel's
  buffer: the k-th receive happens before the (k+cap)-th send completes.
  ``chan_put_back(ch, cap)``: a receiver cancelled after it was handed a value
  puts it back at the head of the buffer; its next receiver acquires what the
  first one was handed.
* ``fork()``/``start(token)``/``finish()``: ``go()`` and the goroutine's
  beginning and end; ``acquire_clock(c)`` joins a finished goroutine.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "absorb",
    "acquire",
    "acquire_clock",
    "chan_close",
    "chan_put_back",
    "chan_recv",
    "chan_recv_closed",
    "chan_send",
    "current",
    "park_clock",
    "enabled",
    "finish",
    "fork",
    "handoff",
    "read",
    "release",
    "release_acquire",
    "start",
    "write",
]

#: The one flag every hook site checks.  Set only by ``goconc.race``.
enabled: bool = False


def current() -> Any:
    return None


def park_clock() -> Any:
    return None


def acquire(obj: object) -> None:
    pass


def release(obj: object) -> None:
    pass


def release_acquire(obj: object) -> None:
    pass


def acquire_clock(clock: Any) -> None:
    pass


def handoff(w: Any) -> None:
    pass


def absorb(w: Any) -> None:
    pass


def fork() -> Any:
    return None


def start(token: Any, gid: int = 0, name: str = "", created_at: str = "") -> None:
    pass


def finish() -> Any:
    return None


def chan_send(ch: object, cap: int, w: Any = None) -> None:
    pass


def chan_recv(ch: object, cap: int, w: Any = None) -> None:
    pass


def chan_close(ch: object) -> None:
    pass


def chan_put_back(ch: object, cap: int) -> None:
    pass


def chan_recv_closed(ch: object) -> None:
    pass


def read(key: Any, desc: str) -> None:
    pass


def write(key: Any, desc: str) -> None:
    pass
