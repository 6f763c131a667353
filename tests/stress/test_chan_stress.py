"""Channels and select under real races: nothing lost, nothing delivered twice.

Every test counts values: each one sent must be received exactly once, whoever
wins the races between a hand-over and a task cancellation, a thread's
timeout, a context ending or a close.  Bounded by iteration counts.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import Chan, ChanClosed, Send, aselect, context, select

pytestmark = pytest.mark.goconc_leaks


class Worker:
    """A thread running ``fn(*args)``; ``join`` bounds the wait and re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self.result = fn(*args)
        except BaseException as e:
            self.error = e

    def join(self, timeout: float = WAIT) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the worker thread did not finish in time"
        if self.error is not None:
            raise self.error
        return self.result


def drain(ch: Chan[int]) -> list[int]:
    out = []
    while True:
        try:
            out.append(ch.recv(timeout=0))
        except (TimeoutError, ChanClosed):
            return out


def assert_exactly_once(got: list[int], n: int) -> None:
    dup = [v for v, c in Counter(got).items() if c > 1]
    assert not dup, f"delivered twice: {dup[:10]}"
    missing = sorted(set(range(n)) - set(got))
    assert not missing, f"lost: {missing[:10]} ({len(missing)} in all)"
    assert len(got) == n


async def _gather_batches(
    n: int,
    start: Callable[[float | None], Any],
    drain_all: Callable[[], list[int]],
    sent_all: Callable[[], bool],
    rng: random.Random,
) -> list[int]:
    """Receive with batches of tasks until all n values are in.

    In each batch every task but one (the anchor, which guarantees progress
    however loaded the machine is) is cancelled at a random moment: before it
    parks, while parked, or just as a value reaches it.
    """
    got: list[int] = []
    deadline = time.monotonic() + 3 * WAIT
    loop = asyncio.get_running_loop()
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} values arrived"
        batch = [asyncio.ensure_future(start(WAIT)) for _ in range(3)]
        anchor = asyncio.ensure_future(start(0.2))
        for t in batch:
            delay = rng.choice((0, 0, 1, 2, 3))
            if delay == 0:
                t.cancel()
            else:
                loop.call_later(delay * 1e-5, t.cancel)
        for r in await asyncio.gather(*batch, anchor, return_exceptions=True):
            if isinstance(r, BaseException):
                assert isinstance(r, (asyncio.CancelledError, TimeoutError)), r
            else:
                got.append(r)
        if sent_all():
            got.extend(drain_all())
    return got


async def _receive_with_cancels(
    ch: Chan[int], n: int, sent_all: Callable[[], bool], rng: random.Random
) -> list[int]:
    return await _gather_batches(n, lambda t: ch.arecv(timeout=t), lambda: drain(ch), sent_all, rng)


@pytest.mark.parametrize("cap", [0, 1, 8])
def test_task_cancels_racing_a_thread_sender_never_lose_or_double_a_value(cap: int) -> None:
    n = 2000
    ch: Chan[int] = Chan(cap)
    done = threading.Event()

    def send_all() -> None:
        for i in range(n):
            ch.send(i, timeout=WAIT)
        done.set()

    sender = Worker(send_all)
    got = run_async(_receive_with_cancels(ch, n, done.is_set, random.Random(cap)), timeout=60)
    sender.join()
    assert_exactly_once(got, n)
    assert len(ch) == 0


def test_task_cancels_racing_a_sender_on_another_loop_never_lose_a_value() -> None:
    n = 2000
    ch: Chan[int] = Chan()
    done = threading.Event()

    async def send_all() -> None:
        for i in range(n):
            await ch.asend(i, timeout=WAIT)
        done.set()

    sender = Worker(lambda: asyncio.run(send_all()))
    got = run_async(_receive_with_cancels(ch, n, done.is_set, random.Random(7)), timeout=60)
    sender.join()
    assert_exactly_once(got, n)


