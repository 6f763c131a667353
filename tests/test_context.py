"""goconc.context: Go's context semantics, for threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import math
import threading
import time
import weakref
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import Chan, ChanClosed, context, select
from goconc import time as gtime
from goconc.context import Canceled, Context, DeadlineExceeded

pytestmark = pytest.mark.goconc_leaks

BG = context.background()


def ended(ctx: Context) -> bool:
    return ctx.err() is not None


def wait_until(pred: Any, bound: float = WAIT) -> None:
    deadline = time.monotonic() + bound
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


# -- roots -------------------------------------------------------------------------


def test_background_and_todo_never_end_and_carry_nothing() -> None:
    for root in (context.background(), context.todo()):
        assert root.err() is None
        assert root.deadline() is None
        assert root.value("k") is None
        assert context.cause(root) is None
        with pytest.raises(TimeoutError):
            root.done.recv_ok(timeout=0.01)
    assert context.background() is context.background()
    assert repr(context.background()) == "context.Background"
    assert repr(context.todo()) == "context.TODO"


def test_errors_carry_go_messages_and_deadline_exceeded_is_a_timeout_error() -> None:
    assert str(Canceled()) == "context canceled"
    assert str(DeadlineExceeded()) == "context deadline exceeded"
    assert isinstance(DeadlineExceeded(), TimeoutError)
    assert not isinstance(Canceled(), TimeoutError)


# -- cancellation ------------------------------------------------------------------


def test_cancel_ends_the_context_and_closes_done() -> None:
    ctx, cancel = context.with_cancel(BG)
    done = ctx.done
    assert ctx.err() is None
    with pytest.raises(TimeoutError):
        done.recv_ok(timeout=0.01)
    cancel()
    assert isinstance(ctx.err(), Canceled)
    assert done.recv_ok(timeout=WAIT) == (None, False)
    assert ctx.done is done


def test_done_requested_after_cancel_is_already_closed() -> None:
    ctx, cancel = context.with_cancel(BG)
    cancel()
    assert ctx.done.recv_ok(timeout=WAIT) == (None, False)
    assert select(ctx.done, default=True).index == 0


def test_cancel_is_idempotent_and_err_never_changes() -> None:
    ctx, cancel = context.with_cancel_cause(BG)
    first = ValueError("first")
    cancel(first)
    cancel(KeyError("second"))
    cancel(None)
    assert isinstance(ctx.err(), Canceled)
    assert context.cause(ctx) is first


def test_err_returns_a_fresh_instance_every_call() -> None:
    ctx, cancel = context.with_cancel(BG)
    cancel()
    a, b = ctx.err(), ctx.err()
    assert a is not b
    assert type(a) is type(b) is Canceled


def test_cancelling_a_parent_cancels_every_descendant() -> None:
    root, cancel = context.with_cancel(BG)
    a, _ = context.with_cancel(root)
    v = context.with_value(a, "k", 1)
    b, _ = context.with_timeout(v, 1000)
    c, _ = context.with_cancel_cause(b)
    deep = c
    for _ in range(50):
        deep, _ = context.with_cancel(deep)
    cancel()
    for ctx in (root, a, v, b, c, deep):
        assert isinstance(ctx.err(), Canceled), ctx
        assert ctx.done.recv_ok(timeout=WAIT) == (None, False)


def test_cancelling_a_child_leaves_parent_and_siblings_alone() -> None:
    root, cancel_root = context.with_cancel(BG)
    a, cancel_a = context.with_cancel(root)
    b, _ = context.with_cancel(root)
    a1, _ = context.with_cancel(a)
    cancel_a()
    assert ended(a) and ended(a1)
    assert not ended(root) and not ended(b)
    cancel_root()
    assert ended(b)


def test_child_of_an_ended_parent_starts_ended_with_the_parents_error_and_cause() -> None:
    parent, cancel = context.with_cancel_cause(BG)
    why = OSError("gone")
    cancel(why)
    child, _ = context.with_cancel(parent)
    assert isinstance(child.err(), Canceled)
    assert context.cause(child) is why
    timed, _ = context.with_timeout(parent, 1000)
    assert isinstance(timed.err(), Canceled)


def test_a_very_deep_chain_is_cancelled_without_recursion() -> None:
    root, cancel = context.with_cancel(BG)
    ctx = root
    for _ in range(20_000):
        ctx, _ = context.with_cancel(ctx)
    cancel()
    assert isinstance(ctx.err(), Canceled)
    assert "more" in repr(ctx)


def test_cancelled_children_are_detached_so_the_parent_keeps_none() -> None:
    parent, cancel_parent = context.with_cancel(BG)
    via_value = context.with_value(parent, "k", "v")
    for i in range(1000):
        ctx, cancel = context.with_cancel(parent if i % 2 else via_value)
        if i % 3 == 0:
            _, cancel_timeout = context.with_timeout(ctx, 1000)
            cancel_timeout()
        cancel()
    assert not parent._children  # type: ignore[attr-defined]
    assert not ended(parent)
    cancel_parent()
    assert parent._children is None  # type: ignore[attr-defined]


def test_a_child_cancelled_by_its_parent_is_not_kept_by_the_parent() -> None:
    parent, cancel = context.with_cancel(BG)
    pair = context.with_cancel(parent)  # its cancel function is dropped with it
    ref = weakref.ref(pair[0])
    del pair
    cancel()
    gc.collect()
    assert ref() is None


def test_a_forgotten_child_of_a_long_lived_parent_is_released_when_cancelled() -> None:
    parent, _ = context.with_cancel(BG)
    child, cancel = context.with_timeout(parent, 1000)
    ref = weakref.ref(child)
    cancel()
    del child, cancel
    gc.collect()
    assert ref() is None


def test_cancel_from_many_threads_at_once_ends_the_tree_once() -> None:
    for _ in range(200):
        root, cancel = context.with_cancel_cause(BG)
        kids = [context.with_cancel(root) for _ in range(10)]
        causes = [RuntimeError(str(i)) for i in range(4)]
        barrier = threading.Barrier(4)

        def canceller(why: RuntimeError, barrier: threading.Barrier, cancel: Any) -> None:
            barrier.wait(timeout=WAIT)
            cancel(why)

        threads = [
            threading.Thread(target=canceller, args=(why, barrier, cancel)) for why in causes
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        got = context.cause(root)
        assert got in causes
        assert all(context.cause(k) is got for k, _ in kids)


def test_children_created_while_the_parent_is_cancelled_all_end() -> None:
    for _ in range(100):
        root, cancel = context.with_cancel(BG)
        made: list[Context] = []
        start = threading.Event()

        def maker(root: Context, made: list[Context], start: threading.Event) -> None:
            start.wait(WAIT)
            for _ in range(50):
                made.append(context.with_cancel(root)[0])

        threads = [threading.Thread(target=maker, args=(root, made, start)) for _ in range(2)]
        for t in threads:
            t.start()
        start.set()
        cancel()
        for t in threads:
            t.join(WAIT)
        assert len(made) == 100
        assert all(isinstance(c.err(), Canceled) for c in made)
        assert root._children is None  # type: ignore[attr-defined]


# -- deadlines ---------------------------------------------------------------------


def test_timeout_ends_the_context_with_deadline_exceeded() -> None:
    t0 = time.monotonic()
    ctx, cancel = context.with_timeout(BG, 0.05)
    try:
        d = ctx.deadline()
        assert d is not None and t0 + 0.05 <= d <= time.monotonic() + 0.05
        assert ctx.done.recv_ok(timeout=WAIT) == (None, False)
        assert time.monotonic() >= d
        err = ctx.err()
        assert isinstance(err, DeadlineExceeded) and isinstance(err, TimeoutError)
        assert isinstance(context.cause(ctx), DeadlineExceeded)
    finally:
        cancel()


def test_a_child_never_outlives_its_parents_deadline() -> None:
    parent, cancel_parent = context.with_timeout(BG, 0.05)
    later, cancel_later = context.with_timeout(parent, 1000)
    assert later.deadline() == parent.deadline()
    assert type(later).__name__ == "_CancelCtx"  # no timer of its own
    assert later.done.recv_ok(timeout=WAIT) == (None, False)
    assert isinstance(later.err(), DeadlineExceeded)
    cancel_later()
    cancel_parent()


def test_an_earlier_child_deadline_is_its_own() -> None:
    parent, cancel_parent = context.with_timeout(BG, 1000)
    child, cancel_child = context.with_timeout(parent, 0.02)
    p, c = parent.deadline(), child.deadline()
    assert p is not None and c is not None and c < p
    assert child.done.recv_ok(timeout=WAIT) == (None, False)
    assert isinstance(child.err(), DeadlineExceeded)
    assert parent.err() is None
    assert not parent._children  # type: ignore[attr-defined]
    cancel_child()
    cancel_parent()


def test_deadline_is_inherited_through_values_and_cancel_contexts() -> None:
    parent, cancel = context.with_timeout(BG, 1000)
    v = context.with_value(parent, "k", 1)
    c, _ = context.with_cancel(v)
    assert v.deadline() == c.deadline() == parent.deadline()
    cancel()


def test_a_deadline_already_past_gives_an_ended_context() -> None:
    ctx, cancel = context.with_deadline(BG, time.monotonic() - 1)
    assert isinstance(ctx.err(), DeadlineExceeded)
    zero, cancel_zero = context.with_timeout(BG, 0)
    assert isinstance(zero.err(), DeadlineExceeded)
    cancel()
    cancel_zero()
    assert isinstance(ctx.err(), DeadlineExceeded)  # a later cancel changes nothing


def test_cancel_before_the_deadline_gives_canceled_and_releases_the_timer() -> None:
    ctx, cancel = context.with_timeout(BG, 1000)
    handle = ctx._timer  # type: ignore[attr-defined]
    assert handle is not None
    cancel()
    assert isinstance(ctx.err(), Canceled)
    assert ctx._timer is None  # type: ignore[attr-defined]
    assert not handle.cancel()  # already cancelled


def test_with_deadline_accepts_an_aware_datetime_and_rejects_a_naive_one() -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=100)
    ctx, cancel = context.with_deadline(BG, when)
    d = ctx.deadline()
    assert d is not None and abs(d - (time.monotonic() + 100)) < 5
    cancel()
    with pytest.raises(TypeError, match="naive"):
        context.with_deadline(BG, dt.datetime.now())
    with pytest.raises(TypeError, match="deadline"):
        context.with_deadline(BG, "soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deadline"):
        context.with_deadline(BG, math.nan)


def test_bad_timeouts_raise_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="seconds"):
        context.with_timeout(BG, -1)
    with pytest.raises(ValueError, match="seconds"):
        context.with_timeout(BG, math.nan)
    with pytest.raises(TypeError, match="seconds"):
        context.with_timeout(BG, True)


def test_an_infinite_timeout_never_fires() -> None:
    ctx, cancel = context.with_timeout(BG, math.inf)
    assert ctx.deadline() == math.inf
    assert ctx._timer is None  # type: ignore[attr-defined]
    assert ctx.err() is None
    cancel()


# -- causes ------------------------------------------------------------------------


def test_cancel_cause_is_reported_by_cause_and_err_stays_canceled() -> None:
    ctx, cancel = context.with_cancel_cause(BG)
    assert context.cause(ctx) is None
    why = ConnectionResetError("peer went away")
    cancel(why)
    assert isinstance(ctx.err(), Canceled)
    assert context.cause(ctx) is why


def test_cancel_without_a_cause_makes_the_cause_canceled() -> None:
    ctx, cancel = context.with_cancel_cause(BG)
    cancel(None)
    assert isinstance(context.cause(ctx), Canceled)
    plain, cancel_plain = context.with_cancel(BG)
    cancel_plain()
    assert isinstance(context.cause(plain), Canceled)


def test_descendants_share_the_cause_of_the_first_cancellation() -> None:
    root, cancel_root = context.with_cancel_cause(BG)
    child, cancel_child = context.with_cancel_cause(root)
    grandchild = context.with_value(child, "k", 1)
    other, _ = context.with_cancel(root)
    mine = KeyError("child first")
    cancel_child(mine)
    cancel_root(ValueError("root later"))
    assert context.cause(child) is mine
    assert context.cause(grandchild) is mine
    assert isinstance(context.cause(other), ValueError)


def test_timeout_cause_is_used_only_when_the_deadline_fires() -> None:
    slow = TimeoutError("backend too slow")
    fired, cancel_fired = context.with_timeout_cause(BG, 0.02, slow)
    assert fired.done.recv_ok(timeout=WAIT) == (None, False)
    assert isinstance(fired.err(), DeadlineExceeded)
    assert context.cause(fired) is slow
    cancel_fired()
    early, cancel_early = context.with_timeout_cause(BG, 1000, slow)
    cancel_early()
    assert isinstance(context.cause(early), Canceled)


def test_deadline_cause_of_a_past_deadline_applies_at_once() -> None:
    why = RuntimeError("too late")
    ctx, cancel = context.with_deadline_cause(BG, time.monotonic() - 1, why)
    assert isinstance(ctx.err(), DeadlineExceeded)
    assert context.cause(ctx) is why
    cancel()


def test_a_cause_must_be_an_exception() -> None:
    ctx, cancel = context.with_cancel_cause(BG)
    with pytest.raises(TypeError, match="cause"):
        cancel("nope")  # type: ignore[arg-type]
    assert ctx.err() is None
    with pytest.raises(TypeError, match="cause"):
        context.with_timeout_cause(BG, 1, "nope")  # type: ignore[arg-type]


# -- values ------------------------------------------------------------------------


def test_values_are_found_in_descendants_and_shadowed_by_nearer_ones() -> None:
    key, other = object(), object()
    a = context.with_value(BG, key, "a")
    c1, cancel = context.with_cancel(a)
    b = context.with_value(c1, key, "b")
    c2 = context.with_value(b, other, 42)
    assert a.value(key) == "a"
    assert c1.value(key) == "a"
    assert c2.value(key) == "b"
    assert c2.value(other) == 42
    assert a.value(other) is None
    cancel()
    assert c2.value(key) == "b"  # values outlive cancellation


def test_value_keys_compare_by_identity_then_equality() -> None:
    ctx = context.with_value(BG, ("tenant", 1), "acme")
    assert ctx.value(("tenant", 1)) == "acme"
    assert ctx.value(("tenant", 2)) is None


def test_none_key_and_non_context_parent_are_rejected() -> None:
    with pytest.raises(TypeError, match="key"):
        context.with_value(BG, None, 1)
    for make in (context.with_cancel, context.with_cancel_cause, context.without_cancel):
        with pytest.raises(TypeError, match="parent"):
            make(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parent"):
        context.with_timeout(None, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="background"):
        Context()
    with pytest.raises(TypeError, match="unpack"):
        context.with_cancel(context.with_cancel(BG))  # type: ignore[arg-type]


def test_repr_reads_like_go() -> None:
    ctx, cancel = context.with_cancel(BG)
    v = context.with_value(ctx, "user", "ann")
    d, cancel_d = context.with_timeout(context.without_cancel(v), 10)
    text = repr(d)
    assert text.startswith("context.Background.WithCancel.WithValue('user', <str>)")
    assert ".WithoutCancel.WithDeadline(" in text
    cancel_d()
    cancel()


# -- without_cancel ----------------------------------------------------------------


def test_without_cancel_keeps_values_but_never_ends() -> None:
    parent, cancel = context.with_timeout(context.with_value(BG, "k", "v"), 1000)
    detached = context.without_cancel(parent)
    child, cancel_child = context.with_cancel(detached)
    cancel()
    assert detached.value("k") == "v"
    assert detached.err() is None and child.err() is None
    assert detached.deadline() is None
    assert context.cause(detached) is None
    with pytest.raises(TimeoutError):
        detached.done.recv_ok(timeout=0.01)
    cancel_child()
    assert isinstance(child.err(), Canceled)


# -- the done channel --------------------------------------------------------------


def test_the_done_channel_is_receive_only() -> None:
    ctx, cancel = context.with_cancel(BG)
    with pytest.raises(TypeError):
        ctx.done.close()
    with pytest.raises(TypeError):
        ctx.done.send(None)
    cancel()
    with pytest.raises(ChanClosed):
        ctx.done.recv(timeout=WAIT)


def test_done_works_in_select_with_other_channels() -> None:
    ctx, cancel = context.with_cancel(BG)
    jobs: Chan[int] = Chan(1)
    jobs.send(1)
    assert select(ctx.done, jobs, timeout=WAIT).index == 1
    threading.Timer(0.02, cancel).start()
    sel = select(ctx.done, jobs, timeout=WAIT)
    assert (sel.index, sel.ok) == (0, False)


# -- waking blocked waits ----------------------------------------------------------


def test_cancel_from_another_thread_wakes_a_thread_blocked_in_recv() -> None:
    ctx, cancel = context.with_cancel(BG)
    ch: Chan[int] = Chan()
    t = threading.Timer(0.05, cancel)
    t.start()
    with pytest.raises(Canceled):
        ch.recv(ctx=ctx, timeout=WAIT)
    t.join(WAIT)
    assert ch.try_send(1) is False  # the woken receiver left no trace


def test_a_deadline_wakes_a_thread_blocked_in_send() -> None:
    ctx, cancel = context.with_timeout(BG, 0.05)
    ch: Chan[int] = Chan()
    with pytest.raises(DeadlineExceeded):
        ch.send(1, ctx=ctx, timeout=WAIT)
    cancel()


def test_cancel_from_another_thread_wakes_a_task_awaiting_recv() -> None:
    ctx, cancel = context.with_cancel(BG)
    ch: Chan[int] = Chan()

    async def main() -> None:
        t = threading.Timer(0.05, cancel)
        t.start()
        with pytest.raises(Canceled):
            await ch.arecv(ctx=ctx, timeout=WAIT)
        t.join(WAIT)

    run_async(main())


def test_a_parent_cancel_wakes_waiters_on_every_descendant() -> None:
    root, cancel = context.with_cancel(BG)
    leaves = [context.with_value(context.with_cancel(root)[0], "i", i) for i in range(8)]
    ch: Chan[int] = Chan()
    errors: list[BaseException] = []

    def waiter(ctx: Context) -> None:
        try:
            ch.recv(ctx=ctx, timeout=WAIT)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=waiter, args=(c,)) for c in leaves]
    for t in threads:
        t.start()
    wait_until(lambda: ch.statistics().receivers_waiting == 8)  # all parked
    cancel()
    for t in threads:
        t.join(WAIT)
    assert len(errors) == 8 and all(isinstance(e, Canceled) for e in errors)


def test_a_blocked_call_with_an_ended_context_raises_at_once() -> None:
    ctx, cancel = context.with_cancel(BG)
    cancel()
    with pytest.raises(Canceled):
        Chan[int]().recv(ctx=ctx)


class _EndsWhileWaitStarts:
    """A context that ends between a wait's first check and its registration."""

    def __init__(self) -> None:
        self.ctx, self.cancel = context.with_cancel(BG)
        self.checked = False

    def err(self) -> BaseException | None:
        if not self.checked:
            self.checked = True
            return None
        return self.ctx.err()

    def _add_waiter(self, fn: Any) -> object | None:
        self.cancel()
        return self.ctx._add_waiter(fn)

    def _remove_waiter(self, token: object) -> None:
        self.ctx._remove_waiter(token)


