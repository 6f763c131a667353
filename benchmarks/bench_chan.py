"""Channels: unbuffered ping-pong, buffered producer/consumer, select."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from goconc.bench import Target, case, go_case, workload

WAIT = 60.0  # bound on every blocking call: a broken case fails instead of hanging


def _per(n: int, seconds: float, scale: float = 1e6) -> float:
    return seconds / n * scale


def _threads(*fns: Callable[[], None]) -> float:
    ts = [threading.Thread(target=f) for f in fns]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT)
    return time.perf_counter() - t0


def _arun(main: Callable[[], Awaitable[float]]) -> float:
    async def bounded() -> float:
        return await asyncio.wait_for(main(), WAIT)

    return asyncio.run(bounded())


# -- unbuffered ping-pong ----------------------------------------------------------------

workload(
    "pingpong thread-thread",
    "us/round trip",
    description="Two OS threads bounce a value over two unbuffered channels "
    "(queue.Queue(1) pairs for the peer; Go with goroutines locked to OS threads).",
    targets=(Target("queue.Queue", 1.0, "at least equal to queue.Queue(1)", source="issue 2"),),
)


@case("pingpong thread-thread", "goconc")
def _pp_tt_goconc(scale: float) -> dict[str, float]:
    from goconc import Chan

    n = max(200, int(20000 * scale))
    ping: Chan[int] = Chan()
    pong: Chan[int] = Chan()

    def a() -> None:
        for i in range(n):
            ping.send(i, timeout=WAIT)
            pong.recv(timeout=WAIT)

    def b() -> None:
        for _ in range(n):
            pong.send(ping.recv(timeout=WAIT), timeout=WAIT)

    return {"us/round trip": _per(n, _threads(a, b))}


@case("pingpong thread-thread", "queue.Queue")
def _pp_tt_queue(scale: float) -> dict[str, float]:
    n = max(200, int(20000 * scale))
    ping: queue.Queue[int] = queue.Queue(1)
    pong: queue.Queue[int] = queue.Queue(1)

    def a() -> None:
        for i in range(n):
            ping.put(i, timeout=WAIT)
            pong.get(timeout=WAIT)

    def b() -> None:
        for _ in range(n):
            pong.put(ping.get(timeout=WAIT), timeout=WAIT)

    return {"us/round trip": _per(n, _threads(a, b))}


go_case("pingpong thread-thread", "pingpong-locked")

workload(
    "pingpong task-task",
    "us/round trip",
    description="Two asyncio tasks on one loop bounce a value over two unbuffered channels.",
    targets=(Target("asyncio.Queue", 1.0, "at least equal to asyncio.Queue(1)", source="issue 2"),),
)


@case("pingpong task-task", "goconc")
def _pp_aa_goconc(scale: float) -> dict[str, float]:
    from goconc import Chan

    n = max(500, int(50000 * scale))

    async def main() -> float:
        ping: Chan[int] = Chan()
        pong: Chan[int] = Chan()

        async def a() -> None:
            for i in range(n):
                await ping.asend(i)
                await pong.arecv()

        async def b() -> None:
            for _ in range(n):
                await pong.asend(await ping.arecv())

        t0 = time.perf_counter()
        await asyncio.gather(a(), b())
        return time.perf_counter() - t0

    return {"us/round trip": _per(n, _arun(main))}


@case("pingpong task-task", "asyncio.Queue")
def _pp_aa_asyncio(scale: float) -> dict[str, float]:
    n = max(500, int(50000 * scale))

    async def main() -> float:
        ping: asyncio.Queue[int] = asyncio.Queue(1)
        pong: asyncio.Queue[int] = asyncio.Queue(1)

        async def a() -> None:
            for i in range(n):
                await ping.put(i)
                await pong.get()

        async def b() -> None:
            for _ in range(n):
                await pong.put(await ping.get())

        t0 = time.perf_counter()
        await asyncio.gather(a(), b())
        return time.perf_counter() - t0

    return {"us/round trip": _per(n, _arun(main))}


@case("pingpong task-task", "trio", requires=("trio",))
def _pp_aa_trio(scale: float) -> dict[str, float]:
    import trio

    n = max(500, int(50000 * scale))

    async def main() -> float:
        ping_s, ping_r = trio.open_memory_channel[int](0)
        pong_s, pong_r = trio.open_memory_channel[int](0)

        async def a() -> None:
            for i in range(n):
                await ping_s.send(i)
                await pong_r.receive()

        async def b() -> None:
            for _ in range(n):
                await pong_s.send(await ping_r.receive())

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a)
            nursery.start_soon(b)
        return time.perf_counter() - t0

    return {"us/round trip": _per(n, trio.run(main))}


@case("pingpong task-task", "anyio", requires=("anyio",))
def _pp_aa_anyio(scale: float) -> dict[str, float]:
    import anyio

    n = max(500, int(50000 * scale))

    async def main() -> float:
        ping_s, ping_r = anyio.create_memory_object_stream[int](0)
        pong_s, pong_r = anyio.create_memory_object_stream[int](0)

        async def a() -> None:
            for i in range(n):
                await ping_s.send(i)
                await pong_r.receive()

        async def b() -> None:
            for _ in range(n):
                await pong_s.send(await ping_r.receive())

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(a)
            tg.start_soon(b)
        return time.perf_counter() - t0

    return {"us/round trip": _per(n, asyncio.run(main()))}


go_case("pingpong task-task", "pingpong")

workload(
    "pingpong thread-task",
    "us/round trip",
    description="An OS thread and an asyncio task bounce a value: the cross-world hand-off.",
    targets=(Target("culsans", 1.0, "at least equal to culsans, the best peer", source="issue 2"),),
)


def _thread_task(
    n: int,
    make: Callable[[], tuple[Any, Any, Any, Any]],
) -> float:
    """Generic thread<->task ping-pong: make() -> (thread_put, thread_get, aput, aget)."""

    async def main() -> float:
        tput, tget, aput, aget = make()

        def thread_side() -> None:
            for i in range(n):
                tput(i)
                tget()

        async def task_side() -> None:
            for _ in range(n):
                await aput(await aget())

        t0 = time.perf_counter()
        th = threading.Thread(target=thread_side)
        th.start()
        await task_side()
        await asyncio.to_thread(th.join, WAIT)
        return time.perf_counter() - t0

    return _arun(main)


@case("pingpong thread-task", "goconc")
def _pp_ta_goconc(scale: float) -> dict[str, float]:
    from goconc import Chan

    n = max(200, int(10000 * scale))

    def make() -> tuple[Any, Any, Any, Any]:
        ping: Chan[int] = Chan()
        pong: Chan[int] = Chan()
        return (
            lambda v: ping.send(v, timeout=WAIT),
            lambda: pong.recv(timeout=WAIT),
            pong.asend,
            ping.arecv,
        )

    return {"us/round trip": _per(n, _thread_task(n, make))}


@case("pingpong thread-task", "janus", requires=("janus",))
def _pp_ta_janus(scale: float) -> dict[str, float]:
    import janus

    n = max(200, int(10000 * scale))

    def make() -> tuple[Any, Any, Any, Any]:
        ping: janus.Queue[int] = janus.Queue(1)
        pong: janus.Queue[int] = janus.Queue(1)
        return (
            lambda v: ping.sync_q.put(v, timeout=WAIT),
            lambda: pong.sync_q.get(timeout=WAIT),
            pong.async_q.put,
            ping.async_q.get,
        )

    return {"us/round trip": _per(n, _thread_task(n, make))}


@case("pingpong thread-task", "culsans", requires=("culsans",))
def _pp_ta_culsans(scale: float) -> dict[str, float]:
    import culsans

    n = max(200, int(10000 * scale))

    def make() -> tuple[Any, Any, Any, Any]:
        ping: culsans.Queue[int] = culsans.Queue(1)
        pong: culsans.Queue[int] = culsans.Queue(1)
        return (
            lambda v: ping.sync_q.put(v, timeout=WAIT),
            lambda: pong.sync_q.get(timeout=WAIT),
            pong.async_q.put,
            ping.async_q.get,
        )

    return {"us/round trip": _per(n, _thread_task(n, make))}


@case("pingpong thread-task", "aiologic", requires=("aiologic",))
def _pp_ta_aiologic(scale: float) -> dict[str, float]:
    import aiologic

    n = max(200, int(10000 * scale))

    def make() -> tuple[Any, Any, Any, Any]:
        ping = aiologic.Queue(maxsize=1)
        pong = aiologic.Queue(maxsize=1)
        return (
            lambda v: ping.green_put(v, timeout=WAIT),
            lambda: pong.green_get(timeout=WAIT),
            pong.async_put,
            ping.async_get,
        )

    return {"us/round trip": _per(n, _thread_task(n, make))}


# -- buffered producer/consumer -----------------------------------------------------------

_CAP = 1024


def _declare_buffered(kind: str, producers: int, peer: str, peer_text: str) -> str:
    name = f"buffered {producers}->{producers} {kind}"
    workload(
        name,
        "us/item",
        description=f"{producers} producer(s) and {producers} consumer(s) "
        f"({kind}) through one channel of capacity {_CAP}.",
        targets=(Target(peer, 1.0, f"at least equal to {peer_text}", source="issue 2"),),
    )
    return name


def _buffered_threads(scale: float, producers: int, put: Any, get: Any, stop: Any) -> float:
    n = max(1000, int(200000 * scale)) // producers * producers

    def producer() -> None:
        for i in range(n // producers):
            put(i)

    def consumer() -> None:
        while get() is not stop:
            pass

    def closer() -> None:
        for _ in range(producers):
            put(stop)

    ps = [threading.Thread(target=producer) for _ in range(producers)]
    cs = [threading.Thread(target=consumer) for _ in range(producers)]
    t0 = time.perf_counter()
    for t in ps + cs:
        t.start()
    for t in ps:
        t.join(WAIT)
    closer()
    for t in cs:
        t.join(WAIT)
    return _per(n, time.perf_counter() - t0)


for _p in (1, 4):
    _name = _declare_buffered("threads", _p, "queue.Queue", "queue.Queue")

    @case(_name, "goconc")
    def _buf_t_goconc(scale: float, producers: int = _p) -> dict[str, float]:
        from goconc import Chan

        ch: Chan[object] = Chan(_CAP)
        stop = object()
        return {
            "us/item": _buffered_threads(
                scale,
                producers,
                lambda v: ch.send(v, timeout=WAIT),
                lambda: ch.recv(timeout=WAIT),
                stop,
            )
        }

    @case(_name, "queue.Queue")
    def _buf_t_queue(scale: float, producers: int = _p) -> dict[str, float]:
        q: queue.Queue[object] = queue.Queue(_CAP)
        stop = object()
        return {
            "us/item": _buffered_threads(
                scale,
                producers,
                lambda v: q.put(v, timeout=WAIT),
                lambda: q.get(timeout=WAIT),
                stop,
            )
        }

    @case(_name, "aiologic", requires=("aiologic",))
    def _buf_t_aiologic(scale: float, producers: int = _p) -> dict[str, float]:
        import aiologic

        q = aiologic.Queue(maxsize=_CAP)
        stop = object()
        return {
            "us/item": _buffered_threads(
                scale,
                producers,
                lambda v: q.green_put(v, timeout=WAIT),
                lambda: q.green_get(timeout=WAIT),
                stop,
            )
        }

    go_case(_name, f"buffered-{_p}")


def _buffered_tasks(scale: float, producers: int, make: Callable[[], tuple[Any, Any]]) -> float:
    n = max(1000, int(300000 * scale)) // producers * producers
    stop = object()

    async def main() -> float:
        put, get = make()

        async def producer() -> None:
            for i in range(n // producers):
                await put(i)

        async def consumer() -> None:
            while (await get()) is not stop:
                pass

        t0 = time.perf_counter()
        cs = [asyncio.ensure_future(consumer()) for _ in range(producers)]
        await asyncio.gather(*(producer() for _ in range(producers)))
        for _ in range(producers):
            await put(stop)
        await asyncio.gather(*cs)
        return time.perf_counter() - t0

    return _per(n, _arun(main))


for _p in (1, 4):
    _name = _declare_buffered("tasks", _p, "asyncio.Queue", "asyncio.Queue")

    @case(_name, "goconc")
    def _buf_a_goconc(scale: float, producers: int = _p) -> dict[str, float]:
        from goconc import Chan

        def make() -> tuple[Any, Any]:
            ch: Chan[object] = Chan(_CAP)
            return ch.asend, ch.arecv

        return {"us/item": _buffered_tasks(scale, producers, make)}

    @case(_name, "asyncio.Queue")
    def _buf_a_asyncio(scale: float, producers: int = _p) -> dict[str, float]:
        def make() -> tuple[Any, Any]:
            q: asyncio.Queue[object] = asyncio.Queue(_CAP)
            return q.put, q.get

        return {"us/item": _buffered_tasks(scale, producers, make)}

    @case(_name, "aiologic", requires=("aiologic",))
    def _buf_a_aiologic(scale: float, producers: int = _p) -> dict[str, float]:
        import aiologic

        def make() -> tuple[Any, Any]:
            q = aiologic.Queue(maxsize=_CAP)
            return q.async_put, q.async_get

        return {"us/item": _buffered_tasks(scale, producers, make)}


# -- select --------------------------------------------------------------------------------

workload(
    "select over 4 channels (tasks)",
    "us/value",
    description="One task receives values that a producer spreads over 4 channels, with "
    "aselect; the peer waits with asyncio.wait(FIRST_COMPLETED) over one Queue.get() task "
    "per queue.",
    targets=(
        Target("asyncio.wait", 0.5, "at most half the cost of asyncio.wait", source="issue 2"),
    ),
)


@case("select over 4 channels (tasks)", "goconc")
def _sel_goconc(scale: float) -> dict[str, float]:
    from goconc import Chan, aselect

    n = max(400, int(40000 * scale)) // 4 * 4

    async def main() -> float:
        chans: list[Chan[int]] = [Chan(16) for _ in range(4)]

        async def producer() -> None:
            for i in range(n):
                await chans[i % 4].asend(i)

        t0 = time.perf_counter()
        prod = asyncio.ensure_future(producer())
        for _ in range(n):
            await aselect(*chans)
        await prod
        return time.perf_counter() - t0

    return {"us/value": _per(n, _arun(main))}


@case("select over 4 channels (tasks)", "asyncio.wait")
def _sel_asyncio(scale: float) -> dict[str, float]:
    n = max(400, int(40000 * scale)) // 4 * 4

    async def main() -> float:
        queues: list[asyncio.Queue[int]] = [asyncio.Queue(16) for _ in range(4)]

        async def producer() -> None:
            for i in range(n):
                await queues[i % 4].put(i)

        t0 = time.perf_counter()
        prod = asyncio.ensure_future(producer())
        getters = {asyncio.ensure_future(q.get()): q for q in queues}
        got = 0
        while got < n:
            done, _ = await asyncio.wait(getters, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                q = getters.pop(fut)
                fut.result()
                got += 1
                if got < n:
                    getters[asyncio.ensure_future(q.get())] = q
        for fut in getters:
            fut.cancel()
        await prod
        return time.perf_counter() - t0

    return {"us/value": _per(n, _arun(main))}


go_case("select over 4 channels (tasks)", "select4")

workload(
    "select over 4 channels (threads)",
    "us/value",
    description="One thread receives values that a producer thread spreads over 4 channels; "
    "the peer polls 4 queue.Queue with get_nowait and a short sleep (the usual workaround).",
)


@case("select over 4 channels (threads)", "goconc")
def _sel_t_goconc(scale: float) -> dict[str, float]:
    from goconc import Chan, select

    n = max(400, int(20000 * scale)) // 4 * 4
    chans: list[Chan[int]] = [Chan(16) for _ in range(4)]

    def producer() -> None:
        for i in range(n):
            chans[i % 4].send(i, timeout=WAIT)

    def consumer() -> None:
        for _ in range(n):
            select(*chans, timeout=WAIT)

    return {"us/value": _per(n, _threads(producer, consumer))}


@case("select over 4 channels (threads)", "queue.Queue polling")
def _sel_t_queue(scale: float) -> dict[str, float]:
    n = max(400, int(20000 * scale)) // 4 * 4
    queues: list[queue.Queue[int]] = [queue.Queue(16) for _ in range(4)]

    def producer() -> None:
        for i in range(n):
            queues[i % 4].put(i, timeout=WAIT)

    def consumer() -> None:
        got = 0
        while got < n:
            for q in queues:
                try:
                    q.get_nowait()
                    got += 1
                except queue.Empty:
                    pass
            else:
                time.sleep(0)

    return {"us/value": _per(n, _threads(producer, consumer))}
