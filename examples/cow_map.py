"""Lesson: atomic.Value copy-on-write - a read-mostly map that readers read with no lock.

In Go (the ``sync/atomic`` documentation's ``readMostly`` example)::

    var m atomic.Value                  // holds the current Map
    m.Store(make(Map))
    var mu sync.Mutex                   // used only by writers

    read := func(key string) string {   // no lock at all
        return m.Load().(Map)[key]
    }
    insert := func(key, val string) {
        mu.Lock()                       // synchronise with other writers
        defer mu.Unlock()
        m1 := m.Load().(Map)            // the current map
        m2 := make(Map)                 // a new one: copy, then change the copy
        for k, v := range m1 {
            m2[k] = v
        }
        m2[key] = val
        m.Store(m2)                     // swap it in; readers move to it
    }

Readers never wait and never see a half-updated map: the map they loaded is
never changed again.  Writers pay a copy per update and must take the
writers' lock around load-copy-store: two writers that both load the same
map and both store their copy lose one of the two updates.  This script runs
that bug (writers without the lock), Go's version (``atomic.Value`` and a
``sync.Mutex``) and goconc's ``atomic.CopyOnWrite.update``, which takes the
writers' lock for you.  Writers are threads and asyncio tasks alike.

Run: ``python examples/cow_map.py``
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from goconc import atomic, go, sync

Map = dict[str, int]


class GoStyle:
    """Go's example as written: an atomic.Value of the map plus a writers' Mutex."""

    def __init__(self, locked: bool = True) -> None:
        self.m: atomic.Value[Map] = atomic.Value({})
        self.mu = sync.Mutex()  # used only by writers
        self.locked = locked

    def read(self, key: str) -> int | None:
        snapshot = self.m.load()
        assert snapshot is not None
        return snapshot.get(key)

    def snapshot(self) -> Map:
        snapshot = self.m.load()
        assert snapshot is not None
        return snapshot

    def insert(self, key: str, val: int) -> None:
        if self.locked:
            with self.mu:
                self._copy_change_swap(key, val)
        else:
            self._copy_change_swap(key, val)  # the bug: two writers may interleave here

    def _copy_change_swap(self, key: str, val: int) -> None:
        m1 = self.snapshot()
        m2 = dict(m1)  # copy ...
        time.sleep(0)  # (another writer may run here, as at any other point)
        m2[key] = val  # ... change the copy ...
        self.m.store(m2)  # ... and swap it in


class CowStyle:
    """The same with atomic.CopyOnWrite: update() runs copy-and-change under its lock."""

    def __init__(self) -> None:
        self.m: atomic.CopyOnWrite[Map] = atomic.CopyOnWrite({})

    def read(self, key: str) -> int | None:
        return self.m.load().get(key)

    def snapshot(self) -> Map:
        return self.m.load()

    def insert(self, key: str, val: int) -> None:
        self.m.update(lambda cur: {**cur, key: val})


def run(store: Any, duration: float, writers: int = 3, per_writer: int = 300) -> dict[str, int]:
    """Writer threads and tasks insert keys; reader threads check every snapshot they load."""
    stop = atomic.Bool()
    problems = atomic.Int()

    def writer(w: int) -> None:
        for i in range(per_writer):
            store.insert(f"w{w}-{i}", i)

    async def async_writer(w: int) -> None:
        for i in range(per_writer):
            store.insert(f"w{w}-{i}", i)
            if i % 50 == 0:
                await asyncio.sleep(0)

    def reader() -> int:
        reads = 0
        while not stop.load():
            snap = store.snapshot()  # no lock
            # A snapshot is whole: key w-i in it means every earlier key of writer w is
            # in it too (each writer inserts its keys in order)... unless updates were lost.
            for w in range(writers + 1):
                n = sum(1 for k in snap if k.startswith(f"w{w}-"))
                if n and f"w{w}-{n - 1}" not in snap:
                    problems.add(1)
            reads += 1
            time.sleep(0.0005)
        return reads

    deadline = time.monotonic() + duration
    readers = [go(reader) for _ in range(2)]
    ws = [go(writer, w) for w in range(writers)]
    ws.append(go(async_writer, writers))  # an asyncio task writer too
    for g in ws:
        g.join(timeout=max(10.0, duration * 10))
    time.sleep(max(0.0, deadline - time.monotonic()))  # readers go on for the duration
    stop.store(True)
    reads = sum(g.join(timeout=10) for g in readers)
    expected = (writers + 1) * per_writer
    return {
        "keys inserted": expected,
        "keys in the map": len(store.snapshot()),
        "lost updates": expected - len(store.snapshot()),
        "reads": reads,
        "inconsistent snapshots": problems.load(),
    }


def main(duration: float = 0.3, per_writer: int = 300) -> dict[str, dict[str, int]]:
    variants: dict[str, Callable[[], Any]] = {
        "writers without the lock (the bug)": lambda: GoStyle(locked=False),
        "atomic.Value + writers' Mutex (Go)": GoStyle,
        "atomic.CopyOnWrite.update": CowStyle,
    }
    results = {}
    for name, make in variants.items():
        r = run(make(), duration, per_writer=per_writer)
        results[name] = r
        print(
            f"{name:36} {r['keys in the map']:5}/{r['keys inserted']} keys, "
            f"{r['lost updates']:4} lost, {r['inconsistent snapshots']:4} inconsistent of "
            f"{r['reads']:4} lock-free reads"
        )
    return results


if __name__ == "__main__":
    main()
