"""The lessons' torn interface: a two-word value swapped while it is read.

A Go interface value is two words (type, data); a goroutine that swaps it
while another reads it can see the type of one and the data of the other.
Here the "interface" is an object with two fields, ``kind`` and ``data``,
which a writer changes one after the other while a reader uses both: the
reader can see ``("ben", "jerry's data")``.  The detector reports the race on
each field (the object is watched with ``race.watch``, which costs nothing
while the detector is off)::

    goconc race examples/race_interface.py      # WARNING: DATA RACE ... exit 66

The fix is in race_interface_fixed.py.
"""

from __future__ import annotations

from goconc import go, race


class Iface:
    def __init__(self, kind: str, data: str) -> None:
        self.kind = kind
        self.data = data


def main(rounds: int = 500) -> int:
    """Returns how many torn reads the reader saw (any number is a bug)."""
    shared = race.watch(Iface("ben", "ben's data"))
    torn = 0

    def writer() -> None:
        for i in range(rounds):
            name = "ben" if i % 2 else "jerry"
            shared.kind = name
            shared.data = f"{name}'s data"

    def reader() -> None:
        nonlocal torn
        for _ in range(rounds):
            kind, data = shared.kind, shared.data
            if data != f"{kind}'s data":
                torn += 1

    gs = [go(writer), go(reader)]
    for g in gs:
        g.join(timeout=10)
    return torn


if __name__ == "__main__":
    print("torn reads:", main())
