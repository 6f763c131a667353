"""Lesson: errgroup - several RPCs for one page; the first error cancels the rest.

In Go::

    g, ctx := errgroup.WithContext(ctx)
    var user User; var orders []Order; var recs []Item
    g.Go(func() error { var err error; user, err = fetchUser(ctx, id); return err })
    g.Go(func() error { var err error; orders, err = fetchOrders(ctx, id); return err })
    g.Go(func() error { var err error; recs, err = fetchRecs(ctx, id); return err })
    if err := g.Wait(); err != nil {
        return err // the first error; the other calls saw ctx cancelled
    }

Here each fake RPC waits its latency with ``time.sleep(ctx=...)``, so it stops
the moment the group's context is cancelled.  An exception in one call does
not take the process down: it becomes the group's error, with its traceback.
``set_limit`` bounds the fan-out when there are many calls.  The same code is
shown with threads and with asyncio tasks.

Run: ``python examples/errgroup_rpcs.py``
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Any

from goconc import context, errgroup
from goconc import time as gotime


class RPCError(Exception):
    pass


def fetch(ctx: context.Context, name: str, latency: float, fail: bool, log: list[str]) -> str:
    """A fake RPC: answers after ``latency`` seconds, fails if asked, stops with ``ctx``."""
    try:
        gotime.sleep(latency, ctx=ctx)
    except (context.Canceled, context.DeadlineExceeded):
        log.append(f"{name}: cancelled")
        raise
    if fail:
        log.append(f"{name}: failed")
        raise RPCError(f"{name}: backend unavailable")
    log.append(f"{name}: ok")
    return f"<{name}>"


async def afetch(
    ctx: context.Context, name: str, latency: float, fail: bool, log: list[str]
) -> str:
    """The asyncio form of :func:`fetch`."""
    try:
        await gotime.asleep(latency, ctx=ctx)
    except (context.Canceled, context.DeadlineExceeded):
        log.append(f"{name}: cancelled")
        raise
    if fail:
        log.append(f"{name}: failed")
        raise RPCError(f"{name}: backend unavailable")
    log.append(f"{name}: ok")
    return f"<{name}>"


CALLS = {"user": 0.02, "orders": 0.05, "recommendations": 0.2}


Page = tuple[dict[str, str], list[str], BaseException | None]


def load_page(failing: str | None, scale: float = 1.0) -> Page:
    """Fetch every part of the page concurrently (threads).

    Returns the parts fetched, what each call did, and the first error.
    """
    g, ctx = errgroup.with_context(context.background())
    page: dict[str, str] = {}
    log: list[str] = []

    def part(name: str, latency: float) -> None:
        page[name] = fetch(ctx, name, latency * scale, name == failing, log)

    for name, latency in CALLS.items():
        g.go(part, name, latency)
    return page, log, g.wait()


async def aload_page(failing: str | None, scale: float = 1.0) -> Page:
    """The asyncio form: the same group, the calls are tasks on this loop."""
    page: dict[str, str] = {}
    log: list[str] = []
    try:
        async with errgroup.Group() as g:  # raises the first error on exit

            async def part(name: str, latency: float) -> None:
                page[name] = await afetch(g.ctx, name, latency * scale, name == failing, log)

            for name, latency in CALLS.items():
                g.go(part, name, latency)
    except RPCError as e:
        return page, log, e
    return page, log, None


def fetch_many(n: int, limit: int) -> tuple[int, int]:
    """Fan out ``n`` calls with at most ``limit`` in flight; return (done, peak)."""
    g, ctx = errgroup.with_context(context.background())
    g.set_limit(limit)
    active = peak = finished = 0

    async def call(i: int) -> None:
        nonlocal active, peak, finished
        active += 1
        peak = max(peak, active)
        await gotime.asleep(0.001, ctx=ctx)
        active -= 1
        finished += 1

    async def run() -> BaseException | None:
        for i in range(n):
            await g.ago(call, i)
        return await g.wait_async()

    err = asyncio.run(run())
    assert err is None
    return finished, peak


def where(err: BaseException) -> str:
    """The innermost frame of the error's traceback: kept across the goroutine."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "?" if tb is None else f"{tb.tb_frame.f_code.co_name}:{tb.tb_lineno}"


def main(scale: float = 1.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for form, run in (("threads", load_page), ("asyncio", _run_async)):
        t0 = _time.monotonic()
        page, log, err = run(None, scale)
        print(f"{form}: all ok in {_time.monotonic() - t0:.3f}s: {sorted(page)}")
        t0 = _time.monotonic()
        page, log, err = run("orders", scale)
        assert err is not None
        print(f"{form}: {err!r} (raised in {where(err)}) after {_time.monotonic() - t0:.3f}s")
        print(f"{form}:   the calls: {log}")
        out[form] = {"error": str(err), "log": sorted(log)}

    finished, peak = fetch_many(200, limit=8)
    print(f"200 calls with set_limit(8): {finished} done, at most {peak} in flight")
    out.update(finished=finished, peak=peak)
    return out


def _run_async(failing: str | None, scale: float) -> Page:
    return asyncio.run(aload_page(failing, scale))


if __name__ == "__main__":
    main()
