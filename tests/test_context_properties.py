"""Properties of context trees, checked against a plain model on random trees.

A tree is a list of nodes, each derived from an earlier one by one of the
constructors; events cancel (or expire, as the timer would) random nodes.
After every event each node must have ended exactly when the model says,
with the right error type and cause, and every live cancellable node must
hold exactly its live cancellable children (cancelled ones are detached).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import WAIT
from goconc import context
from goconc.context import Canceled, Context, DeadlineExceeded

KINDS = ("cancel", "cause", "value", "without", "deadline")
FAR = 10_000.0  # deadlines far enough never to fire during a test


@st.composite
def trees(draw: st.DrawFn, max_nodes: int = 30) -> list[tuple[int, str, float]]:
    """(parent, kind, deadline offset) for nodes 1..n; node 0 is background."""
    n = draw(st.integers(1, max_nodes))
    return [
        (
            draw(st.integers(0, i - 1)),
            draw(st.sampled_from(KINDS)),
            draw(st.floats(0, 100, allow_nan=False)),
        )
        for i in range(1, n + 1)
    ]


@dataclass
class Built:
    spec: list[tuple[int, str, float]]
    ctxs: list[Context]
    cancels: list[Any]
    deadlines: list[float | None]
    # the model: per node, None while live, else (error type, cause or None)
    ended: list[tuple[type[BaseException], BaseException | None] | None] = field(
        default_factory=list
    )

    def parent(self, i: int) -> int:
        return self.spec[i - 1][0]

    def kind(self, i: int) -> str:
        return "root" if i == 0 else self.spec[i - 1][1]

    def cancellable(self, i: int) -> bool:
        return self.kind(i) in ("cancel", "cause", "deadline")

    def children(self, i: int) -> list[int]:
        return [j for j in range(1, len(self.ctxs)) if self.parent(j) == i]

    def end(self, i: int, err: type[BaseException], cause: BaseException | None) -> None:
        """The model of cancelling node i: it and its descendants not behind without_cancel."""
        if self.ended[i] is not None:
            return
        stack = [i]
        while stack:
            j = stack.pop()
            if self.ended[j] is None:
                self.ended[j] = (err, cause)
            stack.extend(k for k in self.children(j) if self.kind(k) != "without")

    def registrar(self, i: int) -> int | None:
        """The node whose children set holds cancellable node i (None if none)."""
        j = self.parent(i)
        while j != 0:
            kind = self.kind(j)
            if kind == "without":
                return None
            if kind != "value":
                return j
            j = self.parent(j)
        return None


def build(spec: list[tuple[int, str, float]]) -> Built:
    base = time.monotonic() + FAR
    ctxs: list[Context] = [context.background()]
    cancels: list[Any] = [None]
    deadlines: list[float | None] = [None]
    for parent, kind, offset in spec:
        p = ctxs[parent]
        cancel: Any = None
        if kind == "cancel":
            ctx, cancel = context.with_cancel(p)
        elif kind == "cause":
            ctx, cancel = context.with_cancel_cause(p)
        elif kind == "value":
            ctx = context.with_value(p, len(ctxs), len(ctxs))
        elif kind == "without":
            ctx = context.without_cancel(p)
        else:
            ctx, cancel = context.with_deadline(p, base + offset)
        ctxs.append(ctx)
        cancels.append(cancel)
        pd = deadlines[parent]
        if kind == "without":
            deadlines.append(None)
        elif kind == "deadline":
            deadlines.append(base + offset if pd is None else min(pd, base + offset))
        else:
            deadlines.append(pd)
    b = Built(spec, ctxs, cancels, deadlines)
    b.ended = [None] * len(ctxs)
    return b


def check(b: Built) -> None:
    for i, ctx in enumerate(b.ctxs):
        expected = b.ended[i]
        err = ctx.err()
        if expected is None:
            assert err is None, (i, ctx)
            assert context.cause(ctx) is None
        else:
            etype, ecause = expected
            assert type(err) is etype, (i, ctx, err)
            got = context.cause(ctx)
            if ecause is None:
                assert type(got) is etype
            else:
                assert got is ecause
        assert ctx.deadline() == b.deadlines[i]
    for i, ctx in enumerate(b.ctxs):
        if not b.cancellable(i):
            continue
        kids = ctx._children  # type: ignore[attr-defined]
        if b.ended[i] is not None:
            assert kids is None
            continue
        expected_kids = {
            b.ctxs[j]
            for j in range(1, len(b.ctxs))
            if b.cancellable(j) and b.registrar(j) == i and b.ended[j] is None
        }
        assert set(kids or ()) == expected_kids, (i, ctx)


def release(b: Built) -> None:
    for i, cancel in enumerate(b.cancels):
        if cancel is None:
            continue
        if b.kind(i) == "cause":
            cancel(None)
        else:
            cancel()


events = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(("cancel", "expire"))))


@settings(max_examples=150, deadline=None)
@given(trees(), events)
def test_random_cancellations_end_exactly_the_descendants(
    spec: list[tuple[int, str, float]], evs: list[tuple[int, str]]
) -> None:
    b = build(spec)
    try:
        check(b)
        for pick, what in evs:
            targets = [i for i in range(1, len(b.ctxs)) if b.cancellable(i)]
            if not targets:
                break
            i = targets[pick % len(targets)]
            kind = b.kind(i)
            if what == "expire" and kind == "deadline":
                # What the node's timer does when its deadline passes.
                why = TimeoutError(f"node {i}")
                b.ctxs[i]._cancel(DeadlineExceeded, why)  # type: ignore[attr-defined]
                b.end(i, DeadlineExceeded, why)
            elif kind == "cause":
                why = RuntimeError(f"node {i}")
                b.cancels[i](why)
                b.end(i, Canceled, why)
            else:
                b.cancels[i]()
                b.end(i, Canceled, None)
            check(b)
    finally:
        release(b)


@settings(max_examples=60, deadline=None)
@given(trees(max_nodes=40), st.lists(st.integers(0, 10_000), min_size=2, max_size=12))
def test_concurrent_cancellations_end_the_union_of_the_subtrees(
    spec: list[tuple[int, str, float]], picks: list[int]
) -> None:
    b = build(spec)
    try:
        targets = [i for i in range(1, len(b.ctxs)) if b.cancellable(i)]
        if not targets:
            return
        chosen = [targets[p % len(targets)] for p in picks]
        halves = [chosen[0::2], chosen[1::2]]
        barrier = threading.Barrier(2)

        def canceller(nodes: list[int]) -> None:
            barrier.wait(timeout=WAIT)
            for i in nodes:
                if b.kind(i) == "cause":
                    b.cancels[i](None)
                else:
                    b.cancels[i]()

        threads = [threading.Thread(target=canceller, args=(h,)) for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
            assert not t.is_alive()
        for i in chosen:
            b.end(i, Canceled, None)
        check(b)
    finally:
        release(b)


@settings(max_examples=100, deadline=None)
@given(trees(), st.integers(0, 10_000))
def test_a_context_created_under_an_ended_ancestor_starts_ended(
    spec: list[tuple[int, str, float]], pick: int
) -> None:
    b = build(spec)
    try:
        targets = [i for i in range(1, len(b.ctxs)) if b.cancellable(i)]
        if not targets:
            return
        i = targets[pick % len(targets)]
        b.cancels[i]() if b.kind(i) != "cause" else b.cancels[i](None)
        b.end(i, Canceled, None)
        for j, ctx in enumerate(b.ctxs):
            late, cancel = context.with_timeout(ctx, FAR)
            assert (late.err() is None) == (b.ended[j] is None)
            cancel()
        check(b)
    finally:
        release(b)