def test_a_context_ending_while_a_thread_wait_starts_still_wakes_it() -> None:
    with pytest.raises(Canceled):
        Chan[int]().recv(ctx=_EndsWhileWaitStarts(), timeout=WAIT)


def test_a_context_ending_while_a_task_wait_starts_still_wakes_it() -> None:
    async def main() -> None:
        with pytest.raises(Canceled):
            await Chan[int]().arecv(ctx=_EndsWhileWaitStarts(), timeout=WAIT)

    run_async(main())


# -- the waiter protocol -----------------------------------------------------------


def test_waiters_are_called_once_and_can_be_removed() -> None:
    ctx, cancel = context.with_cancel(BG)
    calls: list[str] = []
    kept = ctx._add_waiter(lambda: calls.append("kept"))
    removed = ctx._add_waiter(lambda: calls.append("removed"))
    assert kept is not None and removed is not None and kept != removed
    ctx._remove_waiter(removed)
    cancel()
    cancel()
    assert calls == ["kept"]
    assert ctx._add_waiter(lambda: calls.append("late")) is None
    assert calls == ["kept"]
    ctx._remove_waiter(kept)  # after the end: a no-op


def test_a_failing_waiter_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    ctx, cancel = context.with_cancel(BG)
    calls: list[int] = []

    def bad() -> None:
        raise RuntimeError("boom")

    ctx._add_waiter(bad)
    ctx._add_waiter(lambda: calls.append(1))
    child, _ = context.with_cancel(ctx)
    cancel()
    assert calls == [1]
    assert ended(child)
    assert "boom" in caplog.text


