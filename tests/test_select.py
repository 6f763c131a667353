"""goconc.chan.select: Go's select semantics, for threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import Chan, ChanClosed, Recv, Selected, Send, aselect, select

pytestmark = pytest.mark.goconc_leaks

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

    def cancel(self) -> None:
        with self._mu:
            self._err = FakeCanceled("fake context canceled")
            fns = list(self._waiters.values())
            self._waiters.clear()
        for fn in fns:
            fn()


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


def receivers(*chans: Chan[Any]) -> int:
    return sum(ch.statistics().receivers_waiting for ch in chans)


def senders(*chans: Chan[Any]) -> int:
    return sum(ch.statistics().senders_waiting for ch in chans)


def full(n: int, value: int, cap: int | None = None) -> Chan[int]:
    ch: Chan[int] = Chan(cap if cap is not None else n)
    for _ in range(n):
        ch.send(value)
    return ch


# -- ready cases --------------------------------------------------------------------


def test_select_receives_from_the_ready_case_by_index() -> None:
    a: Chan[str] = Chan(1)
    b: Chan[str] = Chan(1)
    b.send("hello")
    sel = select(a, b, timeout=WAIT)
    assert sel == Selected(1, "hello", True)
    assert (sel.index, sel.value, sel.ok) == (1, "hello", True)
    index, value, ok = sel
    assert (index, value, ok) == (1, "hello", True)


def test_a_bare_channel_and_recv_are_the_same_case() -> None:
    a = full(1, 5)
    assert select(None, Recv(a), timeout=WAIT) == (1, 5, True)


def test_send_case_fires_with_no_value_and_delivers() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan(1)
    assert select(Send(a, 1), Send(b, 2), timeout=WAIT) == Selected(1, None, True)
    assert b.recv(timeout=0) == 2
    with pytest.raises(TimeoutError):
        a.recv(timeout=0)


def test_send_case_hands_to_a_parked_receiver() -> None:
    ch: Chan[int] = Chan()
    w = Worker(ch.recv, timeout=WAIT)
    wait_until(lambda: receivers(ch) == 1)
    assert select(Send(ch, 3), timeout=WAIT) == (0, None, True)
    assert w.join() == 3


def test_recv_case_takes_from_a_parked_sender() -> None:
    ch: Chan[int] = Chan()
    w = Worker(ch.send, 4, timeout=WAIT)
    wait_until(lambda: senders(ch) == 1)
    assert select(ch, default=True) == (0, 4, True)
    w.join()


def test_match_statement_reads_naturally() -> None:
    jobs = full(1, 10)
    results: Chan[int] = Chan(1)
    match select(jobs, Send(results, 1), timeout=WAIT):
        case Selected(0, job, True):
            assert job == 10
        case Selected(1, _, _):
            assert results.recv(timeout=0) == 1
        case _:
            pytest.fail("no case matched")


# -- default ------------------------------------------------------------------------


def test_default_is_taken_only_when_nothing_is_ready() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan(1)
    assert select(a, b, default=True) == Selected(-1, None, False)
    assert select(Send(a, 1), default=True).index == -1
    b.send(1)
    assert select(a, b, default=True) == (1, 1, True)
    assert select(Send(b, 2), default=True) == (0, None, True)
    assert select(Send(b, 3), default=True).index == -1  # full again


def test_default_with_no_cases_returns_at_once() -> None:
    assert select(default=True) == Selected(-1, None, False)
    assert select(None, None, default=True).index == -1
    assert run_async(aselect(default=True)).index == -1


def test_a_ready_case_wins_over_default_even_racing_close() -> None:
    # Go's TestNonblockRecvRace: a value is in the buffer; a concurrent close
    # must not make the non-blocking select think the channel is empty.
    for _ in range(200):
        ch = full(1, 1)
        w = Worker(select, ch, default=True)
        ch.close()
        assert w.join() == (0, 1, True)


# -- disabled cases -------------------------------------------------------------------


def test_none_cases_are_disabled_and_keep_their_index() -> None:
    a = full(1, 7)
    assert select(None, None, a, None, timeout=WAIT) == (2, 7, True)
    assert select(Recv(None), Send(None, 1), full(1, 8), timeout=WAIT) == (2, 8, True)


def test_select_with_no_enabled_case_blocks_until_the_timeout() -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        select(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    with pytest.raises(TimeoutError):
        select(None, Recv(None), timeout=0.01)
    with pytest.raises(TimeoutError):
        run_async(aselect(None, timeout=0.01))


def test_select_with_no_enabled_case_ends_with_its_context() -> None:
    ctx = FakeCtx()
    w = Worker(select, None, ctx=ctx)
    assert not w.done.wait(BLOCKED)
    ctx.cancel()
    with pytest.raises(FakeCanceled):
        w.join()


# -- closed channels ------------------------------------------------------------------


def test_recv_case_on_a_closed_channel_is_ready_with_not_ok() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan()
    b.close()
    for _ in range(10):
        assert select(a, b, timeout=WAIT) == Selected(1, None, False)


def test_recv_case_on_a_closed_channel_drains_first() -> None:
    a = full(2, 1)
    a.close()
    assert select(a, timeout=WAIT) == (0, 1, True)
    assert select(a, timeout=WAIT) == (0, 1, True)
    assert select(a, timeout=WAIT) == (0, None, False)


def test_send_case_on_a_closed_channel_raises() -> None:
    a: Chan[int] = Chan(1)
    a.close()
    with pytest.raises(ChanClosed, match="send on closed channel"):
        select(Send(a, 1), timeout=WAIT)
    with pytest.raises(ChanClosed, match="send on closed channel"):
        select(Send(a, 1), default=True)
    with pytest.raises(ChanClosed, match="send on closed channel"):
        run_async(aselect(Send(a, 1)))


def test_close_wakes_a_parked_select_on_its_recv_case() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan()
    w = Worker(select, a, b, timeout=WAIT)
    wait_until(lambda: receivers(a, b) == 2)
    b.close()
    assert w.join() == (1, None, False)
    assert receivers(a) == 0


def test_close_makes_a_parked_select_on_its_send_case_raise() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan()
    w = Worker(select, a, Send(b, 1), timeout=WAIT)
    wait_until(lambda: receivers(a) == 1 and senders(b) == 1)
    b.close()
    with pytest.raises(ChanClosed, match="send on closed channel"):
        w.join()
    assert receivers(a) == 0


# -- blocking and wake-up ---------------------------------------------------------------


def test_parked_select_wakes_on_a_later_send_and_leaves_no_stale_entries() -> None:
    chans: list[Chan[int]] = [Chan() for _ in range(4)]
    w = Worker(select, *chans, timeout=WAIT)
    wait_until(lambda: receivers(*chans) == 4)
    chans[2].send(9, timeout=WAIT)
    assert w.join() == (2, 9, True)
    assert receivers(*chans) == 0
    for i, ch in enumerate(chans):
        if i != 2:
            assert not ch.try_send(1)  # no leftover entry takes a value


def test_parked_select_send_case_fires_when_a_receiver_comes() -> None:
    a: Chan[int] = Chan()
    out: Chan[str] = Chan()
    w = Worker(select, a, Send(out, "v"), timeout=WAIT)
    wait_until(lambda: senders(out) == 1)
    assert out.recv(timeout=WAIT) == "v"
    assert w.join() == (1, None, True)
    assert receivers(a) == 0


def test_async_select_parks_and_wakes() -> None:
    async def main() -> None:
        a: Chan[int] = Chan()
        b: Chan[int] = Chan()
        t = asyncio.create_task(aselect(a, b))
        await await_until(lambda: receivers(a, b) == 2)
        await b.asend(3)
        assert await t == (1, 3, True)
        assert receivers(a, b) == 0
        # woken from another thread
        t = asyncio.create_task(aselect(a, b, timeout=WAIT))
        await await_until(lambda: receivers(a, b) == 2)
        w = Worker(a.send, 4, timeout=WAIT)
        assert await t == (0, 4, True)
        await asyncio.to_thread(w.join)

    run_async(main())


def test_thread_select_woken_by_a_task_and_task_select_by_a_thread() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan()
    w = Worker(select, a, b, timeout=WAIT)

    async def main() -> Selected:
        await await_until(lambda: receivers(a, b) == 2)
        await b.asend(1)
        return await aselect(Send(a, 2), timeout=WAIT)

    def take_from_the_select() -> int:
        wait_until(lambda: senders(a) == 1)
        return a.recv(timeout=WAIT)

    helper = Worker(take_from_the_select)
    assert run_async(main()) == (0, None, True)
    assert w.join() == (1, 1, True)
    assert helper.join() == 2


def test_selects_on_two_loops_in_two_threads_meet() -> None:
    ch: Chan[int] = Chan()
    n = 100

    async def sender() -> None:
        for i in range(n):
            assert await aselect(Send(ch, i), timeout=WAIT) == (0, None, True)

    async def receiver() -> list[int]:
        return [(await aselect(None, ch, timeout=WAIT)).value for _ in range(n)]

    w = Worker(lambda: asyncio.run(sender()))
    assert run_async(receiver()) == list(range(n))
    w.join()


# -- timeouts and contexts ----------------------------------------------------------------


def test_select_timeout_raises_and_dequeues_everything() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan()
    with pytest.raises(TimeoutError):
        select(a, Send(b, 1), timeout=0.02)
    assert receivers(a, b) == 0 and senders(a, b) == 0
    with pytest.raises(TimeoutError):
        run_async(aselect(a, Send(b, 1), timeout=0.02))
    assert receivers(a, b) == 0 and senders(a, b) == 0


def test_select_raises_a_done_context_even_when_ready() -> None:
    ctx = FakeCtx()
    ctx.cancel()
    a = full(1, 1)
    with pytest.raises(FakeCanceled):
        select(a, ctx=ctx)
    with pytest.raises(FakeCanceled):
        select(a, default=True, ctx=ctx)
    with pytest.raises(FakeCanceled):
        run_async(aselect(a, ctx=ctx))
    assert len(a) == 1


def test_select_context_ending_while_parked_dequeues_everything() -> None:
    async def main() -> None:
        a: Chan[int] = Chan()
        b: Chan[int] = Chan()
        ctx = FakeCtx()
        t = asyncio.create_task(aselect(a, Send(b, 1), ctx=ctx))
        await await_until(lambda: receivers(a) == 1 and senders(b) == 1)
        ctx.cancel()
        with pytest.raises(FakeCanceled):
            await t
        assert receivers(a, b) == 0 and senders(a, b) == 0

    run_async(main())


def test_select_on_a_goconc_context_done_channel() -> None:
    from goconc import context

    ctx, cancel = context.with_cancel(context.background())
    work: Chan[int] = Chan()
    w = Worker(select, work, ctx.done, timeout=WAIT)
    wait_until(lambda: receivers(work) == 1)
    cancel()
    assert w.join() == (1, None, False)
    assert receivers(work) == 0


# -- cancellation safety --------------------------------------------------------------------


def test_cancelled_parked_select_leaves_no_entries() -> None:
    async def main() -> None:
        a: Chan[int] = Chan()
        b: Chan[int] = Chan()
        t = asyncio.create_task(aselect(a, Send(b, 1)))
        await await_until(lambda: receivers(a) == 1 and senders(b) == 1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert receivers(a, b) == 0 and senders(a, b) == 0
        assert not a.try_send(1)

    run_async(main())


def test_cancelled_select_gives_a_received_value_back_to_its_channel() -> None:
    async def main() -> None:
        a: Chan[int] = Chan()
        b: Chan[int] = Chan()
        t = asyncio.create_task(aselect(a, b))
        await await_until(lambda: receivers(a, b) == 2)
        assert b.try_send(42)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert receivers(a, b) == 0
        assert (len(a), len(b)) == (0, 1)
        assert await b.arecv(timeout=0) == 42

    run_async(main())


def test_cancelled_select_whose_send_was_taken_delivered_it_once() -> None:
    async def main() -> None:
        a: Chan[int] = Chan()
        out: Chan[int] = Chan()
        t = asyncio.create_task(aselect(a, Send(out, 5)))
        await await_until(lambda: senders(out) == 1)
        assert out.recv(timeout=0) == 5
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert receivers(a) == 0 and senders(out) == 0 and len(out) == 0

    run_async(main())


def test_select_with_tiny_timeouts_never_loses_or_doubles_a_value() -> None:
    chans: list[Chan[int]] = [Chan() for _ in range(3)]
    n = 300
    got: list[int] = []

    def receive() -> None:
        while len(got) < n:
            try:
                got.append(select(*chans, timeout=0.0005).value)
            except TimeoutError:
                pass

    w = Worker(receive)
    for i in range(n):
        chans[i % 3].send(i, timeout=WAIT)
    w.join()
    assert got == list(range(n))


# -- fairness --------------------------------------------------------------------------


def test_select_is_fair_between_two_ready_channels() -> None:
    # Go's TestSelectFairness: two always-ready channels among never-ready ones.
    trials = 4000
    c1 = full(trials, 1)
    c2 = full(trials, 2)
    c3: Chan[int] = Chan()
    c4: Chan[int] = Chan()
    counts = Counter(select(c3, c4, c1, c2, timeout=WAIT).value for _ in range(trials))
    mean = trials * 0.5
    sigma = math.sqrt(trials * 0.25)
    assert abs(counts[1] - mean) < 6 * sigma, counts


@pytest.mark.parametrize("reverse", [False, True])
def test_select_chooses_uniformly_among_ready_cases(reverse: bool) -> None:
    trials = 4000
    chans = [full(trials, i) for i in range(4)]
    cases = list(reversed(chans)) if reverse else chans
    counts = Counter(select(*cases, timeout=WAIT).value for _ in range(trials))
    expected = trials / 4
    chi2 = sum((counts[i] - expected) ** 2 / expected for i in range(4))
    # 3 degrees of freedom: P(chi2 > 40) is about 1e-8.
    assert chi2 < 40, counts


def test_select_is_fair_between_send_and_recv_cases() -> None:
    trials = 2000
    src = full(trials, 0)
    dst: Chan[int] = Chan(trials)
    counts = Counter(select(src, Send(dst, 1), timeout=WAIT).index for _ in range(trials))
    sigma = math.sqrt(trials * 0.25)
    assert abs(counts[0] - trials / 2) < 6 * sigma, counts


def test_async_select_is_fair_too() -> None:
    async def main() -> Counter[int]:
        trials = 2000
        chans = [full(trials, i) for i in range(2)]
        return Counter([(await aselect(*chans)).value for _ in range(trials)])

    counts = run_async(main())
    sigma = math.sqrt(2000 * 0.25)
    assert abs(counts[0] - 1000) < 6 * sigma, counts


# -- the same channel in several cases -----------------------------------------------------


def test_duplicate_channel_cases_are_all_live() -> None:
    ch = full(400, 1)
    counts = Counter(select(ch, Recv(ch), ch, timeout=WAIT).index for _ in range(300))
    assert set(counts) == {0, 1, 2}
    for _ in range(100):
        ch.recv(timeout=WAIT)
    w = Worker(select, ch, ch, timeout=WAIT)  # drained: parks twice on one channel
    wait_until(lambda: receivers(ch) == 2)
    ch.send(5, timeout=WAIT)
    assert w.join()[1:] == (5, True)
    assert receivers(ch) == 0


def test_send_and_recv_cases_on_one_buffered_channel() -> None:
    ch: Chan[int] = Chan(1)
    assert select(ch, Send(ch, 1), timeout=WAIT) == (1, None, True)  # only the send was ready
    assert select(ch, Send(ch, 2), timeout=WAIT) == (0, 1, True)  # only the recv was ready


@pytest.mark.parametrize("cap", [0, 10])
def test_selects_sending_and_receiving_on_one_channel_never_self_receive(cap: int) -> None:
    # Go's TestSelfSelect: two parties both offer to send and to receive on one
    # channel; on an unbuffered channel a party can never receive its own value.
    ch: Chan[int] = Chan(cap)
    n = 500

    def party(p: int) -> None:
        for i in range(n):
            cases = (Send(ch, p), Recv(ch)) if p == 0 or i % 2 == 0 else (Recv(ch), Send(ch, p))
            sel = select(*cases, timeout=WAIT)
            if cap == 0 and isinstance(cases[sel.index], Recv):
                assert sel.value != p, "self receive"

    workers = [Worker(party, p) for p in range(2)]
    for w in workers:
        w.join()


def test_async_selects_on_one_channel_pair_up() -> None:
    async def main() -> Counter[str]:
        ch: Chan[int] = Chan()
        kinds: Counter[str] = Counter()

        async def party(p: int) -> None:
            for _ in range(200):
                sel = await aselect(Send(ch, p), ch, timeout=WAIT)
                if sel.index == 1:
                    assert sel.value != p
                    kinds["recv"] += 1
                else:
                    kinds["send"] += 1

        await asyncio.gather(party(0), party(1))
        return kinds

    kinds = run_async(main())
    assert kinds["recv"] == kinds["send"] == 200


def test_selects_locking_channels_in_opposite_orders_do_not_deadlock() -> None:
    a: Chan[int] = Chan()
    b: Chan[int] = Chan()
    n = 400

    def receive(order: tuple[Chan[int], Chan[int]]) -> int:
        return sum(1 for _ in range(n) if select(*order, timeout=WAIT).ok)

    def send() -> None:
        for i in range(n):
            select(Send(a, i), Send(b, i), timeout=WAIT)

    workers = [Worker(receive, (a, b)), Worker(receive, (b, a)), Worker(send), Worker(send)]
    assert workers[0].join() + workers[1].join() == 2 * n
    workers[2].join()
    workers[3].join()


# -- misuse ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1, "ch", [Chan()], Recv("x"), Send(3, 1)])  # type: ignore[arg-type]
def test_a_case_of_another_type_is_rejected_naming_its_index(bad: Any) -> None:
    with pytest.raises(TypeError, match="case 1"):
        select(None, bad, default=True)
    with pytest.raises(TypeError, match="case 1"):
        run_async(aselect(None, bad))


def test_select_bad_timeout_is_rejected() -> None:
    with pytest.raises(ValueError, match="timeout"):
        select(full(1, 1), timeout=-0.5)


class _ReceiveOnly(Chan[int]):
    _recv_only = True
    __slots__ = ()


def test_select_refuses_a_send_case_on_a_receive_only_channel() -> None:
    ro = _ReceiveOnly(1)
    with pytest.raises(TypeError, match="case 0 sends on a receive-only channel"):
        select(Send(ro, 1), default=True)
    assert len(ro) == 0
    assert select(ro, default=True).index == -1  # receiving is fine
