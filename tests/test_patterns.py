"""Patterns: each works, and every goroutine it starts ends with its inputs or its ctx."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import WAIT, run_async
from goconc import Chan, ChanClosed, context, errgroup, runtime
from goconc.patterns import (
    Dropper,
    afirst,
    aparallel_map,
    awith_timeout,
    drop,
    drop_statistics,
    fan_in,
    fan_out,
    first,
    generate,
    map_stage,
    or_done,
    parallel_map,
    with_timeout,
)
from goconc.testing import no_leaks

pytestmark = pytest.mark.goconc_leaks


class Boom(Exception):
    pass


def cancelled_ctx() -> context.Context:
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    return ctx


def drain(ch: Chan[Any]) -> list[Any]:
    out: list[Any] = []
    while True:
        v, ok = ch.recv_ok(timeout=WAIT)
        if not ok:
            return out
        out.append(v)


@pytest.fixture
def panics() -> Iterator[list[BaseException]]:
    seen: list[BaseException] = []
    prev = runtime.set_panic_handler(lambda g, e: seen.append(e))
    try:
        yield seen
    finally:
        runtime.set_panic_handler(prev)


# -- with_timeout -----------------------------------------------------------------------------


def test_with_timeout_returns_the_result_in_time() -> None:
    assert with_timeout(WAIT, lambda ctx, x: x * 2, 21) == 42


def test_with_timeout_raises_deadline_exceeded_and_the_call_stops_through_its_ctx() -> None:
    seen: list[BaseException | None] = []
    gave_up = threading.Event()

    def slow(ctx: context.Context) -> None:
        ctx.done.recv_ok(timeout=WAIT)
        seen.append(ctx.err())
        # Return only once the caller has given up: an outcome delivered while the
        # deadline fires may rightly win (as in Go's select), which is not this test.
        gave_up.wait(WAIT)

    with no_leaks(), pytest.raises(context.DeadlineExceeded):
        try:
            with_timeout(0.01, slow)
        finally:
            gave_up.set()
    assert len(seen) == 1 and isinstance(seen[0], context.DeadlineExceeded)


def test_with_timeout_never_leaves_the_late_sender_blocked() -> None:
    release = threading.Event()

    def ignores_ctx(ctx: context.Context) -> str:
        release.wait(WAIT)  # does not look at ctx: finishes after the caller gave up
        return "late"

    # the late goroutine delivers into its buffer and exits
    with no_leaks(), pytest.raises(TimeoutError):
        try:
            with_timeout(0.005, ignores_ctx)
        finally:
            release.set()


def test_with_timeout_propagates_the_call_error() -> None:
    def fails(ctx: context.Context) -> None:
        raise Boom("x")

    with pytest.raises(Boom):
        with_timeout(WAIT, fails)


def test_with_timeout_raises_the_parent_error() -> None:
    with pytest.raises(context.Canceled):
        with_timeout(WAIT, lambda ctx: None, ctx=cancelled_ctx())


def test_awith_timeout_cancels_asyncio_code_that_ignores_goconc() -> None:
    async def main() -> None:
        async def sleeper(ctx: context.Context) -> None:
            await asyncio.sleep(WAIT)

        async def quick(ctx: context.Context, x: int) -> int:
            return x + 1

        assert await awith_timeout(WAIT, quick, 1) == 2
        t0 = time.monotonic()
        with pytest.raises(context.DeadlineExceeded):
            await awith_timeout(0.01, sleeper)
        assert time.monotonic() - t0 < WAIT / 2

    run_async(main())


def test_awith_timeout_runs_a_plain_function_on_a_thread() -> None:
    async def main() -> None:
        gave_up = threading.Event()

        def blocking(ctx: context.Context) -> str:
            ctx.done.recv_ok(timeout=WAIT)
            gave_up.wait(WAIT)  # returns only once the caller has given up
            return "unreached"

        assert await awith_timeout(WAIT, lambda ctx: "ok") == "ok"
        async with no_leaks():
            with pytest.raises(TimeoutError):
                try:
                    await awith_timeout(0.01, blocking)
                finally:
                    gave_up.set()

    run_async(main())


# -- first (moving on) ------------------------------------------------------------------------


def test_first_returns_the_fastest_success_and_cancels_the_rest() -> None:
    cancelled: list[str] = []

    def replica(name: str, delay: float) -> Any:
        def query(ctx: context.Context) -> str:
            if delay:
                ctx.done.recv_ok(timeout=delay)
                if ctx.err() is not None:
                    cancelled.append(name)
            return name

        return query

    with no_leaks():
        got = first(None, replica("slow-a", WAIT), replica("fast", 0), replica("slow-b", WAIT))
    assert got == "fast"
    assert sorted(cancelled) == ["slow-a", "slow-b"]


def test_first_skips_failures() -> None:
    def fails(ctx: context.Context) -> str:
        raise Boom("fast failure")

    def works(ctx: context.Context) -> str:
        time.sleep(0.01)
        return "ok"

    assert first(context.background(), fails, works) == "ok"


def test_first_raises_every_error_when_all_fail() -> None:
    def fails(i: int) -> Any:
        def fn(ctx: context.Context) -> None:
            raise Boom(i)

        return fn

    with pytest.raises(ExceptionGroup) as info:
        first(None, fails(1), fails(2), fails(3))
    assert sorted(e.args[0] for e in info.value.exceptions) == [1, 2, 3]


def test_first_raises_when_its_ctx_ends() -> None:
    gave_up = threading.Event()

    def waits(ctx: context.Context) -> None:
        ctx.done.recv_ok(timeout=WAIT)
        gave_up.wait(WAIT)  # succeeds only once first() has given up: nothing to race with

    ctx, cancel = context.with_timeout(context.background(), 0.01)
    with no_leaks(), pytest.raises(context.DeadlineExceeded):
        try:
            first(ctx, waits, waits)
        finally:
            gave_up.set()
    cancel()


def test_first_rejects_no_functions() -> None:
    with pytest.raises(ValueError):
        first(None)
    with pytest.raises(TypeError):
        first(None, 3)  # type: ignore[call-overload]


def test_afirst_cancels_losing_tasks_through_scope() -> None:
    async def main() -> str:
        async def slow(ctx: context.Context) -> str:
            await asyncio.sleep(WAIT)
            return "slow"

        async def fast(ctx: context.Context) -> str:
            await asyncio.sleep(0.001)
            return "fast"

        async with no_leaks():
            return await afirst(None, slow, fast, slow)

    assert run_async(main()) == "fast"


# -- generate ---------------------------------------------------------------------------------


def test_generate_sends_every_item_then_closes() -> None:
    assert drain(generate(range(5))) == [0, 1, 2, 3, 4]
    assert drain(generate([], cap=3)) == []


def test_generate_stops_when_its_ctx_ends_even_if_nobody_reads() -> None:
    ctx, cancel = context.with_cancel(context.background())
    with no_leaks():
        ch = generate(range(10**9), ctx=ctx)
        assert ch.recv(timeout=WAIT) == 0
        cancel()
    assert drain(ch) in ([], [1])  # closed; at most a value already in flight


def test_generate_from_an_async_iterable() -> None:
    async def items() -> AsyncIterator[int]:
        for i in range(3):
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        return [v async for v in generate(items())]

    assert run_async(main()) == [0, 1, 2]


def test_generate_closes_its_channel_when_the_items_raise(panics: list[BaseException]) -> None:
    def items() -> Iterator[int]:
        yield 1
        raise Boom("source broke")

    assert drain(generate(items())) == [1]
    deadline = time.monotonic() + WAIT
    while not panics and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(panics) == 1 and isinstance(panics[0], Boom)


def test_generate_rejects_a_non_iterable() -> None:
    with pytest.raises(TypeError):
        generate(5)  # type: ignore[arg-type]


# -- map_stage and pipelines ------------------------------------------------------------------


def test_map_stage_maps_every_value_and_closes_after_the_input() -> None:
    out = map_stage(lambda x: x * x, generate(range(20)), workers=4)
    assert sorted(drain(out)) == [x * x for x in range(20)]


def test_map_stage_with_one_worker_keeps_order() -> None:
    assert drain(map_stage(str, generate(range(10)))) == [str(i) for i in range(10)]


def test_a_pipeline_of_stages_stops_entirely_when_its_ctx_ends() -> None:
    ctx, cancel = context.with_cancel(context.background())
    with no_leaks():
        nums = generate(range(10**9), ctx=ctx)
        sq = map_stage(lambda x: x * x, nums, workers=3, ctx=ctx)
        plus = map_stage(lambda x: x + 1, sq, workers=2, ctx=ctx)
        assert plus.recv(timeout=WAIT) >= 1
        cancel()  # the consumer walks away; every stage must end
        drain(plus)


def test_map_stage_error_in_a_group_becomes_the_group_error() -> None:
    def parse(x: int) -> int:
        if x == 5:
            raise Boom(x)
        return x

    g, ctx = errgroup.with_context(context.background())
    with no_leaks():
        nums = generate(range(10**9), ctx=ctx)
        out = map_stage(parse, nums, workers=3, group=g)
        drain(out)  # closed once the stage stopped
        err = g.wait(timeout=WAIT)
    assert isinstance(err, Boom)
    assert ctx.err() is not None


def test_map_stage_error_without_a_group_goes_to_the_panic_handler(
    panics: list[BaseException],
) -> None:
    def parse(x: int) -> int:
        if x == 3:
            raise Boom(x)
        return x

    src: Chan[int] = Chan()
    with no_leaks():
        out = map_stage(parse, src, workers=2)
        for i in range(4):
            src.send(i, timeout=WAIT)
            if i < 3:
                assert out.recv(timeout=WAIT) == i
        drain(out)  # the stage stopped: its other worker too, though src is open
    assert len(panics) == 1 and isinstance(panics[0], Boom)


def test_map_stage_with_coroutine_workers() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def main() -> list[int]:
        out = map_stage(double, generate(range(10)), workers=3)
        return sorted([v async for v in out])

    assert run_async(main()) == [2 * x for x in range(10)]


def test_map_stage_rejects_bad_arguments() -> None:
    ch: Chan[int] = Chan()
    with pytest.raises(ValueError):
        map_stage(str, ch, workers=0)
    with pytest.raises(TypeError):
        map_stage(str, [1, 2], workers=1)  # type: ignore[call-overload]


# -- fan_in -----------------------------------------------------------------------------------


def test_fan_in_merges_every_input_keeping_each_input_order() -> None:
    a = generate([("a", i) for i in range(50)])
    b = generate([("b", i) for i in range(50)])
    c = generate([("c", i) for i in range(50)])
    got = drain(fan_in(a, b, c))
    assert len(got) == 150
    for name in "abc":
        assert [i for n, i in got if n == name] == list(range(50))


def test_fan_in_of_nothing_is_closed() -> None:
    assert drain(fan_in()) == []


def test_fan_in_stops_when_its_ctx_ends() -> None:
    never: Chan[int] = Chan()
    ctx, cancel = context.with_cancel(context.background())
    with no_leaks():
        merged = fan_in(never, generate(range(3), ctx=ctx), ctx=ctx)
        assert merged.recv(timeout=WAIT) in range(3)
        cancel()
        drain(merged)


# -- fan_out ----------------------------------------------------------------------------------


def test_fan_out_spreads_the_work_over_n_workers() -> None:
    mu = threading.Lock()
    seen: list[int] = []
    barrier = threading.Barrier(4, timeout=WAIT)

    def handle(v: int) -> None:
        if v < 4:
            barrier.wait()  # passes only if 4 workers run at once
        with mu:
            seen.append(v)

    src = generate(range(40))
    g = fan_out(src, 4, handle)
    assert g.wait(timeout=WAIT) is None
    assert sorted(seen) == list(range(40))


def test_fan_out_failure_stops_the_other_workers() -> None:
    src: Chan[int] = Chan()  # never closed

    def handle(v: int) -> None:
        raise Boom(v)

    with no_leaks():
        g = fan_out(src, 3, handle)
        src.send(7, timeout=WAIT)
        err = g.wait(timeout=WAIT)
    assert isinstance(err, Boom)


def test_fan_out_workers_stop_when_the_ctx_ends() -> None:
    src: Chan[int] = Chan()
    ctx, cancel = context.with_cancel(context.background())
    with no_leaks():
        g = fan_out(src, 3, lambda v: None, ctx=ctx)
        cancel()
        assert g.wait(timeout=WAIT) is None


def test_fan_out_with_coroutine_workers() -> None:
    async def main() -> list[int]:
        seen: list[int] = []

        async def handle(v: int) -> None:
            await asyncio.sleep(0)
            seen.append(v)

        g = fan_out(generate(range(10)), 3, handle)
        assert await g.wait_async(timeout=WAIT) is None
        return sorted(seen)

    assert run_async(main()) == list(range(10))


# -- or_done ----------------------------------------------------------------------------------


def test_or_done_forwards_until_the_input_closes() -> None:
    assert drain(or_done(context.background(), generate(range(5)))) == list(range(5))


def test_or_done_ends_a_range_over_a_channel_that_is_never_closed() -> None:
    never: Chan[int] = Chan()
    ctx, cancel = context.with_cancel(context.background())
    with no_leaks():
        out = or_done(ctx, never)
        go_sender = runtime.go(never.send, 1)
        assert out.recv(timeout=WAIT) == 1
        go_sender.join(timeout=WAIT)
        cancel()
        assert drain(out) == []


# -- parallel_map -----------------------------------------------------------------------------


def test_parallel_map_keeps_order_and_never_runs_more_than_the_limit() -> None:
    mu = threading.Lock()
    active = peak = 0

    def fn(x: int) -> int:
        nonlocal active, peak
        with mu:
            active += 1
            peak = max(peak, active)
        with mu:
            active -= 1
        return x * 3

    items = list(range(10_000))
    with no_leaks():
        assert parallel_map(fn, items, 8) == [x * 3 for x in items]
    assert 1 <= peak <= 8


def test_aparallel_map_keeps_order_and_never_runs_more_than_the_limit() -> None:
    async def main() -> int:
        active = peak = 0

        async def fn(x: int) -> int:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0)
            active -= 1
            return x * 3

        items = list(range(10_000))
        assert await aparallel_map(fn, items, 8) == [x * 3 for x in items]
        return peak

    assert run_async(main()) == 8  # every worker task is suspended at once


def test_parallel_map_stops_at_the_first_error() -> None:
    mu = threading.Lock()
    calls = 0

    def fn(x: int) -> int:
        nonlocal calls
        with mu:
            calls += 1
        if x == 100:
            raise Boom(x)
        return x

    with pytest.raises(Boom) as info:
        parallel_map(fn, range(100_000), 4)
    assert info.value.args == (100,)
    assert calls <= 100 + 2 * 4  # no new calls once the error is known


def test_aparallel_map_stops_at_the_first_error() -> None:
    async def main() -> int:
        calls = 0

        async def fn(x: int) -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0)
            if x == 50:
                raise Boom(x)
            return x

        with pytest.raises(Boom):
            await aparallel_map(fn, range(100_000), 4)
        return calls

    assert run_async(main()) <= 50 + 2 * 4


def test_parallel_map_consumes_items_lazily_and_stops_on_ctx() -> None:
    taken = 0

    def items() -> Iterator[int]:
        nonlocal taken
        for i in range(10**9):
            taken += 1
            yield i

    ctx, cancel = context.with_cancel(context.background())
    taken_at_cancel = -1

    def fn(x: int) -> int:
        nonlocal taken_at_cancel
        if x == 10:
            cancel()
            taken_at_cancel = taken  # the other worker may still run meanwhile
        return x

    with pytest.raises(context.Canceled):
        parallel_map(fn, items(), 2, ctx=ctx)
    # Once the cancel is visible no worker takes a new item: at most one item
    # per worker was taken between the cancel and the count above.
    assert taken_at_cancel >= 0 and taken <= taken_at_cancel + 2


def test_parallel_map_of_nothing_and_bad_limits() -> None:
    assert parallel_map(str, [], 4) == []
    with pytest.raises(ValueError):
        parallel_map(str, [1], 0)
    with pytest.raises(TypeError):
        parallel_map(str, [1], 2.0)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        parallel_map(3, [1], 2)  # type: ignore[call-overload]


@settings(max_examples=30, deadline=None)
@given(items=st.lists(st.integers(), max_size=60), limit=st.integers(1, 6))
def test_property_parallel_map_equals_map(items: list[int], limit: int) -> None:
    assert parallel_map(lambda x: x - 1, items, limit) == [x - 1 for x in items]


# -- drop -------------------------------------------------------------------------------------


def test_dropper_sends_while_there_is_room_then_counts_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="goconc.patterns")
    ch: Chan[int] = Chan(2)
    d = Dropper(ch, name="events")
    results = [d.send(i) for i in range(10)]
    assert results == [True, True] + [False] * 8
    s = d.statistics()
    assert (s.sent, s.dropped) == (2, 8)
    assert [ch.recv(timeout=WAIT) for _ in range(2)] == [0, 1]
    # reported, never silent: on the 1st, 2nd, 4th and 8th drop
    drops = [r.getMessage() for r in caplog.records if "events" in r.getMessage()]
    assert len(drops) == 4 and "dropped 8" in drops[-1]


def test_drop_never_blocks_on_an_unbuffered_channel_without_receiver() -> None:
    ch: Chan[str] = Chan()
    assert drop(ch, "x") is False
    assert drop_statistics(ch).dropped == 1


def test_drop_hands_the_value_to_a_waiting_receiver() -> None:
    ch: Chan[str] = Chan()
    g = runtime.go(ch.recv, timeout=WAIT)
    deadline = time.monotonic() + WAIT
    while ch.statistics().receivers_waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert drop(ch, "x") is True
    assert g.join(timeout=WAIT) == "x"
    assert drop_statistics(ch).sent == 1


def test_drop_on_a_closed_channel_raises() -> None:
    ch: Chan[int] = Chan(1)
    ch.close()
    with pytest.raises(ChanClosed):
        drop(ch, 1)
