"""goconc.tracker: nothing accepted is lost, and the counts always add up."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import WAIT, run_async
from goconc import Chan, context, go, runtime, select
from goconc.context import Canceled, DeadlineExceeded
from goconc.tracker import (
    CallableSink,
    DeadLetterFile,
    Event,
    JsonlSink,
    Retry,
    ShutdownResult,
    Spool,
    SpoolLocked,
    Tracker,
    TrackerClosed,
    TrackerStatistics,
    new_event_id,
    read_dead_letters,
)

pytestmark = pytest.mark.goconc_leaks

BG = context.background()
FAST_RETRY = Retry(attempts=None, initial=0.001, max_delay=0.01)


# -- helpers -------------------------------------------------------------------------


class Collect:
    """A sink that records every batch; optionally fails or blocks on chosen calls."""

    def __init__(
        self,
        fail: Callable[[int], bool] = lambda call: False,
        gate: Chan[None] | None = None,
    ) -> None:
        self.mu = threading.Lock()
        self.batches: list[list[Event]] = []
        self.calls = 0
        self.fail = fail
        self.gate = gate
        self.entered: Chan[None] = Chan(1000)

    def write(self, batch: list[Event]) -> None:
        with self.mu:
            self.calls += 1
            call = self.calls
        self.entered.try_send(None)
        if self.gate is not None:
            self.gate.recv_ok(timeout=WAIT)
        if self.fail(call):
            raise ConnectionError(f"sink down (call {call})")
        with self.mu:
            self.batches.append(list(batch))

    @property
    def ids(self) -> list[str]:
        with self.mu:
            return [ev.id for b in self.batches for ev in b]


def add_up(s: TrackerStatistics | ShutdownResult) -> bool:
    extra = s.recovered if isinstance(s, TrackerStatistics) else 0
    queued = s.queue_depth if isinstance(s, TrackerStatistics) else 0
    return s.accepted + extra == s.delivered + s.dead_lettered + s.lost + queued + s.in_flight


def dead_ids(t: Tracker) -> list[str]:
    return [dl.event.id for dl in read_dead_letters(t.dead_letter_path)]


def make(tmp_path: Path, sink: Any, **kw: Any) -> Tracker:
    kw.setdefault("dead_letter", tmp_path / "dead.jsonl")
    return Tracker(sink, **kw)


def wait_until(pred: Callable[[], bool], bound: float = WAIT) -> None:
    deadline = time.monotonic() + bound
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


# -- events --------------------------------------------------------------------------


def test_event_ids_are_unique_time_ordered_uuid7() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}
    ms = [uuid.UUID(i).int >> 80 for i in ids]
    assert ms == sorted(ms)
    assert abs(ms[-1] / 1000 - time.time()) < 60


def test_event_line_round_trips_and_stays_on_one_line() -> None:
    ev = Event.new({"text": "a\nb", "n": [1, 2.5, None]})
    assert "\n" not in ev.line()
    assert Event.from_line(ev.line()) == ev
    assert ev.value() == {"text": "a\nb", "n": [1, 2.5, None]}
    pretty = Event.new({"a": [1, 2]}, encoder=lambda d: json.dumps(d, indent=2))
    assert "\n" not in pretty.data and pretty.value() == {"a": [1, 2]}
    with pytest.raises(ValueError, match="not a tracker event"):
        Event.from_line('{"no": "id"}')


def test_unencodable_data_raises_at_the_call_site_and_is_not_accepted(tmp_path: Path) -> None:
    sink = Collect()
    t = make(tmp_path, sink)
    with pytest.raises(TypeError):
        t.event(BG, {"when": object()})
    with pytest.raises(ValueError):
        t.event(BG, {"x": math.nan})
    bad = make(tmp_path, Collect(), encoder=lambda d: b"bytes", dead_letter=tmp_path / "d2")
    with pytest.raises(TypeError, match="encoder must return str"):
        bad.event(BG, 1)
    for tr in (t, bad):
        g = go(tr.run)
        r = tr.shutdown(timeout=WAIT)
        g.join(timeout=WAIT)
        assert r.accepted == 0 and r.delivered == 0 and r.err is None


# -- sinks ---------------------------------------------------------------------------


def test_jsonl_sink_appends_one_object_per_line_and_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    sink = JsonlSink(path, fsync=True)
    evs = [Event.new({"i": i}) for i in range(5)]
    sink.write(evs[:3])
    os.rename(path, tmp_path / "out" / "events.jsonl.1")
    sink.write(evs[3:])
    sink.close()
    old = [json.loads(x) for x in (tmp_path / "out" / "events.jsonl.1").read_text().splitlines()]
    new = [json.loads(x) for x in path.read_text().splitlines()]
    assert [o["data"]["i"] for o in old] == [0, 1, 2]
    assert [o["data"]["i"] for o in new] == [3, 4]
    assert new[0]["id"] == evs[3].id and new[0]["ts"] == evs[3].ts


def test_jsonl_sink_ends_a_line_cut_short_by_a_crash_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"id":"a","ts":1.0,"data":1}\n{"id":"b","ts":1.0,"da')
    ev = Event.new(2)
    sink = JsonlSink(path)
    sink.write([ev])
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and Event.from_line(lines[2]) == ev


def test_callable_sink_offers_both_forms_for_sync_and_async_functions() -> None:
    got: list[int] = []

    def sync_fn(batch: list[Event]) -> None:
        got.extend(e.value() for e in batch)

    async def async_fn(batch: list[Event]) -> None:
        await asyncio.sleep(0)
        got.extend(e.value() for e in batch)

    s, a = CallableSink(sync_fn), CallableSink(async_fn)
    s.write([Event.new(1)])
    a.write([Event.new(2)])

    async def both() -> None:
        await s.awrite([Event.new(3)])
        await a.awrite([Event.new(4)])

    run_async(both(), timeout=WAIT)
    assert got == [1, 2, 3, 4]
    with pytest.raises(TypeError, match="fn must be callable"):
        CallableSink(42)  # type: ignore[arg-type]


# -- dead-letter file and retry policy -----------------------------------------------


def test_dead_letter_file_round_trips_and_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "dl" / "dead.jsonl"
    dl = DeadLetterFile(path)
    assert not path.exists()  # created on the first dead letter only
    evs = [Event.new({"i": i}) for i in range(3)]
    dl.write(evs, 'sink said "no"')
    dl.close()
    with open(path, "a") as f:
        f.write('{"id":"torn')
    got = list(read_dead_letters(path))
    assert [d.event for d in got] == evs
    assert {d.reason for d in got} == {'sink said "no"'}
    assert list(read_dead_letters(tmp_path / "missing.jsonl")) == []


def test_retry_delays_grow_exponentially_with_bounded_jitter() -> None:
    r = Retry(attempts=5, initial=0.1, multiplier=2, max_delay=1.0, jitter=0.2)
    for n, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (50, 1.0), (5000, 1.0)]:
        for _ in range(50):
            assert base * 0.8 - 1e-9 <= r.delay(n) <= base * 1.2 + 1e-9
    assert not r.gives_up_after(4) and r.gives_up_after(5)
    assert not Retry(attempts=None).gives_up_after(10**9)
    assert Retry(jitter=0).delay(1) == 0.05


@pytest.mark.parametrize(
    "kw",
    [{"attempts": 0}, {"initial": -1}, {"multiplier": 0.5}, {"jitter": 2}, {"max_delay": math.inf}],
)
def test_retry_rejects_impossible_policies(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        Retry(**kw)


# -- spool ---------------------------------------------------------------------------


def test_spool_replays_unacked_events_in_order_after_reopen(tmp_path: Path) -> None:
    evs = [Event.new({"i": i}) for i in range(10)]
    with Spool(tmp_path) as sp:
        for ev in evs:
            sp.append(ev)
        sp.ack(evs[2:5])
        sp.ack([evs[7]])
    with Spool(tmp_path) as sp:
        want = evs[:2] + evs[5:7] + evs[8:]
        assert sp.recovered() == want
        assert sp.statistics().recovered == len(want) and sp.statistics().pending == len(want)
        sp.ack(want)
    with Spool(tmp_path) as sp:
        assert sp.recovered() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LOCK"]


def test_spool_skips_records_cut_short_or_damaged(tmp_path: Path) -> None:
    evs = [Event.new({"i": i}) for i in range(3)]
    with Spool(tmp_path) as sp:
        for ev in evs:
            sp.append(ev)
    (seg,) = tmp_path.glob("seg-*.log")
    lines = seg.read_bytes().splitlines(keepends=True)
    damaged = lines[1].replace(b'"i":1', b'"i":7')
    seg.write_bytes(lines[0] + damaged + lines[2] + b"E 1234abcd torn-rec")
    with Spool(tmp_path) as sp:
        assert sp.recovered() == [evs[0], evs[2]]
        assert sp.statistics().corrupt_records == 2


def test_spool_with_fsync_is_handed_to_a_tracker_that_closes_it(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "sp", fsync=True)
    sink = Collect()
    with make(tmp_path, sink, spool=sp) as t:
        ids = [t.event(BG, i) for i in range(20)]
    assert sink.ids == ids and sp.statistics().pending == 0
    Spool(tmp_path / "sp").close()  # released: another spool may open the directory


def test_spool_directory_is_held_by_one_open_spool(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path)
    sp.close()
    sp.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        sp.append(Event.new(1))
    Spool(tmp_path).close()


def test_spool_rotates_and_deletes_segments_oldest_first_once_acked(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=2_000) as sp:
        evs = [Event.new({"pad": "x" * 100, "i": i}) for i in range(100)]
        for ev in evs:
            sp.append(ev)
        assert sp.statistics().segments > 3
        sp.ack(evs[50:])  # the oldest segments still hold pending events
        assert sp.statistics().segments > 3
        sp.ack(evs[:50])
        assert sp.statistics().segments <= 2
        assert sp.statistics().pending == 0


class SpoolModel(RuleBasedStateMachine):
    """Whatever is appended, acked, and however often the spool is reopened,
    reopening recovers exactly the appended events that were not acked."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="goconc-spool-")
        self.spool = Spool(self.dir, segment_bytes=300)
        self.pending: dict[str, Event] = {}

    @rule(n=st.integers(1, 5))
    def append(self, n: int) -> None:
        for _ in range(n):
            ev = Event.new({"k": "v" * 20})
            self.spool.append(ev)
            self.pending[ev.id] = ev

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(sorted(self.pending)), unique=True, max_size=6))
        self.spool.ack([self.pending.pop(i) for i in ids])

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = Spool(self.dir, segment_bytes=300)
        assert {e.id for e in self.spool.recovered()} == set(self.pending)

    @invariant()
    def pending_matches(self) -> None:
        assert self.spool.statistics().pending == len(self.pending)

    def teardown(self) -> None:
        self.spool.ack(list(self.pending.values()))
        self.spool.close()
        assert sorted(os.listdir(self.dir)) == ["LOCK"]
        os.unlink(os.path.join(self.dir, "LOCK"))
        os.rmdir(self.dir)