def test_hand_over_then_cancel_on_one_loop_thousands_of_times() -> None:
    async def main() -> list[int]:
        ch: Chan[int] = Chan()
        got: list[int] = []
        rng = random.Random(3)
        for i in range(3000):
            receivers = [asyncio.ensure_future(ch.arecv()) for _ in range(rng.randint(1, 3))]
            await asyncio.sleep(0)  # all parked
            assert ch.try_send(i)
            victims = rng.sample(receivers, rng.randint(1, len(receivers)))
            for t in victims:
                t.cancel()
            await asyncio.sleep(0)
            for t in receivers:
                if t not in victims:
                    t.cancel()  # the ones left parked
            for r in await asyncio.gather(*receivers, return_exceptions=True):
                if isinstance(r, int):
                    got.append(r)
            got.extend(drain(ch))
        return got

    assert_exactly_once(run_async(main(), timeout=60), 3000)


def test_tasks_cancelled_in_aselect_racing_thread_sends_lose_nothing() -> None:
    n = 2000
    chans: list[Chan[int]] = [Chan() for _ in range(3)]
    done = threading.Event()

    def send_all() -> None:
        for i in range(n):
            chans[i % 3].send(i, timeout=WAIT)
        done.set()

    async def select_value(timeout: float | None) -> int:
        return (await aselect(*chans, timeout=timeout)).value  # type: ignore[no-any-return]

    def drain_all() -> list[int]:
        return [v for ch in chans for v in drain(ch)]

    async def main() -> list[int]:
        return await _gather_batches(n, select_value, drain_all, done.is_set, random.Random(11))

    sender = Worker(send_all)
    got = run_async(main(), timeout=60)
    sender.join()
    assert_exactly_once(got, n)


@pytest.mark.parametrize("cap", [0, 4])
@pytest.mark.parametrize("racing", ["receiver", "sender"])
def test_thread_timeouts_racing_hand_overs_keep_every_value_once_and_in_order(
    cap: int, racing: str
) -> None:
    # One side uses tiny timeouts (a value may reach it just as it times out),
    # the other blocks, so that progress never depends on the machine's load.
    n = 2000
    ch: Chan[int] = Chan(cap)
    tiny = 0.0001

    def send_all() -> None:
        i = 0
        while i < n:
            try:
                ch.send(i, timeout=tiny if racing == "sender" else WAIT)
            except TimeoutError:
                continue  # not sent: send it again
            i += 1

    def receive_all() -> list[int]:
        got: list[int] = []
        while len(got) < n:
            try:
                got.append(ch.recv(timeout=tiny if racing == "receiver" else WAIT))
            except TimeoutError:
                pass
        return got

    sender = Worker(send_all)
    receiver = Worker(receive_all)
    sender.join(3 * WAIT)
    assert receiver.join(3 * WAIT) == list(range(n))


def test_contexts_ending_racing_sends_lose_nothing() -> None:
    n = 1500
    ch: Chan[int] = Chan()
    done = threading.Event()

    def send_all() -> None:
        for i in range(n):
            ch.send(i, timeout=WAIT)
        done.set()

    def receive_all() -> list[int]:
        got: list[int] = []
        rng = random.Random(5)
        deadline = time.monotonic() + 3 * WAIT
        while len(got) < n:
            assert time.monotonic() < deadline, f"only {len(got)} of {n} values arrived"
            ctx, cancel = context.with_timeout(context.background(), rng.choice((0, 1e-5, 1e-4)))
            try:
                got.append(ch.recv(ctx=ctx))
            except context.DeadlineExceeded:
                pass
            finally:
                cancel()
            if done.is_set():
                got.extend(drain(ch))
        return got

    sender = Worker(send_all)
    receiver = Worker(receive_all)
    sender.join(30)
    assert_exactly_once(receiver.join(30), n)


