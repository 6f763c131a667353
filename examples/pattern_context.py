"""Go concurrency patterns: context.

From "Go Concurrency Patterns: Context" (Go blog, 2014): a request's
deadline, its cancellation signal and its request-scoped values travel
together in a ``Context`` passed as the first argument down the call chain.
Cancelling a context cancels every context derived from it, so one
``cancel()`` stops every goroutine working for the request, wherever it is
blocked - in goconc, in a thread or in an asyncio task, on any loop.

This example shows a request with a deadline that fans out to workers (a
thread and a task), a request id carried as a value, a cancellation with a
cause, and asyncio code that knows nothing of goconc stopped through
``context.scope``.

Run: ``python examples/pattern_context.py``
"""

from __future__ import annotations

import asyncio
import time as _time

from goconc import Chan, context, go
from goconc import time as gotime
from goconc.testing import live_ids, verify_none


class _RequestID:
    """The private key type of the request id value (never a plain string)."""


REQUEST_ID = _RequestID()


def db_query(ctx: context.Context, latency: float) -> str:
    """A slow dependency that honours ctx, as every blocking goconc call does."""
    gotime.sleep(latency, ctx=ctx)
    return f"rows for request {ctx.value(REQUEST_ID)}"


def handle(parent: context.Context, request_id: int, budget: float, latency: float) -> str:
    """A request handler: a deadline for the whole request and an id for the logs."""
    ctx = context.with_value(parent, REQUEST_ID, request_id)
    with context.with_timeout(ctx, budget) as ctx:
        try:
            return db_query(ctx, latency)
        except context.DeadlineExceeded as e:
            return f"request {ctx.value(REQUEST_ID)}: {e}"


def thread_worker(ctx: context.Context, results: Chan[str]) -> None:
    ctx.done.recv_ok()  # blocked until the request is cancelled
    results.send(f"thread worker stopped: {ctx.err()!r}")


async def task_worker(ctx: context.Context, results: Chan[str]) -> None:
    await ctx.done.arecv_ok()
    await results.asend(f"task worker stopped: {ctx.err()!r}")


async def third_party(ctx: context.Context) -> str:
    try:
        async with context.scope(ctx):
            await asyncio.sleep(3600)  # plain asyncio, knows nothing of goconc
        return "finished"
    except context.DeadlineExceeded as e:
        return f"asyncio code stopped by the context: {e}"


def main(unit: float = 0.02) -> dict[str, object]:
    before = live_ids()
    root = context.background()
    fast = handle(root, 1, budget=20 * unit, latency=unit)
    slow = handle(root, 2, budget=unit, latency=50 * unit)
    print(f"in time: {fast}\ntoo slow: {slow}")

    results: Chan[str] = Chan(2)
    ctx, cancel = context.with_cancel_cause(root)
    child, cancel_child = context.with_cancel(ctx)  # a subtree of the request
    go(thread_worker, child, results)
    go(task_worker, child, results)
    _time.sleep(unit)
    cancel(ConnectionResetError("client went away"))  # one call stops the whole tree
    stopped = sorted(results.recv(timeout=5) for _ in range(2))
    print("\n".join(stopped))
    print(f"why: context.cause(child) = {context.cause(child)!r}")
    cancel_child()

    bridged = asyncio.run(_bridge(unit))
    print(bridged)
    verify_none(ignore=before)
    return {"fast": fast, "slow": slow, "stopped": stopped, "bridged": bridged}


async def _bridge(unit: float) -> str:
    async with context.with_timeout(context.background(), unit) as ctx:
        return await third_party(ctx)


if __name__ == "__main__":
    main()
