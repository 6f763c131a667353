"""The config race fixed by handing the config over a channel.

"Do not communicate by sharing memory; share memory by communicating."  One
goroutine owns the config.  The writer sends it new versions; readers ask it
for the current one and get it back on a channel of their own.  Every access
to ``cfg.a`` happens in the owner, so there is nothing to report::

    goconc race examples/race_config_fixed.py   # no report, exit 0
"""

from __future__ import annotations

from goconc import Chan, go, race, select


class Config:
    def __init__(self) -> None:
        self.a = [0, 0, 0]


def main(rounds: int = 300) -> list[int]:
    """Returns the last config each reader saw."""
    updates: Chan[list[int]] = Chan()
    requests: Chan[Chan[list[int]]] = Chan()
    quit_: Chan[None] = Chan()
    seen: list[list[int]] = [[] for _ in range(4)]

    def owner() -> None:
        cfg = race.watch(Config())
        while True:
            chosen = select(updates, requests, quit_, timeout=10)
            if chosen.index == 0:
                cfg.a = chosen.value
            elif chosen.index == 1:
                chosen.value.send(cfg.a, timeout=10)
            else:
                return

    def writer() -> None:
        for i in range(rounds):
            updates.send([i, i + 1, i + 2], timeout=10)

    def reader(n: int) -> None:
        reply: Chan[list[int]] = Chan(1)
        for _ in range(rounds):
            requests.send(reply, timeout=10)
            seen[n] = reply.recv(timeout=10)

    own = go(owner)
    gs = [go(writer)] + [go(reader, n) for n in range(4)]
    for g in gs:
        g.join(timeout=20)
    quit_.send(None, timeout=10)
    own.join(timeout=10)
    return [s[0] if s else -1 for s in seen]


if __name__ == "__main__":
    print("last configs seen:", main())