def test_waiters_on_a_context_that_never_ends_are_harmless() -> None:
    for ctx in (BG, context.without_cancel(BG), context.with_value(BG, "k", 1)):
        token = ctx._add_waiter(lambda: None)
        assert token is not None
        ctx._remove_waiter(token)


# -- after_func --------------------------------------------------------------------


def test_after_func_runs_in_its_own_goroutine_after_cancel() -> None:
    ctx, cancel = context.with_cancel(BG)
    ran = threading.Event()
    where: list[int] = []

    def fn() -> None:
        where.append(threading.get_ident())
        ran.set()

    stop = context.after_func(ctx, fn)
    assert not ran.wait(0.02)
    cancel()
    assert ran.wait(WAIT)
    assert where[0] != threading.get_ident()
    assert stop() is False


def test_after_func_on_an_ended_context_runs_at_once() -> None:
    ctx, cancel = context.with_cancel(BG)
    cancel()
    ran = threading.Event()
    stop = context.after_func(ctx, ran.set)
    assert ran.wait(WAIT)
    assert stop() is False


def test_after_func_stop_prevents_the_call() -> None:
    ctx, cancel = context.with_cancel(BG)
    ran = threading.Event()
    stop = context.after_func(ctx, ran.set)
    assert stop() is True
    assert stop() is False
    cancel()
    assert not ran.wait(0.05)


