"""goconc.tracker's Redis stream sink, against a real redis-server.

The server is started on a free loopback port for this module (tests/services.py);
without redis-server installed the module is skipped, except under CI=true where it fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conftest import WAIT, run_async
from goconc import context, go
from goconc.tracker import Event, RedisStreamSink, Retry, Tracker, read_dead_letters
from services import RedisServer, free_port, redis_service

pytestmark = pytest.mark.goconc_leaks

__all__ = ["redis_service"]  # the module-scoped server fixture

BG = context.background()


@pytest.fixture
def client(redis_service: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_service.url, decode_responses=True)
    c.flushall()
    try:
        yield c
    finally:
        c.close()


def entries(c: redis.Redis, stream: str) -> list[dict[str, str]]:
    return [fields for _, fields in c.xrange(stream)]


def test_each_event_becomes_one_stream_entry_with_id_ts_and_data(
    redis_service: RedisServer, client: redis.Redis
) -> None:
    sink = RedisStreamSink(redis_service.url, "events")
    evs = [Event.new({"user": i, "name": "é"}) for i in range(3)]
    sink.write(evs)
    sink.close()
    got = entries(client, "events")
    assert [e["id"] for e in got] == [ev.id for ev in evs]
    assert [float(e["ts"]) for e in got] == [ev.ts for ev in evs]
    assert [json.loads(e["data"]) for e in got] == [{"user": i, "name": "é"} for i in range(3)]


def test_sink_given_a_client_leaves_it_open(client: redis.Redis) -> None:
    sink = RedisStreamSink(client, "s")
    sink.write([Event.new(1)])
    sink.close()
    assert client.xlen("s") == 1  # still usable


def test_tracker_delivers_every_accepted_event_to_redis(
    redis_service: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    t = Tracker(
        RedisStreamSink(redis_service.url, "events"),
        batch_size=200,
        dead_letter=tmp_path / "dead.jsonl",
    )
    g = go(t.run)
    ids = [t.event(BG, {"i": i}) for i in range(20_000)]
    r = t.shutdown(timeout=60)
    g.join(timeout=WAIT)
    assert r.err is None and r.accepted == r.delivered == 20_000 and r.dead_lettered == 0
    assert [e["id"] for e in entries(client, "events")] == ids


def test_asyncio_tracker_delivers_to_redis(
    redis_service: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    async def main() -> list[str]:
        async with Tracker(
            RedisStreamSink(redis_service.url, "events"), dead_letter=tmp_path / "d.jsonl"
        ) as t:
            return [await t.aevent(BG, i) for i in range(2_000)]

    ids = run_async(main(), timeout=60)
    assert [e["id"] for e in entries(client, "events")] == ids


def test_maxlen_caps_the_stream_exactly_or_approximately(
    redis_service: RedisServer, client: redis.Redis
) -> None:
    evs = [Event.new(i) for i in range(1_000)]
    exact = RedisStreamSink(redis_service.url, "exact", maxlen=100, approximate=False)
    approx = RedisStreamSink(redis_service.url, "approx", maxlen=100)
    for k in range(0, 1_000, 50):
        exact.write(evs[k : k + 50])
        approx.write(evs[k : k + 50])
    exact.close()
    approx.close()
    assert client.xlen("exact") == 100
    assert [e["id"] for e in entries(client, "exact")] == [ev.id for ev in evs[-100:]]
    assert 100 <= client.xlen("approx") < 1_000
    assert entries(client, "approx")[-1]["id"] == evs[-1].id


def test_refused_writes_are_retried_until_redis_accepts_them(
    redis_service: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    # A user that may not XADD: every batch fails with NOPERM (and MULTI/EXEC
    # applies nothing), until the permission is granted back.
    client.acl_setuser("tracker", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
    client.acl_setuser("tracker", enabled=True, commands=["-xadd"])
    url = f"redis://tracker:pw@{redis_service.host}:{redis_service.port}/0"
    retry = Retry(attempts=None, initial=0.005, max_delay=0.02)
    t = Tracker(RedisStreamSink(url, "events"), retry=retry, dead_letter=tmp_path / "d.jsonl")
    g = go(t.run)
    ids = [t.event(BG, i) for i in range(50)]
    deadline = time.monotonic() + WAIT
    while t.statistics().sink_errors < 3:
        assert time.monotonic() < deadline, "the sink never failed"
        time.sleep(0.005)
    client.acl_setuser("tracker", enabled=True, commands=["+xadd"])
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    client.acl_deluser("tracker")
    assert r.err is None and r.delivered == 50 and r.dead_lettered == 0
    assert [e["id"] for e in entries(client, "events")] == ids  # each exactly once
    assert t.statistics().retried >= 3


def test_unreachable_redis_dead_letters_at_the_shutdown_deadline(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    sink = RedisStreamSink(url, "events", socket_timeout=1.0)
    retry = Retry(attempts=None, initial=0.01, max_delay=0.05)
    t = Tracker(sink, retry=retry, dead_letter=tmp_path / "dead.jsonl")
    g = go(t.run)
    ids = [t.event(BG, i) for i in range(30)]
    with context.with_timeout(BG, 0.5) as ctx:
        r = t.shutdown(ctx)
    g.join(timeout=WAIT)
    s = t.statistics()
    assert s.accepted == 30 and s.delivered == 0 and s.dead_lettered == 30 and s.in_flight == 0
    assert [d.event.id for d in read_dead_letters(tmp_path / "dead.jsonl")] == ids
    assert r.err is not None and s.sink_errors >= 1


def test_bad_arguments_raise(redis_service: RedisServer) -> None:
    with pytest.raises(ValueError, match="stream"):
        RedisStreamSink(redis_service.url, "")
    with pytest.raises(ValueError, match="maxlen"):
        RedisStreamSink(redis_service.url, "s", maxlen=0)
    with pytest.raises(TypeError, match="target"):
        RedisStreamSink(42, "s")  # type: ignore[arg-type]
