"""Tracked events: one unique id, a timestamp and the caller's data as JSON text.

An event is serialised when it is accepted (in ``Tracker.event()``), never
later: data that cannot be encoded raises at the call site, where the caller
can still do something about it, instead of in the worker where it would be
lost.  From then on the event is immutable text; sinks, the spool and the
dead-letter file all write the same line::

    {"id":"0190a5c2-7b7e-7c4e-9d3a-5f1e2b8c9d0a","ts":1718000000.123,"data":{"user":42}}

Ids are UUID version 7 (RFC 9562): 48 bits of Unix milliseconds followed by 74
random bits, so they sort by creation time and never repeat, across threads,
processes and restarts.  A consumer that sees an id twice (at-least-once
delivery after a crash) drops the copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from random import getrandbits as _getrandbits
from typing import Any, NamedTuple

__all__ = ["Encoder", "Event", "encode_json", "new_event_id"]

#: Turns the caller's data into JSON text; raises TypeError/ValueError if it cannot.
Encoder = Callable[[Any], str]

_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=False
).encode


def encode_json(data: Any) -> str:
    """The default encoder: compact JSON, UTF-8 text, no NaN or infinity.

    Raises ``TypeError`` for an object JSON cannot represent and
    ``ValueError`` for NaN/infinity (which are not JSON) and for circular
    references.
    """
    return _dumps(data)


def new_event_id() -> str:
    """A fresh UUIDv7 string: time-ordered to the millisecond, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    # The random module's generator is seeded from the OS and reseeded in a
    # forked child, so two processes never share its stream; 74 bits make a
    # collision among billions of ids within one millisecond negligible.
    rand = _getrandbits(80)
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Event(NamedTuple):
    """One accepted event.

    ``id`` is unique (a UUIDv7 string), ``ts`` the Unix time it was accepted
    at, ``data`` the caller's data already encoded as one line of JSON text.
    """

    id: str
    ts: float
    data: str

    @classmethod
    def new(cls, data: Any, encoder: Encoder = encode_json) -> Event:
        """Encode ``data`` now and give it a fresh id.

        Raises ``TypeError``/``ValueError`` from the encoder, and
        ``TypeError`` if a custom encoder returns something other than str.
        """
        text = encoder(data)
        if encoder is not encode_json:  # compact JSON never holds a raw line break
            if not isinstance(text, str):
                raise TypeError(f"encoder must return str, got {type(text).__name__}")
            if "\n" in text or "\r" in text:
                # A raw line break can only be insignificant whitespace in JSON (in
                # strings it is escaped), so one line per event is kept without loss.
                text = text.replace("\r", " ").replace("\n", " ")
        return cls(new_event_id(), time.time(), text)

    def value(self) -> Any:
        """The data decoded back from its JSON text."""
        return json.loads(self.data)

    def line(self) -> str:
        """The event as one JSON object, without the line break."""
        return f'{{"id":"{self.id}","ts":{self.ts!r},"data":{self.data}}}'

    @classmethod
    def from_line(cls, line: str) -> Event:
        """Parse a line written by :meth:`line` (or any JSON object with id, ts, data).

        Raises ``ValueError`` if the line is not such an object.
        """
        try:
            obj = json.loads(line)
            return cls(str(obj["id"]), float(obj["ts"]), _dumps(obj["data"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a tracker event line: {line[:80]!r}") from e