def test_after_func_registrations_are_independent() -> None:
    ctx, cancel = context.with_cancel(BG)
    first, second = threading.Event(), threading.Event()
    stop_first = context.after_func(ctx, first.set)
    context.after_func(ctx, second.set)
    assert stop_first()
    cancel()
    assert second.wait(WAIT)
    assert not first.is_set()


def test_after_func_accepts_a_coroutine_function() -> None:
    ctx, cancel = context.with_cancel(BG)
    ran = threading.Event()

    async def fn() -> None:
        ran.set()

    context.after_func(ctx, fn)
    cancel()
    assert ran.wait(WAIT)


def test_after_func_on_a_context_that_never_ends_never_runs() -> None:
    ran = threading.Event()
    stop = context.after_func(context.without_cancel(BG), ran.set)
    assert stop() is True
    with pytest.raises(TypeError, match="fn"):
        context.after_func(BG, None)  # type: ignore[arg-type]


# -- with blocks -------------------------------------------------------------------


def test_the_pair_unpacks_and_cancels_at_the_end_of_a_with_block() -> None:
    pair = context.with_timeout(BG, 1000)
    ctx, cancel = pair
    assert callable(cancel)
    with pair as entered:
        assert entered is ctx and ctx.err() is None
    assert isinstance(ctx.err(), Canceled)
    with pytest.raises(KeyError), context.with_cancel(BG) as c2:
        raise KeyError("x")
    assert isinstance(c2.err(), Canceled)