SpoolModel.TestCase.settings = settings(max_examples=20, stateful_step_count=25, deadline=None)
test_spool_model = SpoolModel.TestCase


# -- accepting and draining ------------------------------------------------------------


def test_shutdown_drains_100000_accepted_events_with_zero_lost(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    t = make(tmp_path, JsonlSink(path), buffer=1024, batch_size=512)
    g = go(t.run)
    ids = [t.event(BG, {"i": i}) for i in range(100_000)]
    r = t.shutdown(timeout=60)
    g.join(timeout=WAIT)
    assert r.err is None and r.drained
    assert (r.accepted, r.delivered, r.dead_lettered, r.in_flight) == (100_000, 100_000, 0, 0)
    lines = path.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ids  # each once, in order
    assert [json.loads(x)["data"]["i"] for x in lines[:3]] == [0, 1, 2]
    assert add_up(t.statistics())


def test_asyncio_producers_and_worker_drain_everything(tmp_path: Path) -> None:
    sink = Collect()

    async def main() -> tuple[list[str], ShutdownResult]:
        t = make(tmp_path, sink, buffer=64, batch_size=50)
        g = go(t.arun())

        async def produce(k: int) -> list[str]:
            return [await t.aevent(BG, {"p": k, "i": i}) for i in range(2_000)]

        ids = [i for part in await asyncio.gather(*(produce(k) for k in range(4))) for i in part]
        r = await t.ashutdown(timeout=WAIT)
        await g.ajoin(timeout=WAIT)
        return ids, r

    ids, r = run_async(main(), timeout=60)
    assert sorted(sink.ids) == sorted(ids) and len(ids) == 8_000
    assert r.accepted == r.delivered == 8_000 and r.err is None


def test_thread_producers_with_an_asyncio_worker_and_an_async_sink(tmp_path: Path) -> None:
    seen: list[str] = []

    async def store(batch: list[Event]) -> None:
        await asyncio.sleep(0)
        seen.extend(e.id for e in batch)

    t = make(tmp_path, CallableSink(store), buffer=16, batch_size=32)
    worker = go(t.arun())  # on the runtime's loop
    producers = [go(lambda k=k: [t.event(BG, k) for _ in range(1_500)]) for k in range(4)]
    ids = [i for p in producers for i in p.join(timeout=WAIT)]
    r = t.shutdown(timeout=WAIT)
    worker.join(timeout=WAIT)
    assert sorted(seen) == sorted(ids) and r.delivered == 6_000 and add_up(r)


def test_event_with_a_full_buffer_raises_ctx_err_when_the_deadline_passes(tmp_path: Path) -> None:
    t = make(tmp_path, Collect(), buffer=2)  # no worker yet: the buffer fills
    t.event(BG, 1)
    t.event(BG, 2)
    with context.with_timeout(BG, 0.05) as ctx, pytest.raises(DeadlineExceeded):
        t.event(ctx, 3)
    with pytest.raises(TimeoutError):
        t.event(None, 3, timeout=0.01)
    ctx2, cancel = context.with_cancel(BG)
    cancel()
    with pytest.raises(Canceled):
        t.event(ctx2, 3)

    async def async_side() -> None:
        with context.with_timeout(BG, 0.05) as c, pytest.raises(DeadlineExceeded):
            await t.aevent(c, 4)

    run_async(async_side(), timeout=WAIT)
    assert t.statistics().accepted == 2
    g = go(t.run)
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    assert (r.accepted, r.delivered) == (2, 2)


def test_event_after_shutdown_began_raises_tracker_closed(tmp_path: Path) -> None:
    t = make(tmp_path, Collect(), buffer=1)
    t.event(BG, "queued")
    blocked = go(t.event, BG, "waiting")  # parked: the buffer is full
    wait_until(lambda: t._ch.statistics().senders_waiting == 1)
    g = go(t.run)
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    try:
        blocked.join(timeout=WAIT)  # either it got in before close, or it was refused
        accepted = 2
    except TrackerClosed:
        accepted = 1
    assert r.accepted == r.delivered == accepted
    with pytest.raises(TrackerClosed):
        t.event(BG, "late")
    with pytest.raises(TrackerClosed):
        run_async(t.aevent(BG, "late"), timeout=WAIT)
    assert not t.accepting()


def test_sink_failures_are_retried_with_backoff_then_delivered(tmp_path: Path) -> None:
    sink = Collect(fail=lambda call: call <= 3)
    t = make(tmp_path, sink, retry=Retry(attempts=10, initial=0.001, max_delay=0.005))
    g = go(t.run)
    ids = [t.event(BG, i) for i in range(10)]
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    s = t.statistics()
    assert sorted(sink.ids) == sorted(ids)
    assert s.sink_errors == 3 and s.retried >= 3 and s.delivered == 10 and s.dead_lettered == 0
    assert r.drained and dead_ids(t) == []


def test_a_batch_the_sink_keeps_refusing_is_dead_lettered_and_later_ones_delivered(
    tmp_path: Path,
) -> None:
    sink = Collect(fail=lambda call: call <= 2)
    t = make(tmp_path, sink, batch_size=100, retry=Retry(attempts=2, initial=0.001))
    first = [t.event(BG, i) for i in range(5)]  # queued before the worker: one batch
    g = go(t.run)
    wait_until(lambda: t.statistics().dead_lettered == 5)
    later = [t.event(BG, i) for i in range(5)]
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    assert dead_ids(t) == first
    assert sink.ids == later
    assert (r.accepted, r.delivered, r.dead_lettered) == (10, 5, 5) and add_up(r)
    (dl,) = {d.reason for d in read_dead_letters(t.dead_letter_path)}
    assert "sink failed 2 times" in dl and "ConnectionError" in dl


def test_shutdown_deadline_dead_letters_the_rest_and_counts_add_up_exactly(
    tmp_path: Path,
) -> None:
    sink = Collect(fail=lambda call: call > 3)  # three batches, then the sink is down
    t = make(tmp_path, sink, buffer=500, batch_size=10, retry=FAST_RETRY)
    ids = [t.event(BG, i) for i in range(200)]
    g = go(t.run)
    with context.with_timeout(BG, 0.3) as ctx:
        r = t.shutdown(ctx)
    g.join(timeout=WAIT)
    assert isinstance(r.err, DeadlineExceeded)
    assert r.in_flight == 0 and r.lost == 0
    assert (r.accepted, r.delivered, r.dead_lettered) == (200, 30, 170)
    assert sink.ids == ids[:30]
    assert dead_ids(t) == ids[30:]
    assert add_up(t.statistics()) and t.statistics().sink_errors > 0
    assert not r.drained


def test_a_sink_call_in_progress_at_the_deadline_is_reported_in_flight(tmp_path: Path) -> None:
    gate: Chan[None] = Chan()
    sink = Collect(gate=gate)
    t = make(tmp_path, sink, buffer=100, batch_size=10)
    ids = [t.event(BG, i) for i in range(35)]
    g = go(t.run)
    sink.entered.recv(timeout=WAIT)  # the worker is inside the first sink call
    r = t.shutdown(timeout=0.05)
    assert isinstance(r.err, TimeoutError)
    assert r.accepted == 35 and r.delivered == 0 and r.in_flight == 35 and add_up(r)
    gate.close()  # the sink call returns: its batch is delivered, the rest dead-lettered
    g.join(timeout=WAIT)
    s = t.statistics()
    assert (s.delivered, s.dead_lettered, s.in_flight) == (10, 25, 0)
    assert sink.ids == ids[:10] and dead_ids(t) == ids[10:]


def test_shutdown_without_a_worker_dead_letters_everything_at_the_deadline(
    tmp_path: Path,
) -> None:
    t = make(tmp_path, Collect(), buffer=10)
    ids = [t.event(BG, i) for i in range(7)]
    r = t.shutdown(timeout=0.05)
    assert (r.accepted, r.delivered, r.dead_lettered, r.in_flight) == (7, 0, 7, 0)
    assert dead_ids(t) == ids
    t.run()  # nothing left to do: returns at once
    assert t.shutdown(timeout=0).err is None


def test_events_that_cannot_be_dead_lettered_are_logged_and_counted_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")  # a file where the dead-letter directory should be
    sink = Collect(fail=lambda call: True)
    t = Tracker(sink, dead_letter=tmp_path / "file" / "dead.jsonl", retry=Retry(attempts=1))
    with caplog.at_level(logging.ERROR, logger="goconc.tracker"):
        ids = [t.event(BG, i) for i in range(3)]
        g = go(t.run)
        r = t.shutdown(timeout=WAIT)
        g.join(timeout=WAIT)
    assert (r.accepted, r.delivered, r.dead_lettered, r.lost) == (3, 0, 0, 3) and add_up(r)
    assert all(i in caplog.text for i in ids)  # the last record of these events is the log


def test_events_are_batched_by_size_and_by_time(tmp_path: Path) -> None:
    sink = Collect()
    t = make(tmp_path, sink, buffer=1000, batch_size=7, flush_interval=0.05)
    for i in range(20):
        t.event(BG, i)
    g = go(t.run)
    wait_until(lambda: len(sink.ids) >= 14)
    with sink.mu:
        assert [len(b) for b in sink.batches[:2]] == [7, 7]
    t.event(BG, "alone")
    wait_until(lambda: "alone" in [e.value() for b in sink.batches for e in b])  # by time
    t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    assert all(len(b) <= 7 for b in sink.batches) and len(sink.ids) == 21


def test_statistics_are_registered_with_the_runtime_while_the_tracker_lives(
    tmp_path: Path,
) -> None:
    t = make(tmp_path, Collect(), name="stats-test")
    t.event(BG, 1)
    assert runtime.statistics()["tracker:stats-test"] == t.statistics()
    with pytest.raises(ValueError, match="already registered"):
        make(tmp_path, Collect(), name="stats-test")
    g = go(t.run)
    t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    assert "tracker:stats-test" not in runtime.statistics()
    assert t.statistics().delivered == 1


def test_tracker_is_an_app_server_with_start_stop_ready_and_endpoint(tmp_path: Path) -> None:
    sink = Collect()
    t = make(tmp_path, sink)
    assert not t.accepting() and t.endpoint() is None
    assert select(t.ready, default=True).index == -1
    g = go(t.start, BG)
    t.ready.recv_ok(timeout=WAIT)  # closed once the worker runs
    assert t.accepting()
    t.event(BG, "x")
    with pytest.raises(RuntimeError, match="already running"):
        t.run()
    r = t.stop(BG)
    g.join(timeout=WAIT)
    assert r.delivered == 1 and not t.accepting()


def test_an_app_runs_the_tracker_as_a_server_and_drains_it_at_stop(tmp_path: Path) -> None:
    from goconc.app import App

    sink = Collect()
    t = make(tmp_path, sink)
    app = App(name="svc", servers=[t], signals=[], stop_timeout=WAIT)
    runner = go(app.run)
    app.ready.recv_ok(timeout=WAIT)
    ids = [t.event(BG, i) for i in range(500)]
    app.stop()
    runner.join(timeout=WAIT)
    assert sink.ids == ids and app.endpoints == ()
    assert t.statistics().closed and add_up(t.statistics())


def test_start_context_ending_begins_a_graceful_shutdown(tmp_path: Path) -> None:
    sink = Collect()
    t = make(tmp_path, sink)
    ctx, cancel = context.with_cancel(BG)

    async def main() -> None:
        g = go(t.astart(ctx))
        await t.aevent(BG, "x")
        cancel()
        await g.ajoin(timeout=WAIT)
        r = await t.astop(BG)
        assert r.delivered == 1 and r.err is None

    run_async(main(), timeout=WAIT)
    assert sink.ids and t.statistics().closed


def test_with_blocks_run_the_worker_and_drain_on_exit(tmp_path: Path) -> None:
    sink = Collect()
    with make(tmp_path, sink) as t:
        ids = [t.event(BG, i) for i in range(100)]
    assert sink.ids == ids

    async def main() -> list[str]:
        async with make(tmp_path, sink, dead_letter=tmp_path / "d2") as t2:
            return [await t2.aevent(BG, i) for i in range(100)]

    ids2 = run_async(main(), timeout=WAIT)
    assert sink.ids == ids + ids2


class Stop(BaseException):
    """Not an Exception: stops the worker instead of being retried."""


def test_a_worker_stopped_by_an_exception_keeps_its_events_for_the_next_run(
    tmp_path: Path,
) -> None:
    calls = []

    def sink(batch: list[Event]) -> None:
        calls.append([e.id for e in batch])
        if len(calls) == 1:
            raise Stop

    t = make(tmp_path, CallableSink(sink), batch_size=100)
    ids = [t.event(BG, i) for i in range(5)]
    with pytest.raises(Stop):
        t.run()
    assert t.statistics().in_flight == 5 and add_up(t.statistics())
    g = go(t.run)
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    assert calls == [ids, ids] and r.delivered == 5


def test_spool_keeps_accepted_events_across_an_abandoned_tracker(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    first = make(tmp_path, Collect(), spool=spool, buffer=100)
    ids = [first.event(BG, i) for i in range(50)]
    assert first.spool is not None
    first.spool.close()  # the process "dies": no worker ever ran, the spool is let go
    sink = Collect()
    second = make(tmp_path, sink, spool=spool, batch_size=16, dead_letter=tmp_path / "d2")
    assert second.statistics().recovered == 50
    g = go(second.run)
    second.event(BG, "new")
    r = second.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    assert sink.ids[:50] == ids and len(sink.ids) == 51
    assert r.delivered == 51 and add_up(second.statistics())
    assert sorted(os.listdir(spool)) == ["LOCK"]  # everything acked: segments removed


def test_refused_events_are_not_replayed_by_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    t = make(tmp_path, Collect(), spool=spool, buffer=1)
    t.event(BG, "in")
    with pytest.raises(TimeoutError):
        t.event(BG, "refused", timeout=0.01)
    assert t.spool is not None
    t.spool.close()
    with Spool(spool) as sp:
        assert [e.value() for e in sp.recovered()] == ["in"]
        sp.ack(sp.recovered())


def test_bad_arguments_raise_naming_the_argument(tmp_path: Path) -> None:
    for kw, exc, word in [
        ({"buffer": -1}, ValueError, "buffer"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"flush_interval": -1}, ValueError, "flush_interval"),
        ({"buffer": 1.5}, TypeError, "buffer"),
        ({"retry": 3}, TypeError, "retry"),
        ({"spool": 3}, TypeError, "spool"),
        ({"name": ""}, ValueError, "name"),
    ]:
        with pytest.raises(exc, match=word):
            make(tmp_path, Collect(), **kw)
    with pytest.raises(TypeError, match="sink"):
        Tracker(object())  # type: ignore[arg-type]
    t = make(tmp_path, Collect())
    with pytest.raises(ValueError, match="timeout"):
        t.shutdown(timeout=-1)
    t.shutdown(timeout=0)


def test_default_dead_letter_file_sits_next_to_the_jsonl_file(tmp_path: Path) -> None:
    t = Tracker(JsonlSink(tmp_path / "events.jsonl"))
    assert t.dead_letter_path == tmp_path / "events.dead-letter.jsonl"
    t.shutdown(timeout=0)
    t2 = Tracker(Collect(), spool=tmp_path / "sp")
    assert t2.dead_letter_path == tmp_path / "sp" / "dead-letter.jsonl"
    t2.shutdown(timeout=0)


def test_sink_failures_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = Collect(fail=lambda call: call == 1)
    t = make(tmp_path, sink, retry=Retry(initial=0.001))
    with caplog.at_level(logging.WARNING, logger="goconc.tracker"):
        g = go(t.run)
        t.event(BG, 1)
        t.shutdown(timeout=WAIT)
        g.join(timeout=WAIT)
    assert "sink failed" in caplog.text and "retrying 1 events" in caplog.text


# -- properties ---------------------------------------------------------------------


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(0, 60),
    failures=st.lists(st.booleans(), max_size=12),
    batch_size=st.integers(1, 16),
    buffer=st.integers(0, 8),
    attempts=st.integers(1, 3),
)
def test_every_accepted_event_is_delivered_or_dead_lettered_exactly_once(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    failures: list[bool],
    batch_size: int,
    buffer: int,
    attempts: int,
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    sink = Collect(fail=lambda call: call <= len(failures) and failures[call - 1])
    t = make(
        tmp,
        sink,
        buffer=buffer,
        batch_size=batch_size,
        flush_interval=0.001,
        retry=Retry(attempts=attempts, initial=0.0005, max_delay=0.001),
    )
    g = go(t.run)
    ids = [t.event(BG, i, timeout=WAIT) for i in range(n)]
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    delivered, dead = sink.ids, dead_ids(t)
    assert sorted(delivered + dead) == sorted(ids)
    assert (r.delivered, r.dead_lettered, r.accepted) == (len(delivered), len(dead), n)
    assert add_up(t.statistics())


def test_many_producer_threads_lose_nothing(tmp_path: Path) -> None:
    sink = Collect()
    t = make(tmp_path, sink, buffer=8, batch_size=20, flush_interval=0.001)
    g = go(t.run)
    producers = [go(lambda k=k: [t.event(BG, (k, i)) for i in range(2_500)]) for k in range(4)]
    ids = [i for p in producers for i in p.join(timeout=30)]
    r = t.shutdown(timeout=WAIT)
    g.join(timeout=WAIT)
    assert len(set(ids)) == 10_000 and sorted(sink.ids) == sorted(ids)
    assert r.accepted == r.delivered == 10_000


def test_every_statistics_snapshot_adds_up_while_events_flow(tmp_path: Path) -> None:
    sink = Collect(fail=lambda call: call % 3 == 0)
    t = make(tmp_path, sink, buffer=16, batch_size=8, flush_interval=0.001, retry=FAST_RETRY)
    stop: Chan[None] = Chan()
    snapshots: list[TrackerStatistics] = []

    def sampler() -> None:
        while True:
            snapshots.append(t.statistics())
            try:
                stop.recv_ok(timeout=0.0002)
                return
            except TimeoutError:
                pass

    watcher = go(sampler)
    g = go(t.run)
    producers = [go(lambda k=k: [t.event(BG, (k, i)) for i in range(1_000)]) for k in range(3)]
    for p in producers:
        p.join(timeout=30)
    with context.with_timeout(BG, 0.2) as ctx:
        t.shutdown(ctx)
    g.join(timeout=WAIT)
    stop.close()
    watcher.join(timeout=WAIT)
    snapshots.append(t.statistics())
    assert len(snapshots) > 10
    assert [s for s in snapshots if not add_up(s)] == []
    final = snapshots[-1]
    assert final.accepted == 3_000 and final.in_flight == final.queue_depth == 0


@pytest.fixture(autouse=True)
def _no_stray_files(tmp_path: Path) -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a default dead-letter path lands here, not in the repository
    try:
        yield
    finally:
        os.chdir(cwd)
