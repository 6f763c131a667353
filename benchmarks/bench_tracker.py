"""The event tracker: events per second accepted and delivered, against the lessons' wrong design.

Each function below runs one measurement and returns its figures as a dict:

* ``events/s accepted``: events over the time one producer thread took to
  have them all accepted (``event()`` returned for each);
* ``events/s delivered``: events over the time from the first ``event()``
  until everything was in the sink (``shutdown`` returned, or the WaitGroup's
  ``wait``).

Sinks: a JSONL file and a Redis stream (a private ``redis-server`` on a free
loopback port, started for the measurement unless ``url`` is given), each
with and without the spool, and the JSONL case once more from asyncio.  The
peer is the lessons' goroutine-per-event design: ``wg.add(1); go(send_one,
event)`` then ``wg.wait()``, sending each event on its own (one line, one
``XADD``) with the same serialisation, measured in the same run.  Its Redis
client uses a pool of at most 64 connections (unbounded goroutines would
otherwise open one connection each); ``peak goroutines`` shows how many it
had at once.

Every function takes ``scale`` (1.0 for the full run, smaller for a quick one)
and returns ``{metric: value}``, the shape ``goconc bench`` cases return.
:func:`run_all` runs every case, each in a fresh process (the thousands of
threads the peer leaves behind would slow down whatever runs next), and adds
the ratios tracker/peer.  Standalone::

    python benchmarks/bench_tracker.py [--quick | --scale S] [--redis URL] [--json PATH]
    python benchmarks/bench_tracker.py --case "tracker redis + spool"
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

WAIT = 120.0  # bound on every blocking call: a broken case fails instead of hanging

ACCEPTED = "events/s accepted"
DELIVERED = "events/s delivered"


def _events(scale: float, full: int) -> int:
    return max(1_000, int(full * scale))


def _payload(i: int) -> dict[str, Any]:
    return {"user": i % 1000, "action": "page_view", "path": "/products/42", "n": i}


# -- a private redis-server ------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Start ``redis-server`` on a free loopback port (no persistence); yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="goconc-bench-redis-") as tmp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", tmp]
        argv += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                        c.sendall(b"PING\r\n")
                        if c.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextlib.contextmanager
def _redis_url(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
    else:
        with redis_server() as started:
            yield started


# -- the tracker -------------------------------------------------------------------------


def _measure_tracker(make_sink: Callable[[Path], Any], n: int, spool: bool) -> dict[str, float]:
    from goconc import context, go
    from goconc.tracker import Tracker

    with tempfile.TemporaryDirectory(prefix="goconc-bench-tracker-") as tmp:
        d = Path(tmp)
        tracker = Tracker(
            make_sink(d),
            buffer=4096,
            batch_size=512,
            spool=d / "spool" if spool else None,
            dead_letter=d / "dead.jsonl",
        )
        worker = go(tracker.run)
        bg = context.background()
        event = tracker.event
        t0 = time.perf_counter()
        for i in range(n):
            event(bg, _payload(i))
        t1 = time.perf_counter()
        result = tracker.shutdown(timeout=WAIT)
        t2 = time.perf_counter()
        worker.join(timeout=WAIT)
        if result.delivered != n or result.err is not None:
            raise RuntimeError(f"tracker lost events: {result}")
        return {ACCEPTED: n / (t1 - t0), DELIVERED: n / (t2 - t0), "events": float(n)}


def tracker_jsonl(scale: float = 1.0, spool: bool = False) -> dict[str, float]:
    """goconc.tracker.Tracker delivering to a JSONL file."""
    from goconc.tracker import JsonlSink

    return _measure_tracker(lambda d: JsonlSink(d / "events.jsonl"), _events(scale, 200_000), spool)


def tracker_jsonl_spool(scale: float = 1.0) -> dict[str, float]:
    """As :func:`tracker_jsonl`, every event also written to the spool first."""
    return tracker_jsonl(scale, spool=True)


def tracker_jsonl_asyncio(scale: float = 1.0) -> dict[str, float]:
    """goconc.tracker.Tracker to a JSONL file, from asyncio: ``aevent`` and ``arun`` on one loop.

    The blocking file write runs in a thread goroutine per batch.
    """
    import asyncio

    from goconc import context, go
    from goconc.tracker import JsonlSink, Tracker

    n = _events(scale, 100_000)

    async def main(d: Path) -> dict[str, float]:
        tracker = Tracker(
            JsonlSink(d / "events.jsonl"), buffer=4096, batch_size=512, dead_letter=d / "dl"
        )
        worker = go(tracker.arun())
        bg = context.background()
        t0 = time.perf_counter()
        for i in range(n):
            await tracker.aevent(bg, _payload(i))
        t1 = time.perf_counter()
        result = await tracker.ashutdown(timeout=WAIT)
        t2 = time.perf_counter()
        await worker.ajoin(timeout=WAIT)
        if result.delivered != n or result.err is not None:
            raise RuntimeError(f"tracker lost events: {result}")
        return {ACCEPTED: n / (t1 - t0), DELIVERED: n / (t2 - t0), "events": float(n)}

    with tempfile.TemporaryDirectory(prefix="goconc-bench-tracker-") as tmp:
        return asyncio.run(main(Path(tmp)))


def tracker_redis(
    scale: float = 1.0, spool: bool = False, url: str | None = None
) -> dict[str, float]:
    """goconc.tracker.Tracker delivering to a Redis stream (XADD in MULTI/EXEC batches)."""
    from goconc.tracker import RedisStreamSink

    with _redis_url(url) as u:
        return _measure_tracker(
            lambda d: RedisStreamSink(u, f"bench-{time.monotonic_ns()}", maxlen=1_000_000),
            _events(scale, 100_000),
            spool,
        )


def tracker_redis_spool(scale: float = 1.0, url: str | None = None) -> dict[str, float]:
    """As :func:`tracker_redis`, with the spool."""
    return tracker_redis(scale, spool=True, url=url)


# -- the lessons' goroutine-per-event + WaitGroup design ------------------------------------


def _measure_waitgroup(send_one: Callable[[Any], None], n: int) -> dict[str, float]:
    from goconc import go, runtime, sync
    from goconc.tracker import Event

    wg = sync.WaitGroup()
    peak = 0

    def deliver(ev: Event) -> None:
        try:
            send_one(ev)
        finally:
            wg.done()

    t0 = time.perf_counter()
    for i in range(n):
        ev = Event.new(_payload(i))  # the same serialisation as the tracker's event()
        wg.add(1)
        go(deliver, ev)
        if i % 1024 == 0:
            peak = max(peak, runtime.num_goroutine())
    t1 = time.perf_counter()
    wg.wait(timeout=WAIT)
    t2 = time.perf_counter()
    return {
        ACCEPTED: n / (t1 - t0),
        DELIVERED: n / (t2 - t0),
        "events": float(n),
        "peak goroutines": float(peak),
    }


def waitgroup_jsonl(scale: float = 1.0) -> dict[str, float]:
    """A goroutine per event, each appending its one line to the JSONL file."""
    from goconc.tracker import JsonlSink

    with tempfile.TemporaryDirectory(prefix="goconc-bench-wg-") as tmp:
        sink = JsonlSink(Path(tmp) / "events.jsonl")
        try:
            return _measure_waitgroup(lambda ev: sink.write((ev,)), _events(scale, 50_000))
        finally:
            sink.close()


def waitgroup_redis(scale: float = 1.0, url: str | None = None) -> dict[str, float]:
    """A goroutine per event, each sending its one XADD."""
    import redis

    with _redis_url(url) as u:
        pool = redis.BlockingConnectionPool.from_url(u, max_connections=64, timeout=WAIT)
        client = redis.Redis(connection_pool=pool)
        stream = f"bench-wg-{time.monotonic_ns()}"

        def send_one(ev: Any) -> None:
            client.xadd(stream, {"id": ev.id, "ts": repr(ev.ts), "data": ev.data}, maxlen=1_000_000)

        try:
            return _measure_waitgroup(send_one, _events(scale, 20_000))
        finally:
            client.close()
            pool.disconnect()


# -- everything, in one run ---------------------------------------------------------------

#: name -> measurement, in the order they run (each peer right after its tracker case).
CASES: dict[str, Callable[..., dict[str, float]]] = {
    "tracker jsonl": tracker_jsonl,
    "tracker jsonl + spool": tracker_jsonl_spool,
    "tracker jsonl asyncio": tracker_jsonl_asyncio,
    "waitgroup jsonl": waitgroup_jsonl,
    "tracker redis": tracker_redis,
    "tracker redis + spool": tracker_redis_spool,
    "waitgroup redis": waitgroup_redis,
}


def run_case(name: str, scale: float = 1.0, url: str | None = None) -> dict[str, float]:
    """One case of :data:`CASES` in this process."""
    fn = CASES[name]
    return fn(scale, url=url) if "redis" in name else fn(scale)


def _run_isolated(name: str, scale: float, url: str) -> dict[str, float]:
    # A fresh process per case: the thousands of threads the goroutine-per-event
    # design leaves idle (and their exit) must not slow down the next case.
    argv = [sys.executable, __file__, "--case", name, "--scale", str(scale), "--redis", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT * 5, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {name!r} failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run_all(
    scale: float = 1.0, url: str | None = None, isolate: bool = True
) -> dict[str, dict[str, float]]:
    """Every case in one run (one redis-server shared by the Redis cases), with ratios.

    With ``isolate`` (the default) each case runs in a fresh process.
    """
    out: dict[str, dict[str, float]] = {}
    with _redis_url(url) as u:
        for name in CASES:
            out[name] = _run_isolated(name, scale, u) if isolate else run_case(name, scale, u)
    for sink in ("jsonl", "redis"):
        peer = out[f"waitgroup {sink}"]
        for name in [n for n in out if n.startswith(f"tracker {sink}")]:
            for metric in (ACCEPTED, DELIVERED):
                out[name][f"{metric} / waitgroup"] = out[name][metric] / peer[metric]
    return out


def _table(results: dict[str, dict[str, float]]) -> str:
    rows = [f"{'case':<24}{'accepted/s':>14}{'delivered/s':>14}{'x wg acc':>10}{'x wg del':>10}"]
    for name, r in results.items():
        ra = r.get(f"{ACCEPTED} / waitgroup")
        rd = r.get(f"{DELIVERED} / waitgroup")
        rows.append(
            f"{name:<24}{r[ACCEPTED]:>14,.0f}{r[DELIVERED]:>14,.0f}"
            f"{'' if ra is None else f'{ra:.1f}':>10}{'' if rd is None else f'{rd:.1f}':>10}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="scale 0.1")
    p.add_argument("--scale", type=float, default=None)
    p.add_argument("--redis", default=None, help="use this Redis URL instead of a private server")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--case", choices=sorted(CASES), help="run one case, print its JSON")
    args = p.parse_args(argv)
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    if args.case:
        print(json.dumps(run_case(args.case, scale, args.redis)))
        return 0
    results = run_all(scale, url=args.redis)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, scale {scale}")
    print(_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- the goconc bench harness --------------------------------------------------------------
#
# The harness runs each case in a fresh worker process already, so the
# goroutine-per-event design's leftover threads cannot slow the next case.

if __name__ != "__main__":
    from goconc.bench import Target, case, workload

    for _sink in ("jsonl", "redis"):
        _name = f"tracker to {'JSONL' if _sink == 'jsonl' else 'Redis'}"
        workload(
            _name,
            DELIVERED,
            lower_is_better=False,
            description="Events reported and delivered through the tracker (one worker, a "
            "bounded channel, batches) against the lessons' goroutine-per-event design with "
            "a WaitGroup, measured in the same run; with and without the crash-safe spool.",
            targets=(
                Target(
                    f"WaitGroup per event ({_sink})",
                    1.0,
                    "the tracker delivers faster than goroutine-per-event",
                    source="self-set",
                ),
            ),
        )
        for _case_name in [n for n in CASES if n.endswith(_sink) or f"{_sink} " in n + " "]:
            _impl = (
                f"WaitGroup per event ({_sink})"
                if _case_name.startswith("waitgroup")
                else "goconc"
                if _case_name == f"tracker {_sink}"
                else f"goconc ({_case_name})"
            )

            @case(_name, _impl, requires=("redis",) if _sink == "redis" else ())
            def _tracker_case(scale: float, case_name: str = _case_name) -> dict[str, float]:
                return run_case(case_name, scale)