def test_a_cause_pair_records_the_exception_that_left_the_block() -> None:
    with pytest.raises(KeyError), context.with_cancel_cause(BG) as ctx:
        raise KeyError("x")
    assert isinstance(context.cause(ctx), KeyError)
    with context.with_cancel_cause(BG) as ok:
        pass
    assert isinstance(context.cause(ok), Canceled)


def test_the_pair_works_as_an_async_with_block() -> None:
    async def main() -> Context:
        async with context.with_timeout(BG, 1000) as ctx:
            assert ctx.err() is None
        async with context.with_cancel_cause(BG) as cc:
            pass
        assert isinstance(cc.err(), Canceled)
        return ctx

    assert isinstance(run_async(main()).err(), Canceled)


# -- the asyncio bridge: context.scope ---------------------------------------------


def test_scope_turns_a_context_cancel_into_its_error() -> None:
    async def main() -> None:
        ctx, cancel = context.with_cancel(BG)
        asyncio.get_running_loop().call_later(0.02, cancel)
        with pytest.raises(Canceled):
            async with context.scope(ctx):
                await asyncio.sleep(WAIT)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await asyncio.sleep(0)  # no cancellation left pending

    run_async(main())


def test_scope_turns_a_deadline_into_deadline_exceeded() -> None:
    async def main() -> None:
        ctx, cancel = context.with_timeout(BG, 0.02)
        with pytest.raises(DeadlineExceeded) as info:
            async with context.scope(ctx):
                await asyncio.Event().wait()
        assert isinstance(info.value.__cause__, asyncio.CancelledError)
        cancel()

    run_async(main())


