"""errgroup: x/sync's behaviours in thread and asyncio forms, plus what goconc adds."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WAIT, run_async
from goconc import Chan, context, errgroup, runtime

pytestmark = pytest.mark.goconc_leaks


class Boom(Exception):
    pass


ERR1 = Boom("errgroup_test: 1")
ERR2 = Boom("errgroup_test: 2")

CASES: list[list[BaseException | None]] = [
    [],
    [None],
    [ERR1],
    [ERR1, None],
    [ERR1, None, ERR2],
]


def returning(err: BaseException | None) -> Any:
    def fn() -> None:
        if err is not None:
            raise err

    return fn


def areturning(err: BaseException | None) -> Any:
    async def fn() -> None:
        if err is not None:
            raise err

    return fn


def in_start_order(g: errgroup.Group, errs: list[BaseException | None]) -> Any:
    """Start functions returning ``errs`` in ``g``, concurrently, finishing in start order.

    The i-th waits (bounded) until the i before it have finished: with all n
    started, that is when at most n - i are active (a function's error is
    recorded before it counts as finished).  So the first error of ``errs``
    is the first error of the group, however the threads are scheduled.
    """
    n = len(errs)
    all_started = threading.Event()

    def make(i: int, err: BaseException | None) -> Any:
        def fn() -> None:
            assert all_started.wait(WAIT)
            deadline = time.monotonic() + WAIT
            while g.statistics().active > n - i:
                assert time.monotonic() < deadline, f"function {i}: the ones before never finished"
                time.sleep(0.001)
            if err is not None:
                raise err

        return fn

    for i, err in enumerate(errs):
        g.go(make(i, err))
    all_started.set()


def first_error(errs: list[BaseException | None]) -> BaseException | None:
    return next((e for e in errs if e is not None), None)


@pytest.fixture
def escaped() -> Iterator[list[str]]:
    """Record every way an exception could escape: panic handler, thread and loop hooks."""
    seen: list[str] = []
    prev_panic = runtime.set_panic_handler(lambda g, e: seen.append(f"panic {g.name}: {e!r}"))
    prev_hook = threading.excepthook
    prev_unraisable = sys.unraisablehook
    threading.excepthook = lambda a: seen.append(f"thread: {a.exc_value!r}")
    sys.unraisablehook = lambda u: seen.append(f"unraisable: {u.exc_value!r}")
    try:
        yield seen
    finally:
        runtime.set_panic_handler(prev_panic)
        threading.excepthook = prev_hook
        sys.unraisablehook = prev_unraisable


# -- x/sync: TestZeroGroup ---------------------------------------------------------------


@pytest.mark.parametrize("errs", CASES)
def test_wait_returns_the_first_error_threads(errs: list[BaseException | None]) -> None:
    g = errgroup.Group()
    want: BaseException | None = None
    for err in errs:
        g.go(returning(err))
        want = want or err
        assert g.wait(timeout=WAIT) is want


@pytest.mark.parametrize("errs", CASES)
def test_wait_returns_the_first_error_asyncio(errs: list[BaseException | None]) -> None:
    async def main() -> None:
        g = errgroup.Group()
        want: BaseException | None = None
        for err in errs:
            g.go(areturning(err))
            want = want or err
            assert await g.wait_async(timeout=WAIT) is want

    run_async(main())


# -- x/sync: TestWithContext and TestCancelCause -----------------------------------------


@pytest.mark.parametrize("errs", CASES)
def test_context_is_cancelled_after_wait_with_the_first_error_as_cause(
    errs: list[BaseException | None],
) -> None:
    g, ctx = errgroup.with_context(context.background())
    assert g.ctx is ctx
    in_start_order(g, errs)
    assert g.wait(timeout=WAIT) is first_error(errs)
    assert isinstance(ctx.err(), context.Canceled)
    want = first_error(errs)
    got = context.cause(ctx)
    if want is None:
        assert isinstance(got, context.Canceled)
    else:
        assert got is want


@pytest.mark.parametrize("errs", CASES)
def test_context_is_cancelled_after_wait_async(errs: list[BaseException | None]) -> None:
    async def main() -> None:
        g, ctx = errgroup.with_context(context.background())
        for err in errs:
            g.go(areturning(err))
        assert await g.wait_async(timeout=WAIT) is first_error(errs)
        assert ctx.err() is not None
        if errs and first_error(errs) is not None:
            assert context.cause(ctx) is first_error(errs)

    run_async(main())


def test_first_error_cancels_the_context_before_wait() -> None:
    g, ctx = errgroup.with_context(context.background())
    g.go(returning(ERR1))
    ctx.done.recv_ok(timeout=WAIT)  # closed by the failure, not by wait
    assert context.cause(ctx) is ERR1
    assert g.wait(timeout=WAIT) is ERR1


def test_only_the_first_error_is_kept_and_the_others_stop_through_the_context() -> None:
    g, ctx = errgroup.with_context(context.background())
    stopped = []

    def patient() -> None:
        try:
            ctx.done.recv_ok(timeout=WAIT)
        finally:
            stopped.append(ctx.err())
        raise ERR2  # fails after the first error: dropped

    for _ in range(3):
        g.go(patient)
    g.go(returning(ERR1))
    assert g.wait(timeout=WAIT) is ERR1
    assert len(stopped) == 3 and all(isinstance(e, context.Canceled) for e in stopped)


def test_parent_cancellation_reaches_the_group_context() -> None:
    parent, cancel = context.with_cancel(context.background())
    g = errgroup.Group(parent)
    g.go(lambda: g.ctx.done.recv_ok(timeout=WAIT))
    cancel()
    assert g.wait(timeout=WAIT) is None
    assert g.ctx.err() is not None


# -- x/sync: TestTryGo and TestGoLimit ----------------------------------------------------


def test_try_go_respects_the_limit_and_its_changes() -> None:
    g = errgroup.Group()
    n = 42
    g.set_limit(n)
    ch: Chan[None] = Chan()

    def fn() -> None:
        ch.send(None, timeout=WAIT)

    for i in range(n):
        assert g.try_go(fn), f"try_go failed at call {i}"
    assert not g.try_go(fn), "try_go succeeded past the limit"
    for _ in range(n):
        ch.recv(timeout=WAIT)
    assert g.wait(timeout=WAIT) is None

    assert g.try_go(fn), "try_go failed after every function finished"
    ch.recv(timeout=WAIT)
    g.wait(timeout=WAIT)

    g.set_limit(1)
    assert g.try_go(fn)
    assert not g.try_go(fn)
    ch.recv(timeout=WAIT)
    g.wait(timeout=WAIT)

    g.set_limit(0)
    for _ in range(1 << 10):
        assert not g.try_go(fn), "try_go succeeded with a limit of 0"
    assert g.wait(timeout=WAIT) is None


def test_try_go_respects_the_limit_asyncio() -> None:
    async def main() -> None:
        g = errgroup.Group()
        g.set_limit(2)
        release = asyncio.Event()

        async def fn() -> None:
            await release.wait()

        assert g.try_go(fn) and g.try_go(fn)
        assert not g.try_go(fn)
        release.set()
        assert await g.wait_async(timeout=WAIT) is None
        assert g.try_go(fn)
        assert await g.wait_async(timeout=WAIT) is None

    run_async(main())


def test_set_limit_bounds_concurrency_threads() -> None:
    limit = 3
    g = errgroup.Group()
    g.set_limit(limit)
    mu = threading.Lock()
    active = peak = 0

    def fn() -> None:
        nonlocal active, peak
        with mu:
            active += 1
            peak = max(peak, active)
        time.sleep(0.001)
        with mu:
            active -= 1

    for _ in range(10 * limit):
        g.go(fn)
    assert g.wait(timeout=WAIT) is None
    assert 1 <= peak <= limit


def test_set_limit_bounds_concurrency_asyncio() -> None:
    async def main() -> int:
        limit = 3
        g = errgroup.Group()
        g.set_limit(limit)
        active = peak = 0

        async def fn() -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.001)
            active -= 1

        for _ in range(10 * limit):
            await g.ago(fn)
        assert await g.wait_async(timeout=WAIT) is None
        return peak

    assert 1 <= run_async(main()) <= 3


def test_go_blocks_at_the_limit_until_a_function_finishes() -> None:
    g = errgroup.Group()
    g.set_limit(1)
    release = threading.Event()
    g.go(release.wait, WAIT)
    started = threading.Event()
    caller = runtime.go(lambda: g.go(started.set))
    deadline = time.monotonic() + WAIT
    while g.statistics().go_waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert g.statistics().go_waiting == 1
    assert not started.is_set()
    release.set()
    caller.join(timeout=WAIT)
    assert started.wait(WAIT)
    assert g.wait(timeout=WAIT) is None


def test_go_at_the_limit_inside_an_event_loop_raises_instead_of_blocking_it() -> None:
    async def main() -> None:
        g = errgroup.Group()
        g.set_limit(1)
        release = asyncio.Event()

        async def fn() -> None:
            await release.wait()

        g.go(fn)
        with pytest.raises(RuntimeError, match="ago"):
            g.go(fn)
        release.set()
        await g.wait_async(timeout=WAIT)

    run_async(main())


def test_a_cancelled_ago_gives_its_slot_back() -> None:
    async def main() -> None:
        g = errgroup.Group()
        g.set_limit(1)
        release = asyncio.Event()

        async def fn() -> None:
            await release.wait()

        await g.ago(fn)
        waiting = asyncio.ensure_future(g.ago(fn))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        await g.wait_async(timeout=WAIT)
        assert g.statistics().active == 0
        assert g.try_go(fn)  # the slot is free: the cancelled call never took it
        await g.wait_async(timeout=WAIT)

    run_async(main())


def test_set_limit_while_functions_are_active_raises() -> None:
    g = errgroup.Group()
    release = threading.Event()
    g.go(release.wait, WAIT)
    g.go(release.wait, WAIT)
    with pytest.raises(
        RuntimeError,
        match="errgroup: modify limit while 2 goroutines in the group are still active",
    ):
        g.set_limit(1)
    release.set()
    g.wait(timeout=WAIT)
    g.set_limit(1)  # fine once they are done


def test_raising_the_limit_from_zero_lets_blocked_go_proceed() -> None:
    g = errgroup.Group()
    g.set_limit(0)
    ran = threading.Event()
    caller = runtime.go(lambda: g.go(ran.set))
    deadline = time.monotonic() + WAIT
    while g.statistics().go_waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not ran.is_set()
    g.set_limit(1)
    caller.join(timeout=WAIT)
    assert ran.wait(WAIT)
    g.wait(timeout=WAIT)


def test_negative_limit_means_no_limit() -> None:
    g = errgroup.Group()
    g.set_limit(-5)
    assert g.statistics().limit == -1
    barrier = threading.Barrier(20, timeout=WAIT)
    for _ in range(20):
        assert g.try_go(barrier.wait)  # all 20 must run at once to pass the barrier
    assert g.wait(timeout=WAIT) is None


# -- exceptions never escape ---------------------------------------------------------------


def test_an_exception_becomes_the_error_with_its_traceback(escaped: list[str]) -> None:
    def inner_failure() -> None:
        raise Boom("deep")

    def fn() -> None:
        inner_failure()

    g = errgroup.Group()
    g.go(fn)
    err = g.wait(timeout=WAIT)
    assert isinstance(err, Boom)
    names = [f.name for f in traceback.extract_tb(err.__traceback__)]
    assert "inner_failure" in names
    assert escaped == []


def test_a_thousand_raising_functions_never_escape_threads(escaped: list[str]) -> None:
    g, ctx = errgroup.with_context(context.background())
    errors = [Boom(i) for i in range(1000)]
    start = threading.Event()

    def fn(e: Boom) -> None:
        start.wait(WAIT)
        raise e

    for e in errors:
        g.go(fn, e)
    start.set()
    err = g.wait(timeout=60)
    assert any(err is e for e in errors)
    assert context.cause(ctx) is err
    assert escaped == []


def test_a_thousand_raising_functions_never_escape_asyncio(escaped: list[str]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, c: escaped.append(f"loop: {c}"))
        g, ctx = errgroup.with_context(context.background())
        errors = [Boom(i) for i in range(1000)]
        start = asyncio.Event()

        async def fn(e: Boom) -> None:
            await start.wait()
            raise e

        for e in errors:
            g.go(fn, e)
        start.set()
        err = await g.wait_async(timeout=WAIT)
        assert any(err is e for e in errors)
        assert context.cause(ctx) is err

    run_async(main())
    assert escaped == []


def test_even_base_exceptions_become_errors(escaped: list[str]) -> None:
    g = errgroup.Group()
    g.go(sys.exit, 3)
    err = g.wait(timeout=WAIT)
    assert isinstance(err, SystemExit)
    assert escaped == []


def test_a_plain_function_returning_a_coroutine_is_an_error(escaped: list[str]) -> None:
    async def coro() -> None:
        pass

    g = errgroup.Group()
    g.go(lambda: coro())
    err = g.wait(timeout=WAIT)
    assert isinstance(err, TypeError) and "coroutine function" in str(err)
    assert escaped == []


# -- with / async with -----------------------------------------------------------------------


def test_with_block_raises_the_first_function_error() -> None:
    with pytest.raises(Boom, match="1"), errgroup.Group() as g:
        g.go(returning(None))
        g.go(returning(ERR1))


def test_with_block_waits_for_every_function() -> None:
    done = []

    def slow(i: int) -> None:
        time.sleep(0.01)
        done.append(i)

    with errgroup.Group() as g:
        for i in range(5):
            g.go(slow, i)
    assert sorted(done) == list(range(5))


def test_with_block_that_raises_cancels_waits_and_propagates_its_own_exception() -> None:
    observed: list[BaseException | None] = []

    def worker(ctx: context.Context) -> None:
        ctx.done.recv_ok(timeout=WAIT)
        observed.append(context.cause(ctx))
        raise ERR2  # hidden by the block's own exception

    with pytest.raises(KeyError), errgroup.Group() as g:
        g.go(worker, g.ctx)
        raise KeyError("block")
    assert g.statistics().active == 0
    assert len(observed) == 1 and isinstance(observed[0], KeyError)


def test_async_with_block_raises_the_first_function_error() -> None:
    async def main() -> None:
        async with errgroup.Group() as g:
            g.go(areturning(None))
            g.go(areturning(ERR1))

    with pytest.raises(Boom, match="1"):
        run_async(main())


def test_async_with_block_that_raises_cancels_and_waits() -> None:
    async def main() -> list[str]:
        seen: list[str] = []

        async def worker(ctx: context.Context) -> None:
            async with context.scope(ctx):
                await asyncio.sleep(WAIT)  # code that knows nothing of goconc
            seen.append("not reached")

        async def recorder(ctx: context.Context) -> None:
            await ctx.done.arecv_ok(timeout=WAIT)
            seen.append("stopped")

        with pytest.raises(ValueError, match="block"):
            async with errgroup.Group() as g:
                g.go(worker, g.ctx)
                g.go(recorder, g.ctx)
                await asyncio.sleep(0)
                raise ValueError("block")
        assert g.statistics().active == 0
        return seen

    assert run_async(main()) == ["stopped"]


# -- mixing and nesting ----------------------------------------------------------------------


def test_threads_and_tasks_in_one_group_from_a_thread() -> None:
    ch: Chan[str] = Chan()

    async def producer() -> None:  # a task on the runtime loop
        await ch.asend("from a task", timeout=WAIT)

    def consumer(out: list[str]) -> None:  # a thread
        out.append(ch.recv(timeout=WAIT))

    got: list[str] = []
    g = errgroup.Group()
    g.go(producer)
    g.go(consumer, got)
    assert g.wait(timeout=WAIT) is None
    assert got == ["from a task"]


def test_coroutine_functions_are_tasks_on_the_callers_loop_and_plain_ones_threads() -> None:
    async def main() -> tuple[list[object], object, list[bool]]:
        loops: list[object] = []
        on_loop_thread: list[bool] = []
        loop_thread = threading.get_ident()

        async def task_fn() -> None:
            loops.append(asyncio.get_running_loop())

        def thread_fn() -> None:
            on_loop_thread.append(threading.get_ident() == loop_thread)

        g = errgroup.Group()
        g.go(task_fn)
        g.go(task_fn)
        g.go(thread_fn)
        assert await g.wait_async(timeout=WAIT) is None
        return loops, asyncio.get_running_loop(), on_loop_thread

    loops, mine, on_loop_thread = run_async(main())
    assert loops == [mine, mine]
    assert on_loop_thread == [False]


def test_go_from_inside_a_function_of_the_group() -> None:
    g = errgroup.Group()
    ran = []

    def child(i: int) -> None:
        ran.append(i)

    def parent() -> None:
        for i in range(5):
            g.go(child, i)

    g.go(parent)
    assert g.wait(timeout=WAIT) is None
    assert sorted(ran) == list(range(5))


def test_functions_receive_args_and_kwargs() -> None:
    got = []
    g = errgroup.Group()
    g.go(lambda a, b=0: got.append((a, b)), 1, b=2)
    g.wait(timeout=WAIT)
    assert got == [(1, 2)]


def test_goroutines_are_named_after_the_function() -> None:
    g = errgroup.Group()
    release = threading.Event()

    def fetch_user() -> None:
        release.wait(WAIT)

    g.go(fetch_user)
    try:
        names = [info.name for info in runtime.goroutines()]
        assert any("fetch_user" in n for n in names)
    finally:
        release.set()
        g.wait(timeout=WAIT)


# -- misuse and bounds --------------------------------------------------------------------------


def test_bad_arguments_raise_at_the_call_site() -> None:
    g = errgroup.Group()
    with pytest.raises(TypeError, match="callable"):
        g.go(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int"):
        g.set_limit(True)
    with pytest.raises(TypeError, match="int"):
        g.set_limit(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        errgroup.Group("not a context")  # type: ignore[arg-type]
    assert g.statistics().active == 0


def test_wait_with_timeout_raises_and_leaves_the_context_alone() -> None:
    g = errgroup.Group()
    release = threading.Event()
    g.go(release.wait, WAIT)
    with pytest.raises(TimeoutError):
        g.wait(timeout=0.01)
    assert g.ctx.err() is None
    release.set()
    assert g.wait(timeout=WAIT) is None
    assert g.ctx.err() is not None


def test_wait_honours_its_ctx() -> None:
    g = errgroup.Group()
    release = threading.Event()
    g.go(release.wait, WAIT)
    stop, cancel = context.with_cancel(context.background())
    cancel()
    with pytest.raises(context.Canceled):
        g.wait(ctx=stop)
    release.set()
    g.wait(timeout=WAIT)


def test_blocking_wait_inside_an_event_loop_raises() -> None:
    async def main() -> None:
        g = errgroup.Group()
        release = asyncio.Event()

        async def fn() -> None:
            await release.wait()

        g.go(fn)
        with pytest.raises(RuntimeError, match="wait_async"):
            g.wait(timeout=WAIT)
        release.set()
        await g.wait_async(timeout=WAIT)

    run_async(main())


def test_statistics_report_the_group_state() -> None:
    g = errgroup.Group()
    g.set_limit(2)
    release = threading.Event()
    g.go(release.wait, WAIT)
    s = g.statistics()
    assert (s.active, s.limit, s.failed) == (1, 2, False)
    release.set()
    g.go(returning(ERR1))
    g.wait(timeout=WAIT)
    s = g.statistics()
    assert (s.active, s.failed) == (0, True)
    assert "failed=True" in repr(g)


# -- properties ------------------------------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    outcomes=st.lists(st.booleans(), max_size=12),
    limit=st.integers(min_value=-1, max_value=4),
)
def test_property_every_function_runs_the_limit_holds_and_an_error_wins(
    outcomes: list[bool], limit: int
) -> None:
    if limit == 0:
        limit = 1
    errors = [Boom(i) if fail else None for i, fail in enumerate(outcomes)]
    mu = threading.Lock()
    active = peak = ran = 0

    def fn(err: Boom | None) -> None:
        nonlocal active, peak, ran
        with mu:
            active += 1
            ran += 1
            peak = max(peak, active)
        time.sleep(0.0005)
        with mu:
            active -= 1
        if err is not None:
            raise err

    g = errgroup.Group()
    g.set_limit(limit)
    for err in errors:
        g.go(fn, err)
    got = g.wait(timeout=WAIT)
    assert ran == len(outcomes)
    if limit > 0:
        assert peak <= limit
    failures = [e for e in errors if e is not None]
    if failures:
        assert any(got is e for e in failures)
    else:
        assert got is None


def test_log_is_quiet_for_captured_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="goconc")
    g = errgroup.Group()
    g.go(returning(ERR1))
    g.wait(timeout=WAIT)
    assert caplog.records == []


def test_slots_are_never_exceeded_nor_lost_under_cancelled_ago_and_thread_go() -> None:
    """Threads calling go and tasks calling ago (some cancelled) share a limit of 3."""

    async def main() -> tuple[int, int]:
        g = errgroup.Group()
        g.set_limit(3)
        mu = threading.Lock()
        active = peak = 0

        def work() -> None:
            nonlocal active, peak
            with mu:
                active += 1
                peak = max(peak, active)
            time.sleep(0.0002)
            with mu:
                active -= 1

        async def awork() -> None:
            work()
            await asyncio.sleep(0)

        def thread_caller() -> None:
            for _ in range(100):
                g.go(work)

        callers = [runtime.go(thread_caller) for _ in range(2)]
        for i in range(300):
            t = asyncio.ensure_future(g.ago(awork))
            if i % 3 == 0:
                await asyncio.sleep(0)
                t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass
        for c in callers:
            await c.ajoin(timeout=WAIT)
        assert await g.wait_async(timeout=WAIT) is None
        s = g.statistics()
        assert s.active == 0
        release = threading.Event()
        for _ in range(3):  # every slot came back
            assert g.try_go(release.wait, WAIT)
        assert not g.try_go(release.wait, WAIT)
        release.set()
        assert await g.wait_async(timeout=WAIT) is None
        return peak, s.active

    peak, _ = run_async(main())
    assert 1 <= peak <= 3
