"""goconc.chan: Go's channel semantics, for threads, asyncio tasks and both at once."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import Chan, ChanClosed
from goconc.chan import ChanStatistics

pytestmark = pytest.mark.goconc_leaks

# How long a test lets a call that must stay blocked run before checking it
# is still blocked.  Short: a blocked call passing it is the expected case.
BLOCKED = 0.05


class Worker:
    """A thread running ``fn(*args, **kwargs)``; ``join`` bounds the wait and re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._fn = fn
        self._thread = threading.Thread(target=self._run, args=args, kwargs=kwargs, daemon=True)
        self._thread.start()

    def _run(self, *args: Any, **kwargs: Any) -> None:
        try:
            self.result = self._fn(*args, **kwargs)
        except BaseException as e:
            self.error = e
        finally:
            self.done.set()

    def join(self, timeout: float = WAIT) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker thread did not finish in time"
        if self.error is not None:
            raise self.error
        return self.result


class FakeCanceled(Exception):
    pass


class FakeCtx:
    """The part of a goconc Context that the waiter uses, under the test's control."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._err: BaseException | None = None
        self._waiters: dict[int, Callable[[], object]] = {}
        self._next = 0

    def err(self) -> BaseException | None:
        with self._mu:
            return self._err

    def _add_waiter(self, fn: Callable[[], object]) -> object | None:
        with self._mu:
            if self._err is not None:
                return None
            self._next += 1
            self._waiters[self._next] = fn
            return self._next

    def _remove_waiter(self, token: object) -> None:
        with self._mu:
            self._waiters.pop(token, None)  # type: ignore[call-overload]

    def waiters(self) -> int:
        with self._mu:
            return len(self._waiters)

    def cancel(self) -> None:
        with self._mu:
            if self._err is not None:
                return
            self._err = FakeCanceled("fake context canceled")
            fns = list(self._waiters.values())
            self._waiters.clear()
        for fn in fns:
            fn()


def send_all(ch: Chan[int], values: range) -> None:
    for v in values:
        ch.send(v, timeout=WAIT)


def wait_until(pred: Callable[[], bool], bound: float = WAIT) -> None:
    deadline = time.monotonic() + bound
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


async def await_until(pred: Callable[[], bool], bound: float = WAIT) -> None:
    deadline = time.monotonic() + bound
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


def receivers(ch: Chan[Any]) -> int:
    return ch.statistics().receivers_waiting


def senders(ch: Chan[Any]) -> int:
    return ch.statistics().senders_waiting


# -- construction ----------------------------------------------------------------------


def test_default_channel_is_unbuffered_and_generic() -> None:
    ch = Chan[int]()
    assert ch.cap == 0
    assert len(ch) == 0
    assert bool(ch) is True  # never falsy, even when empty
    assert "cap=0" in repr(ch) and "open" in repr(ch)


def test_buffered_channel_reports_cap_and_len() -> None:
    ch: Chan[str] = Chan(3)
    ch.send("a")
    ch.send("b")
    assert (ch.cap, len(ch)) == (3, 2)
    assert ch.statistics() == ChanStatistics(
        cap=3, len=2, closed=False, senders_waiting=0, receivers_waiting=0
    )


@pytest.mark.parametrize("cap", [-1, -100])
def test_negative_cap_is_rejected_naming_cap(cap: int) -> None:
    with pytest.raises(ValueError, match="cap"):
        Chan(cap)


@pytest.mark.parametrize("cap", [1.5, "3", None, True])
def test_non_integer_cap_is_rejected_naming_cap(cap: Any) -> None:
    with pytest.raises(TypeError, match="cap"):
        Chan(cap)


def test_bad_timeout_is_rejected_at_the_call_site() -> None:
    ch: Chan[int] = Chan(1)
    with pytest.raises(ValueError, match="timeout"):
        ch.send(1, timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        ch.recv(timeout=float("nan"))
    assert len(ch) == 0  # the rejected send did not happen


# -- unbuffered: rendezvous ----------------------------------------------------------


def test_unbuffered_send_blocks_until_a_receiver_takes_the_value() -> None:
    ch: Chan[int] = Chan()
    sender = Worker(ch.send, 42, timeout=WAIT)
    assert not sender.done.wait(BLOCKED)
    wait_until(lambda: senders(ch) == 1)
    assert ch.recv(timeout=WAIT) == 42
    sender.join()


def test_unbuffered_recv_blocks_until_a_sender_arrives() -> None:
    ch: Chan[int] = Chan()
    receiver = Worker(ch.recv, timeout=WAIT)
    assert not receiver.done.wait(BLOCKED)
    ch.send(7, timeout=WAIT)
    assert receiver.join() == 7


def test_unbuffered_send_without_receiver_times_out_and_delivers_nothing() -> None:
    ch: Chan[int] = Chan()
    with pytest.raises(TimeoutError):
        ch.send(1, timeout=0.01)
    with pytest.raises(TimeoutError):
        ch.send(2, timeout=0)
    assert senders(ch) == 0
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.01)


def test_async_unbuffered_send_completes_only_when_taken() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        sent = asyncio.create_task(ch.asend(5))
        await asyncio.sleep(BLOCKED)
        assert not sent.done()
        assert await ch.arecv() == 5
        await asyncio.wait_for(sent, WAIT)

    run_async(main())


# -- buffered: capacity and order ----------------------------------------------------


def test_buffered_sends_do_not_block_until_the_buffer_is_full() -> None:
    ch: Chan[int] = Chan(3)
    for i in range(3):
        ch.send(i, timeout=0)
    with pytest.raises(TimeoutError):
        ch.send(3, timeout=0)
    with pytest.raises(TimeoutError):
        ch.send(3, timeout=0.01)
    assert len(ch) == 3
    assert [ch.recv(timeout=0) for _ in range(3)] == [0, 1, 2]


def test_a_receive_from_a_full_buffer_admits_the_oldest_blocked_sender() -> None:
    ch: Chan[str] = Chan(1)
    ch.send("a")
    first = Worker(ch.send, "b", timeout=WAIT)
    wait_until(lambda: senders(ch) == 1)
    second = Worker(ch.send, "c", timeout=WAIT)
    wait_until(lambda: senders(ch) == 2)
    assert ch.recv(timeout=WAIT) == "a"
    first.join()  # its value moved into the buffer: its send is complete
    assert len(ch) == 1 and senders(ch) == 1
    assert ch.recv(timeout=WAIT) == "b"
    assert ch.recv(timeout=WAIT) == "c"
    second.join()


@pytest.mark.parametrize("cap", [0, 1, 5, 100])
def test_values_arrive_in_the_order_they_were_sent(cap: int) -> None:
    ch: Chan[int] = Chan(cap)
    n = 500
    sender = Worker(send_all, ch, range(n))
    got = [ch.recv(timeout=WAIT) for _ in range(n)]
    sender.join()
    assert got == list(range(n))


def test_blocked_receivers_are_served_first_come_first_served() -> None:
    ch: Chan[int] = Chan()
    workers = []
    for i in range(3):
        workers.append(Worker(ch.recv, timeout=WAIT))
        wait_until(lambda i=i: receivers(ch) == i + 1)  # type: ignore[misc]
    for v in (10, 11, 12):
        ch.send(v, timeout=WAIT)
    assert [w.join() for w in workers] == [10, 11, 12]


def test_async_buffered_round_trip_and_len() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan(2)
        await ch.asend(1)
        await ch.asend(2)
        assert len(ch) == 2
        with pytest.raises(TimeoutError):
            await ch.asend(3, timeout=0.01)
        assert await ch.arecv() == 1
        assert await ch.arecv_ok() == (2, True)
        with pytest.raises(TimeoutError):
            await ch.arecv(timeout=0.01)

    run_async(main())


# -- close --------------------------------------------------------------------------


def test_close_wakes_every_blocked_receiver_with_not_ok() -> None:
    ch: Chan[int] = Chan()
    oks = [Worker(ch.recv_ok, timeout=WAIT) for _ in range(3)]
    raisers = [Worker(ch.recv, timeout=WAIT) for _ in range(2)]
    wait_until(lambda: receivers(ch) == 5)
    ch.close()
    assert [w.join() for w in oks] == [(None, False)] * 3
    for w in raisers:
        with pytest.raises(ChanClosed, match="receive from closed channel"):
            w.join()


def test_close_makes_every_blocked_sender_raise() -> None:
    ch: Chan[int] = Chan()
    workers = [Worker(ch.send, i, timeout=WAIT) for i in range(3)]
    wait_until(lambda: senders(ch) == 3)
    ch.close()
    for w in workers:
        with pytest.raises(ChanClosed, match="send on closed channel"):
            w.join()
    assert ch.recv_ok(timeout=0) == (None, False)  # nothing was delivered


def test_close_wakes_blocked_tasks_too() -> None:
    async def main() -> None:
        rch: Chan[int] = Chan()
        sch: Chan[int] = Chan()
        r_ok = asyncio.create_task(rch.arecv_ok())
        r = asyncio.create_task(rch.arecv())
        s = asyncio.create_task(sch.asend(1))
        await await_until(lambda: receivers(rch) == 2 and senders(sch) == 1)
        rch.close()
        sch.close()
        assert await r_ok == (None, False)
        with pytest.raises(ChanClosed, match="receive from closed channel"):
            await r
        with pytest.raises(ChanClosed, match="send on closed channel"):
            await s

    run_async(main())


def test_receives_after_close_drain_the_buffer_first() -> None:
    ch: Chan[int] = Chan(3)
    for i in range(3):
        ch.send(i)
    ch.close()
    assert ch.statistics().closed
    assert ch.recv(timeout=0) == 0
    assert ch.recv_ok(timeout=0) == (1, True)
    assert ch.recv() == 2
    assert ch.recv_ok() == (None, False)
    assert ch.recv_ok(timeout=WAIT) == (None, False)  # at once, never blocks
    with pytest.raises(ChanClosed, match="receive from closed channel"):
        ch.recv()


def test_async_receives_after_close_drain_the_buffer_first() -> None:
    async def main() -> None:
        ch: Chan[str] = Chan(2)
        await ch.asend("x")
        ch.close()
        assert await ch.arecv() == "x"
        assert await ch.arecv_ok() == (None, False)
        with pytest.raises(ChanClosed, match="receive from closed channel"):
            await ch.arecv()

    run_async(main())


def test_send_on_a_closed_channel_raises_even_with_room_or_receivers() -> None:
    ch: Chan[int] = Chan(5)
    ch.close()
    with pytest.raises(ChanClosed, match=r"^send on closed channel$"):
        ch.send(1)
    with pytest.raises(ChanClosed, match="send on closed channel"):
        ch.try_send(1)
    with pytest.raises(ChanClosed, match="send on closed channel"):
        run_async(ch.asend(1))
    assert len(ch) == 0


def test_close_of_a_closed_channel_raises() -> None:
    ch: Chan[int] = Chan()
    ch.close()
    with pytest.raises(ChanClosed, match=r"^close of closed channel$"):
        ch.close()
    assert isinstance(ChanClosed("x"), Exception)


def test_iteration_receives_until_close_in_both_worlds() -> None:
    ch: Chan[int] = Chan(2)

    def produce() -> None:
        for i in range(10):
            ch.send(i, timeout=WAIT)
        ch.close()

    w = Worker(produce)
    assert list(ch) == list(range(10))
    w.join()

    async def main() -> list[int]:
        ach: Chan[int] = Chan()

        async def aproduce() -> None:
            for i in range(5):
                await ach.asend(i)
            ach.close()

        t = asyncio.create_task(aproduce())
        got = [v async for v in ach]
        await t
        return got

    assert run_async(main()) == list(range(5))


def test_iteration_of_a_closed_buffered_channel_yields_what_is_left() -> None:
    ch: Chan[int] = Chan(3)
    ch.send(1)
    ch.send(2)
    ch.close()
    assert list(ch) == [1, 2]
    assert list(ch) == []


# -- try_send --------------------------------------------------------------------------


def test_try_send_never_blocks() -> None:
    ch: Chan[int] = Chan(1)
    assert ch.try_send(1) is True
    assert ch.try_send(2) is False
    assert ch.recv() == 1
    un: Chan[int] = Chan()
    assert un.try_send(1) is False
    receiver = Worker(un.recv, timeout=WAIT)
    wait_until(lambda: receivers(un) == 1)
    assert un.try_send(9) is True
    assert receiver.join() == 9


# -- timeouts ---------------------------------------------------------------------------


def test_recv_timeout_leaves_no_waiter_behind() -> None:
    ch: Chan[int] = Chan()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        ch.recv(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    assert receivers(ch) == 0
    assert not ch.try_send(1)  # no stale receiver takes it


def test_async_timeouts_leave_no_waiter_behind() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        with pytest.raises(TimeoutError):
            await ch.arecv(timeout=0.02)
        with pytest.raises(TimeoutError):
            await ch.asend(1, timeout=0.02)
        with pytest.raises(TimeoutError):
            await ch.arecv_ok(timeout=0)
        assert receivers(ch) == 0 and senders(ch) == 0

    run_async(main())


def test_timeout_zero_succeeds_when_the_operation_is_ready() -> None:
    ch: Chan[int] = Chan(1)
    ch.send(3, timeout=0)
    assert ch.recv(timeout=0) == 3


# -- contexts ---------------------------------------------------------------------------


def test_a_done_context_fails_every_call_even_a_ready_one() -> None:
    ctx = FakeCtx()
    ctx.cancel()
    ch: Chan[int] = Chan(1)
    with pytest.raises(FakeCanceled):
        ch.send(1, ctx=ctx)
    assert len(ch) == 0
    ch.send(1)
    with pytest.raises(FakeCanceled):
        ch.recv(ctx=ctx)
    with pytest.raises(FakeCanceled):
        ch.recv_ok(ctx=ctx)
    with pytest.raises(FakeCanceled):
        run_async(ch.arecv(ctx=ctx))
    with pytest.raises(FakeCanceled):
        run_async(ch.asend(2, ctx=ctx))
    assert ch.recv() == 1  # still there


def test_a_context_ending_while_blocked_raises_its_error_and_leaves_nothing() -> None:
    ch: Chan[int] = Chan()
    ctx = FakeCtx()
    r = Worker(ch.recv, ctx=ctx, timeout=WAIT)
    s = Worker(Chan[int]().send, 1, ctx=ctx, timeout=WAIT)
    wait_until(lambda: ctx.waiters() == 2)
    ctx.cancel()
    with pytest.raises(FakeCanceled):
        r.join()
    with pytest.raises(FakeCanceled):
        s.join()
    assert receivers(ch) == 0
    assert not ch.try_send(1)


def test_a_context_ending_while_a_task_is_blocked_raises_its_error() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        ctx = FakeCtx()
        t = asyncio.create_task(ch.arecv(ctx=ctx))
        await await_until(lambda: ctx.waiters() == 1)
        threading.Thread(target=ctx.cancel).start()
        with pytest.raises(FakeCanceled):
            await t
        assert receivers(ch) == 0 and ctx.waiters() == 0

    run_async(main())


def test_completed_calls_unregister_from_their_context() -> None:
    ctx = FakeCtx()
    ch: Chan[int] = Chan()
    w = Worker(ch.recv, ctx=ctx, timeout=WAIT)
    wait_until(lambda: ctx.waiters() == 1)
    ch.send(1, ctx=ctx)
    assert w.join() == 1
    assert ctx.waiters() == 0


def test_with_goconc_contexts() -> None:
    from goconc import context

    ch: Chan[int] = Chan()
    ctx, cancel = context.with_cancel(context.background())
    w = Worker(ch.recv, ctx=ctx)
    wait_until(lambda: receivers(ch) == 1)
    cancel()
    with pytest.raises(context.Canceled):
        w.join()
    tctx, tcancel = context.with_timeout(context.background(), 0.02)
    with pytest.raises(context.DeadlineExceeded):
        ch.send(1, ctx=tctx)
    tcancel()
    assert receivers(ch) == 0 and senders(ch) == 0


# -- interop ----------------------------------------------------------------------------


def test_thread_sends_and_task_receives() -> None:
    ch: Chan[int] = Chan()
    n = 200

    async def main() -> list[int]:
        w = Worker(send_all, ch, range(n))
        got = [await ch.arecv(timeout=WAIT) for _ in range(n)]
        await asyncio.to_thread(w.join)
        return got

    assert run_async(main()) == list(range(n))


def test_task_sends_and_thread_receives() -> None:
    ch: Chan[int] = Chan()
    n = 200
    w = Worker(lambda: [ch.recv(timeout=WAIT) for _ in range(n)])

    async def main() -> None:
        for i in range(n):
            await ch.asend(i, timeout=WAIT)

    run_async(main())
    assert w.join() == list(range(n))


def test_tasks_on_two_loops_in_two_threads_exchange_values() -> None:
    ping: Chan[int] = Chan()
    pong: Chan[int] = Chan()
    n = 200

    async def echo() -> int:
        for _ in range(n):
            await pong.asend(await ping.arecv(timeout=WAIT) + 1, timeout=WAIT)
        return n

    async def drive() -> list[int]:
        out = []
        for i in range(n):
            await ping.asend(i, timeout=WAIT)
            out.append(await pong.arecv(timeout=WAIT))
        return out

    other = Worker(lambda: asyncio.run(echo()))
    assert run_async(drive()) == [i + 1 for i in range(n)]
    assert other.join() == n


def test_threads_and_tasks_on_one_channel_lose_and_duplicate_nothing() -> None:
    ch: Chan[int] = Chan(4)
    per = 300
    results: list[int] = []
    mu = threading.Lock()

    def t_send(base: int) -> None:
        for i in range(per):
            ch.send(base + i, timeout=WAIT)

    def t_recv() -> None:
        for _ in range(per):
            v = ch.recv(timeout=WAIT)
            with mu:
                results.append(v)

    async def a_side() -> None:
        async def a_send(base: int) -> None:
            for i in range(per):
                await ch.asend(base + i, timeout=WAIT)

        async def a_recv() -> None:
            for _ in range(per):
                v = await ch.arecv(timeout=WAIT)
                with mu:
                    results.append(v)

        await asyncio.gather(a_send(10_000), a_recv(), a_recv())

    workers = [Worker(t_send, 0), Worker(t_send, 20_000), Worker(t_recv)]
    run_async(a_side())
    for w in workers:
        w.join()
    expected = [b + i for b in (0, 10_000, 20_000) for i in range(per)]
    assert sorted(results) == expected


# -- cancellation safety (asyncio) ---------------------------------------------------------


def test_cancelled_receiver_never_loses_a_value() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        r = asyncio.create_task(ch.arecv())
        await await_until(lambda: receivers(ch) == 1)
        # The value is handed to the parked task, which is cancelled before it
        # can resume: the value must go back to the channel.
        assert ch.try_send(99)
        r.cancel()
        with pytest.raises(asyncio.CancelledError):
            await r
        assert len(ch) == 1  # put back at the head (briefly above cap=0)
        assert await ch.arecv(timeout=0) == 99
        assert len(ch) == 0

    run_async(main())


def test_a_value_given_back_goes_to_the_next_parked_receiver_first() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        first = asyncio.create_task(ch.arecv())
        await await_until(lambda: receivers(ch) == 1)
        second = asyncio.create_task(ch.arecv())
        await await_until(lambda: receivers(ch) == 2)
        assert ch.try_send(1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, WAIT) == 1
        assert len(ch) == 0

    run_async(main())


def test_a_value_given_back_keeps_its_place_ahead_of_later_ones() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan(2)
        r = asyncio.create_task(ch.arecv())
        await await_until(lambda: receivers(ch) == 1)
        assert ch.try_send(1)  # handed to r
        assert ch.try_send(2)  # buffered
        r.cancel()
        with pytest.raises(asyncio.CancelledError):
            await r
        assert len(ch) == 2
        assert [await ch.arecv(), await ch.arecv()] == [1, 2]

    run_async(main())


def test_cancelled_parked_receiver_is_removed_from_the_channel() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        r = asyncio.create_task(ch.arecv_ok())
        await await_until(lambda: receivers(ch) == 1)
        r.cancel()
        with pytest.raises(asyncio.CancelledError):
            await r
        assert receivers(ch) == 0
        assert not ch.try_send(1)

    run_async(main())


def test_cancelled_sender_whose_value_was_taken_delivered_it_exactly_once() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan()
        s = asyncio.create_task(ch.asend(5))
        await await_until(lambda: senders(ch) == 1)
        assert ch.recv(timeout=0) == 5  # taken from the parked sender
        s.cancel()
        with pytest.raises(asyncio.CancelledError):
            await s
        assert len(ch) == 0 and senders(ch) == 0
        with pytest.raises(TimeoutError):
            ch.recv(timeout=0)

    run_async(main())


def test_cancelled_parked_sender_sends_nothing() -> None:
    async def main() -> None:
        ch: Chan[int] = Chan(1)
        await ch.asend(1)
        s = asyncio.create_task(ch.asend(2))
        await await_until(lambda: senders(ch) == 1)
        s.cancel()
        with pytest.raises(asyncio.CancelledError):
            await s
        assert await ch.arecv() == 1
        with pytest.raises(TimeoutError):
            await ch.arecv(timeout=0)

    run_async(main())


def test_thread_timeout_that_loses_the_race_returns_the_value() -> None:
    # Many tiny timeouts racing sends: every value is either received by the
    # timed call or stays for the next one; none is lost or doubled.
    ch: Chan[int] = Chan()
    n = 300
    got: list[int] = []

    def receive() -> None:
        while len(got) < n:
            try:
                got.append(ch.recv(timeout=0.0005))
            except TimeoutError:
                pass

    w = Worker(receive)
    for i in range(n):
        ch.send(i, timeout=WAIT)
    w.join()
    assert got == list(range(n))


# -- statistics and misuse -------------------------------------------------------------


def test_statistics_count_parked_parties() -> None:
    ch: Chan[int] = Chan()
    w = Worker(ch.recv, timeout=WAIT)
    wait_until(lambda: receivers(ch) == 1)
    st = ch.statistics()
    assert (st.cap, st.len, st.closed, st.senders_waiting) == (0, 0, False, 0)
    ch.send(1)
    w.join()
    assert receivers(ch) == 0
    with pytest.raises(AttributeError):
        st.len = 3  # type: ignore[misc]


def test_closed_channel_repr_says_so() -> None:
    ch: Chan[int] = Chan(2)
    ch.send(1)
    ch.close()
    assert repr(ch) == "<Chan cap=2 len=1 closed>"


def _use_and_drop() -> weakref.ref[Chan[int]]:
    ch: Chan[int] = Chan(2)
    ch.send(1)
    assert ch.recv() == 1
    w = Worker(ch.recv, timeout=WAIT)
    wait_until(lambda: receivers(ch) == 1)
    ch.send(2)
    assert w.join() == 2
    return weakref.ref(ch)


def test_a_channel_is_freed_without_the_cycle_collector() -> None:
    gc.disable()
    try:
        ref = _use_and_drop()
        assert ref() is None
    finally:
        gc.enable()