def test_select_stress_many_senders_and_selecting_receivers() -> None:
    # Go's TestSelectStress, with threads and tasks on both sides.
    per = 500
    chans: list[Chan[int]] = [Chan(c) for c in (0, 0, 2, 3)]
    total = per * len(chans)
    got: list[int] = []
    mu = threading.Lock()

    def thread_sender(k: int) -> None:
        for i in range(per // 2):
            chans[k].send(k * per + i, timeout=WAIT)

    async def task_sender(k: int) -> None:
        for i in range(per // 2, per):
            assert (await aselect(Send(chans[k], k * per + i), timeout=WAIT)).ok

    def thread_receiver(count: int) -> None:
        for _ in range(count):
            v = select(*chans, timeout=WAIT).value
            with mu:
                got.append(v)

    async def tasks() -> None:
        async def task_receiver(count: int) -> None:
            for _ in range(count):
                v = (await aselect(*reversed(chans), timeout=WAIT)).value
                with mu:
                    got.append(v)

        await asyncio.gather(
            *(task_sender(k) for k in range(len(chans))),
            task_receiver(total // 4),
            task_receiver(total // 4),
        )

    workers = [Worker(thread_sender, k) for k in range(len(chans))]
    workers += [Worker(thread_receiver, total // 4) for _ in range(2)]
    run_async(tasks(), timeout=60)
    for w in workers:
        w.join(30)
    assert sorted(got) == list(range(total))


@pytest.mark.parametrize("cap", [0, 1, 10])
def test_many_consumers_sum_what_many_producers_sent(cap: int) -> None:
    # Go's TestMultiConsumer, with threads and tasks on both sides.
    items = 1200
    work: Chan[int] = Chan(cap)
    sums: list[tuple[int, int]] = []
    mu = threading.Lock()

    def thread_consumer() -> None:
        n = s = 0
        for v in work:
            n, s = n + 1, s + v
        with mu:
            sums.append((n, s))

    async def task_side() -> None:
        async def task_consumer() -> None:
            n = s = 0
            async for v in work:
                n, s = n + 1, s + v
            with mu:
                sums.append((n, s))

        async def task_producer() -> None:
            for i in range(1, items // 2 + 1):
                await work.asend(i, timeout=WAIT)

        consumers = [asyncio.ensure_future(task_consumer()) for _ in range(2)]
        await task_producer()
        await asyncio.to_thread(producer.join)
        work.close()
        await asyncio.gather(*consumers)

    def thread_producer() -> None:
        for i in range(items // 2 + 1, items + 1):
            work.send(i, timeout=WAIT)

    consumers = [Worker(thread_consumer) for _ in range(2)]
    producer = Worker(thread_producer)
    run_async(task_side(), timeout=60)
    for w in consumers:
        w.join(30)
    assert sum(n for n, _ in sums) == items
    assert sum(s for _, s in sums) == items * (items + 1) // 2


def _close_round(cap: int) -> tuple[list[int], list[int]]:
    ch: Chan[int] = Chan(cap)
    sent: list[int] = []
    got: list[int] = []
    mu = threading.Lock()

    def sender(k: int) -> None:
        i = 0
        while True:
            v = k * 100_000 + i
            try:
                ch.send(v, timeout=WAIT)
            except ChanClosed:
                return
            with mu:
                sent.append(v)
            i += 1

    def receiver() -> None:
        while True:
            v, ok = ch.recv_ok(timeout=WAIT)
            if not ok:
                return
            with mu:
                got.append(v)  # type: ignore[arg-type]

    workers = [Worker(sender, k) for k in range(3)] + [Worker(receiver) for _ in range(2)]
    time.sleep(0.002)
    ch.close()
    for w in workers:
        w.join(30)
    return sent, got


def test_close_racing_senders_and_receivers_keeps_the_books_straight() -> None:
    # A send that returned was received exactly once; one that raised was not.
    for round_ in range(30):
        sent, got = _close_round(round_ % 3)
        assert sorted(got) == sorted(sent)
