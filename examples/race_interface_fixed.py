"""The torn interface fixed with atomic.Value and copy-on-write.

The pair is immutable; the writer builds a new one and stores it; the reader
loads one snapshot and uses both fields of that snapshot.  A store happens
before the load that sees it, so there is nothing to report::

    goconc race examples/race_interface_fixed.py  # no report, exit 0
"""

from __future__ import annotations

from dataclasses import dataclass

from goconc import atomic, go


@dataclass(frozen=True)
class Iface:
    kind: str
    data: str


def main(rounds: int = 500) -> int:
    """Returns how many torn reads the reader saw (always 0)."""
    shared = atomic.Value(Iface("ben", "ben's data"))
    torn = 0

    def writer() -> None:
        for i in range(rounds):
            name = "ben" if i % 2 else "jerry"
            shared.store(Iface(name, f"{name}'s data"))

    def reader() -> None:
        nonlocal torn
        for _ in range(rounds):
            snap = shared.load()
            if snap.data != f"{snap.kind}'s data":
                torn += 1

    gs = [go(writer), go(reader)]
    for g in gs:
        g.join(timeout=10)
    return torn


if __name__ == "__main__":
    print("torn reads:", main())
