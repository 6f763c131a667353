"""goconc.time: after, tick, after_func and sleep, served by one timer facility."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
import weakref

import pytest

from conftest import WAIT, run_async
from goconc import Chan, ChanClosed, _timers, aselect, context, select
from goconc import time as gtime

pytestmark = pytest.mark.goconc_leaks

BG = context.background()


def timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == _timers.THREAD_NAME]


# -- after -------------------------------------------------------------------------


def test_after_delivers_the_firing_time_once() -> None:
    t0 = time.monotonic()
    ch = gtime.after(0.03)
    assert len(ch) == 0 and ch.cap == 1
    fired = ch.recv(timeout=WAIT)
    assert t0 + 0.03 <= fired <= time.monotonic()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.05)


def test_after_zero_is_ready_at_once() -> None:
    ch = gtime.after(0)
    assert select(ch, default=True).index == 0


def test_after_is_a_select_case_for_threads_and_tasks() -> None:
    never: Chan[int] = Chan()
    assert select(never, gtime.after(0.02), timeout=WAIT).index == 1

    async def main() -> int:
        return (await aselect(never, gtime.after(0.02), timeout=WAIT)).index

    assert run_async(main()) == 1


def test_after_on_a_channel_closed_by_its_receiver_is_harmless() -> None:
    ch = gtime.after(0.02)
    ch.close()
    time.sleep(0.05)
    assert ch.recv_ok(timeout=WAIT) == (None, False)


def test_bad_durations_raise_naming_the_argument() -> None:
    for bad in (-1, -0.001, math.nan):
        with pytest.raises(ValueError, match="seconds"):
            gtime.after(bad)
        with pytest.raises(ValueError, match="seconds"):
            gtime.after_func(bad, lambda: None)
        with pytest.raises(ValueError, match="seconds"):
            gtime.sleep(bad)
        with pytest.raises(ValueError, match="seconds"):
            gtime.tick(bad)
    for bad in (0, math.inf):
        with pytest.raises(ValueError, match="seconds"):
            gtime.tick(bad)
    with pytest.raises(TypeError, match="seconds"):
        gtime.after("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seconds"):
        gtime.after(True)
    with pytest.raises(TypeError, match="fn"):
        gtime.after_func(1, "not callable")  # type: ignore[arg-type]


# -- tick --------------------------------------------------------------------------


def test_ticker_is_a_channel_of_increasing_tick_times() -> None:
    ticker = gtime.tick(0.02)
    try:
        assert isinstance(ticker, Chan) and ticker.cap == 1
        t0 = time.monotonic()
        times = []
        for t in ticker:
            times.append(t)
            if len(times) == 3:
                break
        assert times == sorted(times) and times[0] >= t0 - 0.02
        assert times[-1] - times[0] >= 0.02
    finally:
        ticker.stop()


def test_ticker_iterates_in_asyncio() -> None:
    async def main() -> int:
        ticker = gtime.tick(0.01)
        n = 0
        try:
            async for _ in ticker:
                n += 1
                if n == 3:
                    break
        finally:
            ticker.stop()
        return n

    assert run_async(main()) == 3


def test_stopped_ticker_sends_nothing_more_not_even_a_buffered_tick() -> None:
    ticker = gtime.tick(0.01)
    time.sleep(0.05)  # a tick is buffered by now
    ticker.stop()
    assert len(ticker) == 0
    with pytest.raises(TimeoutError):
        ticker.recv(timeout=0.1)
    ticker.stop()  # idempotent


def test_a_slow_receiver_misses_ticks_and_they_are_counted() -> None:
    ticker = gtime.tick(0.01)
    try:
        time.sleep(0.15)
        deadline = time.monotonic() + WAIT
        while ticker.dropped < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ticker.dropped >= 3
        assert len(ticker) == 1
        ticker.recv(timeout=WAIT)
        ticker.recv(timeout=WAIT)  # ticking goes on after the drops
    finally:
        ticker.stop()


def test_reset_changes_the_period_and_restarts_a_stopped_ticker() -> None:
    ticker = gtime.tick(1000)
    try:
        ticker.reset(0.01)
        assert ticker.period == 0.01
        ticker.recv(timeout=WAIT)
        ticker.stop()
        ticker.reset(0.01)
        ticker.recv(timeout=WAIT)
        with pytest.raises(ValueError, match="seconds"):
            ticker.reset(0)
    finally:
        ticker.stop()


def test_ticker_ends_when_its_channel_is_closed() -> None:
    ticker = gtime.tick(0.01)
    ticker.close()
    deadline = time.monotonic() + WAIT  # its next firing finds the channel closed
    while "stopped" not in repr(ticker):
        assert time.monotonic() < deadline, repr(ticker)
        time.sleep(0.005)
    with pytest.raises(ChanClosed):
        ticker.recv(timeout=WAIT)


def test_an_unreferenced_ticker_is_collected_and_stops() -> None:
    ticker = gtime.tick(0.01)
    ref = weakref.ref(ticker)
    del ticker
    gc.collect()
    assert ref() is None
    time.sleep(0.03)  # its pending firing finds nothing and schedules nothing more


# -- after_func --------------------------------------------------------------------


def test_after_func_runs_fn_in_its_own_goroutine() -> None:
    ran = threading.Event()
    where: list[int] = []

    def fn() -> None:
        where.append(threading.get_ident())
        ran.set()

    t0 = time.monotonic()
    timer = gtime.after_func(0.02, fn)
    assert ran.wait(WAIT)
    assert time.monotonic() - t0 >= 0.02
    timer_idents = {t.ident for t in timer_threads()}
    assert where[0] != threading.get_ident() and where[0] not in timer_idents
    assert timer.stop() is False


def test_after_func_stop_prevents_the_call() -> None:
    ran = threading.Event()
    for _ in range(10):
        t0 = time.monotonic()
        timer = gtime.after_func(0.1, ran.set)
        stopped = timer.stop()
        if time.monotonic() - t0 < 0.1:
            break  # stopped before it was due (else this thread was held up: try again)
    assert stopped is True
    assert timer.stop() is False
    assert not ran.wait(0.2)  # past the time it was due


def test_after_func_reset_of_a_pending_timer_postpones_the_call() -> None:
    calls: list[float] = []
    done = threading.Event()

    def fn() -> None:
        calls.append(time.monotonic())
        done.set()

    timer = gtime.after_func(1000, fn)
    t0 = time.monotonic()
    assert timer.reset(0.02) is True
    assert done.wait(WAIT)
    assert calls[0] - t0 >= 0.02
    done.clear()
    assert timer.reset(0.01) is False  # it had run: runs again
    assert done.wait(WAIT)
    assert len(calls) == 2


def test_after_func_accepts_a_coroutine_function() -> None:
    ran = threading.Event()

    async def fn() -> None:
        await asyncio.sleep(0)
        ran.set()

    gtime.after_func(0, fn)
    assert ran.wait(WAIT)


# -- sleep -------------------------------------------------------------------------


def test_sleep_waits_at_least_the_duration() -> None:
    t0 = time.monotonic()
    gtime.sleep(0.03)
    assert time.monotonic() - t0 >= 0.03
    gtime.sleep(0)


def test_sleep_ends_early_with_the_context_error() -> None:
    ctx, cancel = context.with_cancel(BG)
    threading.Timer(0.02, cancel).start()
    t0 = time.monotonic()
    with pytest.raises(context.Canceled):
        gtime.sleep(WAIT, ctx=ctx)
    assert time.monotonic() - t0 < WAIT
    timed, cancel_timed = context.with_timeout(BG, 0.02)
    with pytest.raises(context.DeadlineExceeded):
        gtime.sleep(WAIT, ctx=timed)
    cancel_timed()


def test_asleep_waits_and_honours_its_context() -> None:
    async def main() -> None:
        t0 = time.monotonic()
        await gtime.asleep(0.02)
        assert time.monotonic() - t0 >= 0.02
        ctx, cancel = context.with_timeout(BG, 0.02)
        with pytest.raises(context.DeadlineExceeded):
            await gtime.asleep(WAIT, ctx=ctx)
        cancel()
        with pytest.raises(ValueError, match="seconds"):
            await gtime.asleep(-1)

    run_async(main())


# -- the facility ------------------------------------------------------------------


def test_many_timers_share_one_thread() -> None:
    before = threading.active_count()
    chans = [gtime.after(0.01 + i * 1e-5) for i in range(500)]
    stopped = [gtime.after_func(1000, lambda: None) for _ in range(200)]
    tickers = [gtime.tick(0.01) for _ in range(50)]
    pairs = [context.with_timeout(BG, 0.01) for _ in range(200)]
    try:
        for ch in chans:
            ch.recv(timeout=WAIT)
        for ctx, _ in pairs:
            ctx.done.recv_ok(timeout=WAIT)
        for t in tickers:
            t.recv(timeout=WAIT)
        assert len(timer_threads()) == 1
        assert gtime.statistics().thread_alive
        assert threading.active_count() <= before + 2  # the timer thread, at most once
    finally:
        for t in tickers:
            t.stop()
        for timer in stopped:
            timer.stop()


def test_cancelled_timers_are_purged_from_the_heap() -> None:
    handles = [_timers.call_at(time.monotonic() + 1000, lambda: None) for _ in range(2000)]
    assert all(h.cancel() for h in handles)
    assert not any(h.cancel() for h in handles)
    assert _timers.statistics().pending < 100
    assert len(_timers._facility.heap) < 1000


def test_timers_fire_in_deadline_order() -> None:
    order: list[int] = []
    done = threading.Event()
    now = time.monotonic()
    for i in reversed(range(5)):
        _timers.call_at(now + 0.01 * (i + 1), lambda i=i: order.append(i))
    _timers.call_at(now + 0.08, done.set)
    assert done.wait(WAIT)
    assert order == [0, 1, 2, 3, 4]


def test_a_failing_callback_is_logged_and_the_facility_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad() -> None:
        raise RuntimeError("timer boom")

    done = threading.Event()
    with caplog.at_level(logging.ERROR, logger="goconc.time"):
        _timers.call_at(time.monotonic(), bad)
        _timers.call_at(time.monotonic() + 0.01, done.set)
        assert done.wait(WAIT)
    assert "timer boom" in caplog.text
    assert _timers.statistics().thread_alive
    with pytest.raises(ValueError, match="NaN"):
        _timers.call_at(math.nan, bad)
