"""Lesson: atomic.Value - a config reloaded from a file, read without any lock.

In Go (the ``sync/atomic`` documentation's example)::

    var config atomic.Value // holds the current *Config
    config.Store(loadConfig())
    go func() {
        for {                       // reload every 10 seconds
            time.Sleep(10 * time.Second)
            config.Store(loadConfig())
        }
    }()
    for i := 0; i < 10; i++ {       // workers: read the latest config
        go func() {
            for r := range requests() {
                c := config.Load().(*Config)
                ...                 // handle r with c
            }
        }()
    }

The config is an immutable object: the reloader builds a whole new one and
stores it in one step, so a reader sees either the old config or the new one,
never half of each, and never waits - no lock is taken to read.  Here one
goroutine rewrites the file now and then, a reloader re-reads it every
``interval`` seconds, and four readers check each config they load: its
fields belong together (they were written together) and its version never
goes back.

Run: ``python examples/config_reload.py``
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goconc import atomic, context, go, select
from goconc import time as gotime


@dataclass(frozen=True)
class Config:
    """One version of the configuration; never changed once built."""

    version: int
    backends: tuple[str, ...]
    timeout: float


def write_config(path: Path, version: int) -> None:
    """Write version ``version`` of the config file, atomically (write, then rename)."""
    data = {
        "version": version,
        "backends": [f"10.0.0.{i}:8080" for i in range(version % 3 + 1)],
        "timeout": 0.5 + version % 3,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def load_config(path: Path) -> Config:
    data = json.loads(path.read_text())
    return Config(data["version"], tuple(data["backends"]), float(data["timeout"]))


def reloader(
    ctx: context.Context, path: Path, current: atomic.Value[Config], interval: float
) -> int:
    """Re-read the file every ``interval`` seconds; store a new config when it changed."""
    reloads = 0
    ticker = gotime.tick(interval)
    try:
        while select(ctx.done, ticker).index != 0:
            new = load_config(path)
            if new != current.load():
                current.store(new)  # one step: readers see the old or the new config
                reloads += 1
        return reloads
    finally:
        ticker.stop()


def reader(ctx: context.Context, current: atomic.Value[Config]) -> dict[str, Any]:
    """Load the config in a loop, as request handlers do, and check what is seen."""
    reads = 0
    last = 0
    versions = set()
    while ctx.err() is None:
        cfg = current.load()  # no lock, never blocked by the reloader
        assert cfg is not None
        assert cfg.version >= last, "a reader went back to an older config"
        assert len(cfg.backends) == cfg.version % 3 + 1, "a config mixed two versions"
        assert cfg.timeout == 0.5 + cfg.version % 3, "a config mixed two versions"
        last = cfg.version
        versions.add(cfg.version)
        reads += 1
        if reads % 1000 == 0:
            gotime.sleep(0.0001)  # a request handler does other work too
    return {"reads": reads, "versions": len(versions)}


def main(duration: float = 1.0, interval: float = 0.02) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        write_config(path, 1)
        current = atomic.Value(load_config(path))
        ctx, cancel = context.with_timeout(context.background(), duration)
        try:
            readers = [go(reader, ctx, current) for _ in range(4)]
            reload = go(reloader, ctx, path, current, interval)
            version = 1
            while _sleep(ctx, interval * 2):
                version += 1
                write_config(path, version)  # an operator edits the file
            seen = [r.join(timeout=10) for r in readers]
            reloads = reload.join(timeout=10)
        finally:
            cancel()
    final = current.load()
    result = {
        "file versions written": version,
        "reloads": reloads,
        "reads": sum(s["reads"] for s in seen),
        "versions seen by a reader (at most)": max(s["versions"] for s in seen),
        "final version loaded": final.version if final is not None else 0,
    }
    for k, v in result.items():
        print(f"{k:36} {v}")
    return result


def _sleep(ctx: context.Context, seconds: float) -> bool:
    """Sleep; False if ``ctx`` ended first."""
    try:
        gotime.sleep(seconds, ctx=ctx)
    except (context.Canceled, context.DeadlineExceeded):
        return False
    return True


if __name__ == "__main__":
    main()