def test_scope_chains_the_cancel_cause() -> None:
    async def main() -> None:
        ctx, cancel = context.with_cancel_cause(BG)
        why = ConnectionAbortedError("shutting down")
        asyncio.get_running_loop().call_soon(cancel, why)
        with pytest.raises(Canceled) as info:
            async with context.scope(ctx):
                await asyncio.sleep(WAIT)
        assert info.value.__cause__ is why

    run_async(main())


def test_scope_is_cancelled_by_a_cancel_from_another_thread() -> None:
    async def main() -> None:
        ctx, cancel = context.with_cancel(BG)
        t = threading.Timer(0.05, cancel)
        t.start()
        with pytest.raises(Canceled):
            async with context.scope(ctx):
                await asyncio.sleep(WAIT)
        t.join(WAIT)

    run_async(main())


def test_scope_leaves_an_outer_cancellation_to_propagate() -> None:
    async def body(ctx: Context, entered: asyncio.Event) -> None:
        async with context.scope(ctx):
            entered.set()
            await asyncio.sleep(WAIT)

    async def main() -> None:
        ctx, cancel = context.with_cancel(BG)
        entered = asyncio.Event()
        task = asyncio.create_task(body(ctx, entered))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancel()

    run_async(main())


def test_scope_leaves_an_outer_cancellation_racing_the_context() -> None:
    async def body(ctx: Context, entered: asyncio.Event) -> None:
        async with context.scope(ctx):
            entered.set()
            await asyncio.sleep(WAIT)

    async def main() -> None:
        ctx, cancel = context.with_cancel(BG)
        entered = asyncio.Event()
        task = asyncio.create_task(body(ctx, entered))
        await entered.wait()
        cancel()
        await asyncio.sleep(0)  # the scope's cancellation is delivered first
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(main())


