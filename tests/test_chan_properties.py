"""Chan against a sequential model: hypothesis stateful and property tests.

The state machine drives one channel from the test thread (non-blocking
calls in their thread forms) and from asyncio tasks on a private event loop
that is run only between steps, so every step is deterministic: parked
senders and receivers are tasks, and the model predicts which of them
completes, with what, and what stays buffered - including the races the
channel must settle (a value handed to a receiver cancelled before it
resumes goes back to the head of the channel; a sender cancelled after its
value was taken has still delivered it).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from conftest import WAIT
from goconc import Chan, ChanClosed, Recv, Send, select

# Expected outcomes of a task.
SENT = "sent"
CLOSED = "closed"
CANCELLED = "cancelled"
SENT_THEN_CANCELLED = "sent, then cancelled"

_BLOCK = object()  # the model's "this call would block"


class Model:
    """Go's channel, sequentially: buffer, closed flag and FIFO queues of parked tasks."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf: deque[int] = deque()
        self.closed = False
        self.senders: deque[tuple[int, int]] = deque()  # (task id, value)
        self.receivers: deque[int] = deque()  # task ids
        self.expect: dict[int, Any] = {}  # task id -> expected outcome once done

    def send(self, v: int) -> Any:
        """True if sent, _BLOCK if it would block; raises ChanClosed if closed."""
        if self.closed:
            raise ChanClosed("send on closed channel")
        if self.receivers:
            self.expect[self.receivers.popleft()] = (v, True)
            return True
        if len(self.buf) < self.cap:
            self.buf.append(v)
            return True
        return _BLOCK

    def take(self) -> Any:
        """``(value, ok)`` or _BLOCK, completing the parked sender it involves."""
        if self.buf:
            v = self.buf.popleft()
            if self.senders and len(self.buf) < self.cap:
                tid, sv = self.senders.popleft()
                self.expect[tid] = SENT
                self.buf.append(sv)
            return v, True
        if self.senders:
            tid, sv = self.senders.popleft()
            self.expect[tid] = SENT
            return sv, True
        if self.closed:
            return None, False
        return _BLOCK

    def sender_taken_next(self) -> int | None:
        """The id of the parked sender that the next take() completes, if any."""
        if not self.senders:
            return None
        if not self.buf or len(self.buf) - 1 < self.cap:
            return self.senders[0][0]
        return None

    def close(self) -> None:
        if self.closed:
            raise ChanClosed("close of closed channel")
        self.closed = True
        for tid in self.receivers:
            self.expect[tid] = (None, False)
        for tid, _ in self.senders:
            self.expect[tid] = CLOSED
        self.receivers.clear()
        self.senders.clear()

    def give_back(self, v: int) -> None:
        """A value handed to a receiver cancelled before it resumed."""
        if self.receivers:
            self.expect[self.receivers.popleft()] = (v, True)
        else:
            self.buf.appendleft(v)


async def _settle() -> None:
    for _ in range(8):
        await asyncio.sleep(0)


async def _send_task(ch: Chan[int], v: int) -> str:
    try:
        await ch.asend(v)
    except ChanClosed:
        return CLOSED
    return SENT


class ChanMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.next_id = 0
        self.checked: set[int] = set()

    @initialize(cap=st.integers(min_value=0, max_value=3))
    def make(self, cap: int) -> None:
        self.ch: Chan[int] = Chan(cap)
        self.model = Model(cap)

    # -- helpers --------------------------------------------------------------------

    def settle(self) -> None:
        self.loop.run_until_complete(_settle())

    def spawn(self, coro: Any) -> int:
        self.next_id += 1
        self.tasks[self.next_id] = self.loop.create_task(coro)
        return self.next_id

    # -- steps from the test thread (thread forms, never blocking) ---------------------

    @rule(v=st.integers(), form=st.sampled_from(["try_send", "select", "timeout"]))
    def send_now(self, v: int, form: str) -> None:
        try:
            expected = self.model.send(v)
        except ChanClosed:
            with pytest.raises(ChanClosed, match="send on closed channel"):
                self._send_now(v, form)
            return
        assert self._send_now(v, form) == (expected is True)
        self.settle()

    def _send_now(self, v: int, form: str) -> bool:
        if form == "try_send":
            return self.ch.try_send(v)
        if form == "select":
            return select(Send(self.ch, v), default=True).index == 0
        try:
            self.ch.send(v, timeout=0)
        except TimeoutError:
            return False
        return True

    @rule(form=st.sampled_from(["recv_ok", "recv", "select"]))
    def recv_now(self, form: str) -> None:
        expected = self.model.take()
        if form == "recv_ok":
            got: Any = _try(lambda: self.ch.recv_ok(timeout=0))
        elif form == "recv":
            got = _try(lambda: (self.ch.recv(timeout=0), True))
            if expected == (None, False):
                assert isinstance(got, ChanClosed)
                assert str(got) == "receive from closed channel"
                return
        else:
            sel = select(None, Recv(self.ch), default=True)
            got = _BLOCK if sel.index == -1 else (sel.value, sel.ok)
            assert sel.index in (-1, 1)
        assert got == expected
        self.settle()

    @rule()
    def close(self) -> None:
        try:
            self.model.close()
        except ChanClosed:
            with pytest.raises(ChanClosed, match="close of closed channel"):
                self.ch.close()
            return
        self.ch.close()
        self.settle()

    # -- steps by tasks (they park when the model says so) ------------------------------

    @rule(v=st.integers())
    def start_sender(self, v: int) -> None:
        tid = self.spawn(_send_task(self.ch, v))
        try:
            result = self.model.send(v)
        except ChanClosed:
            self.model.expect[tid] = CLOSED
        else:
            if result is _BLOCK:
                self.model.senders.append((tid, v))
            else:
                self.model.expect[tid] = SENT
        self.settle()

    @rule()
    def start_receiver(self) -> None:
        tid = self.spawn(self.ch.arecv_ok())
        result = self.model.take()
        if result is _BLOCK:
            self.model.receivers.append(tid)
        else:
            self.model.expect[tid] = result
        self.settle()

    @precondition(lambda self: bool(self.model.receivers))
    @rule(data=st.data())
    def cancel_parked_receiver(self, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from(list(self.model.receivers)))
        self.model.receivers.remove(tid)
        self.model.expect[tid] = CANCELLED
        self.tasks[tid].cancel()
        self.settle()

    @precondition(lambda self: bool(self.model.senders))
    @rule(data=st.data())
    def cancel_parked_sender(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(list(self.model.senders)))
        self.model.senders.remove(entry)
        self.model.expect[entry[0]] = CANCELLED
        self.tasks[entry[0]].cancel()
        self.settle()

    @precondition(lambda self: bool(self.model.receivers))
    @rule(v=st.integers(), later=st.lists(st.integers(), max_size=3))
    def hand_over_then_cancel_the_receiver(self, v: int, later: list[int]) -> None:
        # The value reaches the parked receiver, which is cancelled before it
        # can resume (after more sends, maybe): the value must go back to the
        # head of the channel, ahead of the later ones.
        tid = self.model.receivers.popleft()
        self.model.expect[tid] = CANCELLED
        assert self.ch.try_send(v)
        for u in later:
            assert self.ch.try_send(u) == (self.model.send(u) is True)
        self.tasks[tid].cancel()
        self.model.give_back(v)
        self.settle()

    @precondition(lambda self: self.model.sender_taken_next() is not None)
    @rule()
    def take_then_cancel_the_sender(self) -> None:
        # A receive completes a parked sender, which is cancelled before it can
        # resume: its value was delivered exactly once; it sees CancelledError.
        tid = self.model.sender_taken_next()
        assert tid is not None
        expected = self.model.take()
        self.model.expect[tid] = SENT_THEN_CANCELLED
        assert self.ch.recv_ok(timeout=0) == expected
        self.tasks[tid].cancel()
        self.settle()

    # -- what must hold after every step ----------------------------------------------

    @invariant()
    def channel_matches_model(self) -> None:
        if not hasattr(self, "model"):
            return
        st_ = self.ch.statistics()
        assert len(self.ch) == st_.len == len(self.model.buf)
        assert st_.closed == self.model.closed
        assert st_.senders_waiting == len(self.model.senders)
        assert st_.receivers_waiting == len(self.model.receivers)

    @invariant()
    def tasks_end_as_predicted(self) -> None:
        if not hasattr(self, "model"):
            return
        parked = set(self.model.receivers) | {t for t, _ in self.model.senders}
        for tid, task in self.tasks.items():
            if tid in parked:
                assert not task.done(), f"task {tid} should still be parked"
                continue
            if tid in self.checked:
                continue
            assert task.done(), f"task {tid} should have finished"
            expected = self.model.expect[tid]
            if expected in (CANCELLED, SENT_THEN_CANCELLED):
                assert task.cancelled()
            else:
                assert not task.cancelled()
                assert task.result() == expected
            self.checked.add(tid)

    def teardown(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.loop.run_until_complete(_settle())
        self.loop.close()


def _try(fn: Any) -> Any:
    try:
        return fn()
    except TimeoutError:
        return _BLOCK
    except ChanClosed as e:
        return e


ChanMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestChanAgainstModel = ChanMachine.TestCase


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(), max_size=60), cap=st.integers(min_value=0, max_value=4))
def test_a_thread_receives_exactly_what_another_sent_in_order(values: list[int], cap: int) -> None:
    ch: Chan[int] = Chan(cap)

    def produce() -> None:
        for v in values:
            ch.send(v, timeout=WAIT)
        ch.close()

    t = threading.Thread(target=produce)
    t.start()
    got = list(ch)
    t.join(WAIT)
    assert not t.is_alive()
    assert got == values


@settings(max_examples=150, deadline=None)
@given(
    contents=st.lists(
        st.tuples(st.lists(st.integers(), max_size=3), st.booleans()), min_size=1, max_size=5
    ),
    disabled=st.sets(st.integers(min_value=0, max_value=4)),
)
def test_select_fires_only_a_ready_case_and_takes_its_head(
    contents: list[tuple[list[int], bool]], disabled: set[int]
) -> None:
    chans: list[Chan[int]] = []
    for values, closed in contents:
        ch: Chan[int] = Chan(max(1, len(values)))
        for v in values:
            ch.send(v)
        if closed:
            ch.close()
        chans.append(ch)
    cases = [None if i in disabled else ch for i, ch in enumerate(chans)]
    ready = {
        i for i, (values, closed) in enumerate(contents) if i not in disabled and (values or closed)
    }
    sel = select(*cases, default=True)
    if not ready:
        assert sel.index == -1
        return
    assert sel.index in ready
    values, closed = contents[sel.index]
    assert (sel.value, sel.ok) == ((values[0], True) if values else (None, False))
    for i, ch in enumerate(chans):
        left = len(contents[i][0]) - (1 if i == sel.index and contents[i][0] else 0)
        assert len(ch) == left
