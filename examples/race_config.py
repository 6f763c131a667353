"""The lessons' config race: one writer replaces cfg.a while four readers read it.

"It is only one word, the readers will see the old or the new value": no.
There is no benign data race; the memory model gives no such promise, and the
detector reports it::

    goconc race examples/race_config.py         # WARNING: DATA RACE ... exit 66

The fix is in race_config_fixed.py.
"""

from __future__ import annotations

from goconc import go, race


class Config:
    def __init__(self) -> None:
        self.a = [0, 0, 0]


def main(rounds: int = 300) -> list[int]:
    """Returns the last config each reader saw."""
    cfg = race.watch(Config())
    seen: list[list[int]] = [[] for _ in range(4)]

    def writer() -> None:
        for i in range(rounds):
            cfg.a = [i, i + 1, i + 2]

    def reader(n: int) -> None:
        for _ in range(rounds):
            seen[n] = cfg.a

    gs = [go(writer)] + [go(reader, n) for n in range(4)]
    for g in gs:
        g.join(timeout=10)
    return [s[0] if s else -1 for s in seen]


if __name__ == "__main__":
    print("last configs seen:", main())