def test_asyncio_timeout_nested_in_a_scope_still_works() -> None:
    async def main() -> None:
        ctx, cancel = context.with_timeout(BG, 1000)
        async with context.scope(ctx):
            with pytest.raises(TimeoutError) as info:
                async with asyncio.timeout(0.02):
                    await asyncio.sleep(WAIT)
            assert not isinstance(info.value, DeadlineExceeded)
            await asyncio.sleep(0)
        cancel()

    run_async(main())


def test_a_scope_nested_in_asyncio_timeout_lets_the_timeout_win() -> None:
    async def main() -> None:
        ctx, cancel = context.with_timeout(BG, 1000)
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.02), context.scope(ctx):
                await asyncio.sleep(WAIT)
        assert not isinstance(info.value, DeadlineExceeded)
        assert ctx.err() is None
        cancel()

    run_async(main())


def test_nested_scopes_report_the_context_that_ended() -> None:
    async def main() -> None:
        outer, cancel_outer = context.with_cancel(BG)
        inner, cancel_inner = context.with_timeout(BG, 0.02)
        with pytest.raises(DeadlineExceeded):
            async with context.scope(outer), context.scope(inner):
                await asyncio.sleep(WAIT)
        assert outer.err() is None
        cancel_outer()
        cancel_inner()

    run_async(main())


def test_scope_that_ends_normally_leaves_no_cancellation_behind() -> None:
    async def main() -> None:
        ctx, cancel = context.with_cancel(BG)
        async with context.scope(ctx):
            cancel()  # ends while the body runs, but the body finishes first
        await asyncio.sleep(0.01)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0

    run_async(main())


def test_scope_of_an_ended_context_raises_without_running_the_body() -> None:
    async def main() -> None:
        ctx, cancel = context.with_cancel(BG)
        cancel()
        ran = False
        with pytest.raises(Canceled):
            async with context.scope(ctx):
                ran = True
        assert not ran

    run_async(main())


def test_scope_misuse_raises() -> None:
    async def main() -> None:
        s = context.scope(BG)
        async with s:
            pass
        with pytest.raises(RuntimeError, match="already"):
            async with s:
                pass

    run_async(main())
    with pytest.raises(TypeError, match="ctx"):
        context.scope(None)  # type: ignore[arg-type]


def test_scope_works_with_goconc_waits_and_time() -> None:
    async def main() -> None:
        ctx, cancel = context.with_timeout(BG, 0.05)
        with pytest.raises(DeadlineExceeded):
            async with context.scope(ctx):
                await gtime.asleep(WAIT)
        cancel()

    run_async(main())
