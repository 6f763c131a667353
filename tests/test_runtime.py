"""goconc.runtime: go(), Goroutine handles, panics, introspection and statistics."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import WAIT, run_async
from goconc import _park, runtime
from goconc.runtime import Goroutine, GoroutineInfo, go, go_named

# ------------------------------------------------------------------ helpers


class Gate:
    """A tiny goconc primitive: parks until opened, through the one waiter.

    ``reason`` is what a goroutine parked here shows in goroutines()/dump().
    """

    def __init__(self, reason: str = "chan receive") -> None:
        self.reason = reason
        self._mu = threading.Lock()
        self._q = _park.WaitQueue()
        self._open = False

    def begin(self, w: _park.Waiter) -> bool:
        with self._mu:
            if self._open:
                return True
            self._q.push(w)
            return False

    def abort(self, w: _park.Waiter) -> None:
        with self._mu:
            self._q.discard(w)

    def undo(self, w: _park.Waiter) -> None:
        pass

    def wait(self) -> None:
        _park.park(self, WAIT)

    async def await_(self) -> None:
        await _park.apark(self, WAIT)

    def open(self) -> None:
        with self._mu:
            self._open = True
            q, self._q = self._q, _park.WaitQueue()
        q.wake_all()


class FakeCtx:
    """Just what the waiter needs of a goconc Context."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._err: BaseException | None = None
        self._fns: dict[int, Callable[[], object]] = {}
        self._next = 0

    def err(self) -> BaseException | None:
        return self._err

    def _add_waiter(self, fn: Callable[[], object]) -> object | None:
        with self._mu:
            if self._err is not None:
                return None
            self._next += 1
            self._fns[self._next] = fn
            return self._next

    def _remove_waiter(self, token: object) -> None:
        with self._mu:
            self._fns.pop(token, None)  # type: ignore[call-overload]

    def cancel(self) -> None:
        with self._mu:
            self._err = RuntimeError("context canceled")
            fns, self._fns = list(self._fns.values()), {}
        for fn in fns:
            fn()


def eventually(pred: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def info(g: Goroutine[Any]) -> GoroutineInfo | None:
    return next((i for i in runtime.goroutines() if i.id == g.id), None)


@pytest.fixture
def panics() -> Iterator[list[tuple[Goroutine[Any], BaseException]]]:
    """Replace the panic handler with one that records, for the test's duration."""
    seen: list[tuple[Goroutine[Any], BaseException]] = []
    prev = runtime.set_panic_handler(lambda g, e: seen.append((g, e)))
    try:
        yield seen
    finally:
        runtime.set_panic_handler(prev)


@pytest.fixture(autouse=True)
def short_idle_threads() -> Iterator[None]:
    """Idle goroutine threads of this module expire soon after it ends."""
    prev = runtime.set_idle_timeout(1.0)
    try:
        yield
    finally:
        runtime.set_idle_timeout(prev)


def double(x: int) -> int:
    return 2 * x


async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def fail(msg: str) -> None:
    raise ValueError(msg)


async def afail(msg: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(msg)


# ------------------------------------------------------------------ go and join


def test_plain_callable_runs_on_its_own_thread_and_join_returns_its_result() -> None:
    caller = threading.get_ident()
    g = go(lambda: (threading.get_ident(), 42))
    ident, value = g.join(WAIT)
    assert value == 42 and ident != caller
    assert g.kind == "thread" and g.done()


def test_args_and_kwargs_pass_through_to_fn_including_one_called_name() -> None:
    def f(a: int, b: int, *, name: str) -> str:
        return f"{a}{b}{name}"

    assert go(f, 1, 2, name="x").join(WAIT) == "12x"


def test_ids_increase_in_start_order() -> None:
    gs = [go(double, i) for i in range(5)]
    assert [g.id for g in gs] == sorted(g.id for g in gs)
    assert len({g.id for g in gs}) == 5
    assert [g.join(WAIT) for g in gs] == [0, 2, 4, 6, 8]


def test_name_defaults_to_qualname_and_go_named_sets_it() -> None:
    g = go(double, 1)
    assert g.name == "double"
    h = go_named("worker-1", double, 2)
    assert h.name == "worker-1"
    assert g.join(WAIT) == 2 and h.join(WAIT) == 4
    with pytest.raises(TypeError, match="name"):
        go_named(3, double, 1)  # type: ignore[call-overload]


def test_coroutine_function_from_a_task_becomes_a_task_on_the_running_loop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def where() -> asyncio.AbstractEventLoop:
            return asyncio.get_running_loop()

        g = go(where)
        assert g.kind == "task"
        assert await g.ajoin(WAIT) is loop
        assert await go(adouble, 4).ajoin(WAIT) == 8

    run_async(main())


def test_coroutine_function_from_plain_code_runs_on_the_runtime_loop() -> None:
    async def where() -> str:
        return threading.current_thread().name

    g = go(where)
    assert g.kind == "task"
    assert g.join(WAIT) == "goconc-loop"
    assert go(adouble, 5).join(WAIT) == 10


def test_a_coroutine_object_or_awaitable_can_be_passed_directly() -> None:
    assert go(adouble(3)).join(WAIT) == 6

    async def main() -> int:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        g = go(fut)
        fut.set_result(7)
        return await g.ajoin(WAIT)

    assert run_async(main()) == 7


def test_an_object_with_an_async_call_is_a_coroutine_function() -> None:
    class Job:
        async def __call__(self, x: int) -> int:
            return x + 1

    g = go(Job(), 1)
    assert g.kind == "task" and g.join(WAIT) == 2


def test_bad_arguments_raise_at_the_call_site() -> None:
    with pytest.raises(TypeError, match="callable or awaitable"):
        go(42)  # type: ignore[call-overload]
    coro = adouble(1)
    with pytest.raises(TypeError, match="arguments"):
        go(coro, 1)  # type: ignore[call-overload]
    assert coro.cr_frame is None  # closed: no "never awaited" warning
    with pytest.raises(TypeError):
        go(adouble, 1, 2)  # type: ignore[call-arg]


def test_join_reraises_the_goroutine_exception_with_its_traceback(panics: list[Any]) -> None:
    g = go(fail, "boom")
    with pytest.raises(ValueError, match="boom") as ei:
        g.join(WAIT)
    assert any(tb.name == "fail" for tb in ei.traceback)
    assert isinstance(g.exception(), ValueError)
    # Joining again raises the same exception, without a growing traceback.
    with pytest.raises(ValueError) as ei2:
        g.join(WAIT)
    assert len(ei2.traceback) == len(ei.traceback)


def test_ajoin_reraises_a_task_goroutine_exception(panics: list[Any]) -> None:
    async def main() -> None:
        g = go(afail, "task boom")
        with pytest.raises(ValueError, match="task boom"):
            await g.ajoin(WAIT)

    run_async(main())


def test_result_and_exception_accessors_refuse_before_the_end() -> None:
    gate = Gate()
    g = go(gate.wait)
    with pytest.raises(RuntimeError, match="not finished"):
        g.result()
    with pytest.raises(RuntimeError, match="not finished"):
        g.exception()
    gate.open()
    assert g.join(WAIT) is None
    assert g.result() is None and g.exception() is None


def test_join_times_out_while_the_goroutine_keeps_running() -> None:
    gate = Gate()
    g = go(gate.wait)
    with pytest.raises(TimeoutError):
        g.join(timeout=0.05)
    assert not g.done()
    gate.open()
    g.join(WAIT)


def test_ajoin_times_out_while_the_goroutine_keeps_running() -> None:
    gate = Gate()

    async def main() -> None:
        g = go(gate.await_)
        with pytest.raises(TimeoutError):
            await g.ajoin(timeout=0.05)
        assert not g.done()
        gate.open()
        await g.ajoin(WAIT)

    run_async(main())


def test_join_and_ajoin_end_with_ctx_err_when_the_context_ends() -> None:
    gate = Gate()
    g = go(gate.wait)
    ctx = FakeCtx()
    threading.Timer(0.05, ctx.cancel).start()
    with pytest.raises(RuntimeError, match="context canceled"):
        g.join(ctx=ctx)

    async def main() -> None:
        actx = FakeCtx()
        asyncio.get_running_loop().call_later(0.05, actx.cancel)
        with pytest.raises(RuntimeError, match="context canceled"):
            await g.ajoin(ctx=actx)

    run_async(main())
    assert not g.done()
    gate.open()
    g.join(WAIT)


def test_join_of_a_finished_goroutine_with_a_done_context_prefers_to_fail() -> None:
    g = go(double, 1)
    g.join(WAIT)
    ctx = FakeCtx()
    ctx.cancel()
    with pytest.raises(RuntimeError, match="context canceled"):
        g.join(ctx=ctx)
    with pytest.raises(ValueError, match="timeout"):
        g.join(timeout=-1)


def test_a_thread_joins_a_task_goroutine_and_a_task_joins_a_thread_goroutine() -> None:
    task_g = go(adouble, 10)  # on the runtime loop
    from_thread = go(task_g.join, WAIT)  # a thread goroutine joining a task goroutine
    assert from_thread.join(WAIT) == 20

    async def main() -> int:
        thread_g = go(double, 21)
        return await thread_g.ajoin(WAIT)

    assert run_async(main()) == 42


def test_tasks_on_other_loops_join_task_goroutines_across_loops() -> None:
    gate = Gate()

    async def waiter() -> str:
        await gate.await_()
        return "done"

    g = go(waiter)  # on the runtime loop

    async def joiner() -> str:
        return await g.ajoin(WAIT)

    joins = [go(lambda: asyncio.run(joiner())) for _ in range(3)]  # three more loops
    time.sleep(0.05)
    gate.open()
    assert [j.join(WAIT) for j in joins] == ["done"] * 3


def test_a_goroutine_joining_itself_raises_instead_of_deadlocking() -> None:
    box: list[Goroutine[Any]] = []
    ready = threading.Event()

    def selfjoin() -> None:
        ready.wait(WAIT)
        box[0].join(WAIT)

    g = go(selfjoin)
    box.append(g)
    prev = runtime.set_panic_handler(lambda g, e: None)
    try:
        ready.set()
        with pytest.raises(RuntimeError, match="itself"):
            g.join(WAIT)
    finally:
        runtime.set_panic_handler(prev)

    async def aselfjoin() -> None:
        me = runtime.current()
        assert me is not None
        await me.ajoin(WAIT)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="itself"):
            await go(aselfjoin).ajoin(WAIT)

    prev = runtime.set_panic_handler(lambda g, e: None)
    try:
        run_async(main())
    finally:
        runtime.set_panic_handler(prev)


def test_blocking_join_of_a_task_goroutine_on_its_own_loop_raises() -> None:
    async def main() -> None:
        gate = Gate()
        g = go(gate.await_)
        with pytest.raises(RuntimeError, match="ajoin"):
            g.join(WAIT)
        gate.open()
        await g.ajoin(WAIT)

    run_async(main())


def test_cancelling_an_ajoin_stops_the_wait_not_the_goroutine() -> None:
    gate = Gate()

    async def main() -> None:
        g = go(gate.wait)
        t = asyncio.create_task(g.ajoin(WAIT))
        await asyncio.sleep(0.02)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert not g.done()
        gate.open()
        await g.ajoin(WAIT)

    run_async(main())


# ------------------------------------------------------------------ panics


def test_default_panic_handler_logs_with_traceback_id_name_and_site(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="goconc"):
        g = go_named("exploder", fail, "kaboom")
        with pytest.raises(ValueError):
            g.join(WAIT)
    records = [
        r for r in caplog.records if r.name == "goconc" and f"goroutine {g.id} " in r.msg % r.args
    ]
    assert len(records) == 1
    rec = records[0]
    text = rec.getMessage()
    assert "exploder" in text and "test_runtime.py" in text and "in test_default_panic" in text
    assert rec.exc_info is not None and rec.exc_info[1] is g.exception()
    assert "kaboom" in caplog.text and "Traceback" in caplog.text


def test_replaced_panic_handler_is_called_once_per_escaped_exception() -> None:
    seen: list[tuple[Goroutine[Any], BaseException]] = []
    prev = runtime.set_panic_handler(lambda g, e: seen.append((g, e)))
    try:
        g = go(fail, "a")
        t = go(afail, "b")
        with pytest.raises(ValueError):
            g.join(WAIT)
        with pytest.raises(ValueError):
            t.join(WAIT)
    finally:
        back = runtime.set_panic_handler(prev)
    assert sorted((x.id, str(e)) for x, e in seen) == [(g.id, "a"), (t.id, "b")]
    assert back is not prev


def test_set_panic_handler_returns_the_previous_and_none_restores_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def mine(g: Goroutine[Any], e: BaseException) -> None:
        pass

    first = runtime.set_panic_handler(mine)
    assert runtime.set_panic_handler(None) is mine
    restored = runtime.set_panic_handler(first)
    assert restored is not mine  # the default
    with pytest.raises(TypeError):
        runtime.set_panic_handler(42)  # type: ignore[arg-type]


def test_a_failing_panic_handler_is_logged_and_never_kills_the_runtime(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(g: Goroutine[Any], e: BaseException) -> None:
        raise RuntimeError("handler broke")

    prev = runtime.set_panic_handler(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="goconc"):
            g = go(fail, "x")
            with pytest.raises(ValueError):
                g.join(WAIT)
    finally:
        runtime.set_panic_handler(prev)
    assert "panic handler failed" in caplog.text
    assert go(double, 2).join(WAIT) == 4


def test_cancelled_task_goroutine_is_not_a_panic(panics: list[Any]) -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def sleeper() -> None:
            started.set()
            await asyncio.sleep(WAIT)

        g = go(sleeper)
        await started.wait()
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == g.name]
        tasks[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await g.ajoin(WAIT)
        assert isinstance(g.exception(), asyncio.CancelledError)

    run_async(main())
    assert panics == []


def test_thread_goroutine_returning_a_coroutine_panics_with_a_clear_error(
    panics: list[Any],
) -> None:
    g = go(lambda: adouble(1))
    with pytest.raises(TypeError, match="returned a coroutine"):
        g.join(WAIT)
    assert len(panics) == 1


def test_panic_handler_runs_as_the_failing_goroutine() -> None:
    seen: list[object] = []
    prev = runtime.set_panic_handler(lambda g, e: seen.append(runtime.current() is g))
    try:
        with pytest.raises(ValueError):
            go(fail, "x").join(WAIT)
    finally:
        runtime.set_panic_handler(prev)
    assert seen == [True]


# ------------------------------------------------------------------ thread reuse


def test_consecutive_thread_goroutines_reuse_the_same_os_thread() -> None:
    first = go(threading.get_ident).join(WAIT)
    idents = {go(threading.get_ident).join(WAIT) for _ in range(20)}
    assert idents == {first}
    assert runtime.statistics()["runtime"].threads_reused >= 20  # type: ignore[attr-defined]


def test_idle_threads_are_not_goroutines() -> None:
    g = go(threading.get_ident)
    ident = g.join(WAIT)
    eventually(lambda: ident in runtime._internal_thread_idents())
    assert info(g) is None
    assert ident in {t.ident for t in threading.enumerate()}  # alive, idle, not a goroutine
    assert threading.enumerate()[[t.ident for t in threading.enumerate()].index(ident)].name == (
        "goconc-idle"
    )


def test_idle_threads_expire_after_the_idle_timeout() -> None:
    runtime.set_idle_timeout(0.05)
    ident = go(threading.get_ident).join(WAIT)
    eventually(lambda: ident not in {t.ident for t in threading.enumerate()})
    assert ident not in runtime._internal_thread_idents()


def test_idle_timeout_is_validated() -> None:
    with pytest.raises(ValueError):
        runtime.set_idle_timeout(-1)
    with pytest.raises(TypeError):
        runtime.set_idle_timeout("1")  # type: ignore[arg-type]
    assert runtime.get_idle_timeout() == 1.0


def test_goroutine_threads_are_daemon_threads_named_after_the_goroutine() -> None:
    g = go(lambda: (threading.current_thread().daemon, threading.current_thread().name))
    daemon, name = g.join(WAIT)
    assert daemon and name == f"goroutine-{g.id}"


# ------------------------------------------------------------------ current()


def test_current_is_the_running_goroutine_and_none_outside() -> None:
    assert runtime.current() is None
    g = go(lambda: runtime.current())
    assert g.join(WAIT) is g

    async def me() -> object:
        await asyncio.sleep(0)
        return runtime.current()

    t = go(me)
    assert t.join(WAIT) is t

    async def main() -> None:
        assert runtime.current() is None  # a task not started by go()
        g2 = go(me)
        assert await g2.ajoin(WAIT) is g2

    run_async(main())


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="Python 3.12+")
def test_current_works_in_the_first_step_of_an_eager_task() -> None:
    async def me() -> object:
        return runtime.current()  # runs inside create_task, before any suspension

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        g = go(me)
        assert await g.ajoin(WAIT) is g

    run_async(main())


# ------------------------------------------------------------------ introspection


def test_goroutines_reports_running_blocked_with_reason_and_done_drops_out() -> None:
    gate = Gate("chan receive")
    busy = threading.Event()
    stop = threading.Event()

    def spin() -> None:
        busy.set()
        stop.wait(WAIT)

    parked = go(gate.wait)
    running = go(spin)
    busy.wait(WAIT)
    eventually(lambda: (i := info(parked)) is not None and i.state == "blocked")
    i = info(parked)
    assert i is not None
    assert i.kind == "thread" and i.waiting_on == "chan receive"
    assert i.created_at.endswith(
        "in test_goroutines_reports_running_blocked_with_reason_and_done_drops_out"
    )
    assert "test_runtime.py:" in i.created_at
    assert any("in park" in frame for frame in i.stack)
    r = info(running)
    assert r is not None and r.state == "running" and r.waiting_on is None
    if _park.FRAMES_UNSAFE:  # a running thread's frames cannot be read safely there
        assert r.stack == []
    else:
        assert any("in spin" in frame for frame in r.stack)
    gate.open()
    stop.set()
    parked.join(WAIT)
    running.join(WAIT)
    assert info(parked) is None and info(running) is None


def test_task_goroutines_show_blocked_state_and_the_await_chain() -> None:
    gate = Gate("sync.Mutex.Lock")

    async def inner() -> None:
        await gate.await_()

    async def outer() -> None:
        await inner()

    g = go(outer)  # on the runtime loop
    eventually(lambda: (i := info(g)) is not None and i.state == "blocked")
    i = info(g)
    assert i is not None and i.kind == "task" and i.waiting_on == "sync.Mutex.Lock"
    names = [frame.split(", in ")[1].split("\n")[0] for frame in i.stack]
    assert names[:3] == ["outer", "inner", "await_"] and names[-1] == "apark"
    gate.open()
    g.join(WAIT)
    assert info(g) is None


def test_goroutines_called_from_a_task_goroutine_sees_itself_running() -> None:
    async def look() -> GoroutineInfo | None:
        me = runtime.current()
        assert me is not None
        return next((i for i in runtime.goroutines() if i.id == me.id), None)

    i = go(look).join(WAIT)
    assert i is not None and i.state == "running"
    assert any("in look" in frame for frame in i.stack)


def test_dump_is_a_go_style_text_dump() -> None:
    gate = Gate("chan send")
    g = go_named("sender", gate.wait)
    eventually(lambda: (i := info(g)) is not None and i.state == "blocked")
    text = runtime.dump()
    block = next(b for b in text.split("\n\n") if b.startswith(f"goroutine {g.id} "))
    lines = block.splitlines()
    assert lines[0] == f"goroutine {g.id} [chan send]: sender (thread)"
    assert lines[1] == "park(...)"  # innermost frame first, as in Go
    assert lines[2].startswith("\t") and "_park.py:" in lines[2]
    assert lines[-1].startswith("created by test_dump_is_a_go_style_text_dump at ")
    assert "test_runtime.py:" in lines[-1]
    gate.open()
    g.join(WAIT)
    assert f"goroutine {g.id} " not in runtime.dump()


def test_num_goroutine_counts_live_goroutines_only() -> None:
    gate = Gate()
    before = runtime.num_goroutine()
    gs = [go(gate.wait) for _ in range(3)]
    assert runtime.num_goroutine() >= before + 3
    gate.open()
    for g in gs:
        g.join(WAIT)
    assert all(info(g) is None for g in gs)


def test_no_registry_leak_after_ten_thousand_goroutines() -> None:
    refs: list[weakref.ref[Goroutine[Any]]] = []

    async def main() -> None:
        gs = [go(adouble, i) for i in range(9_000)]
        assert [await g.ajoin(WAIT) for g in gs[:3]] == [0, 2, 4]
        for g in gs:
            await g.ajoin(WAIT)
        refs.extend(weakref.ref(g) for g in gs[::100])

    run_async(main())
    threads = [go(double, i) for i in range(1_000)]
    for g in threads:
        g.join(WAIT)
    refs.extend(weakref.ref(g) for g in threads[::100])
    ids = {g.id for g in threads}
    del threads
    assert not ids & set(runtime._registry)
    gc.collect()
    assert all(r() is None for r in refs)


def test_task_goroutines_of_a_closed_loop_drop_out_quietly(
    caplog: pytest.LogCaptureFixture, panics: list[Any]
) -> None:
    loop = asyncio.new_event_loop()

    async def start() -> Goroutine[None]:
        return go(asyncio.Event().wait)

    g = loop.run_until_complete(start())
    loop.close()  # the goroutine's task never ran to its end
    assert info(g) is None
    assert g.done() and isinstance(g.exception(), asyncio.CancelledError)
    del g
    gc.collect()
    assert "destroyed but it is pending" not in caplog.text
    assert panics == []


# ------------------------------------------------------------------ statistics


def test_statistics_include_the_runtime_record_and_registered_sources() -> None:
    runtime.register_statistics("test.source", lambda: {"hits": 3})
    try:
        with pytest.raises(ValueError, match="already"):
            runtime.register_statistics("test.source", dict)
        with pytest.raises(ValueError):
            runtime.register_statistics("runtime", dict)
        with pytest.raises(TypeError):
            runtime.register_statistics("test.bad", 3)  # type: ignore[arg-type]
        gate = Gate()
        g = go(gate.wait)
        eventually(lambda: (i := info(g)) is not None and i.state == "blocked")
        stats = runtime.statistics()
        assert stats["test.source"] == {"hits": 3}
        rt = stats["runtime"]
        assert isinstance(rt, runtime.RuntimeStatistics)
        assert rt.goroutines >= 1 and rt.by_kind["thread"] >= 1 and rt.by_state["blocked"] >= 1
        assert rt.started >= g.id and rt.threads_started >= 1
        gate.open()
        g.join(WAIT)
    finally:
        runtime.unregister_statistics("test.source")
    assert "test.source" not in runtime.statistics()


def test_a_failing_statistics_source_is_reported_not_raised() -> None:
    def broken() -> object:
        raise OSError("gone")

    runtime.register_statistics("test.broken", broken)
    try:
        value = runtime.statistics()["test.broken"]
    finally:
        runtime.unregister_statistics("test.broken")
    assert isinstance(value, OSError)


# ------------------------------------------------------------------ race detector


@pytest.fixture
def race() -> Iterator[Any]:
    import io

    from goconc import race as race_mod

    race_mod.reset()
    race_mod.set_output(io.StringIO())
    race_mod.enable(summary_at_exit=False)
    try:
        yield race_mod
    finally:
        race_mod.disable()
        race_mod.reset()
        race_mod.set_output(None)


@pytest.mark.parametrize("kind", ["thread", "task"])
def test_go_and_join_are_happens_before_edges_for_the_race_detector(race: Any, kind: str) -> None:
    shared = race.Shared({"n": 0})
    shared["n"] = 1  # before go(): ordered before everything the goroutine does

    def bump() -> None:
        shared["n"] = shared["n"] + 1

    async def abump() -> None:
        bump()

    g = go(bump) if kind == "thread" else go(abump)
    g.join(WAIT)
    assert shared["n"] == 2  # after join(): ordered after everything it did
    assert race.reports() == []


def test_two_goroutines_writing_one_location_without_goconc_sync_race(race: Any) -> None:
    shared = race.Shared({"n": 0})
    first_wrote = threading.Event()  # not a goconc primitive: no happens-before edge

    def first() -> None:
        shared["n"] = 1
        first_wrote.set()

    def second() -> None:
        first_wrote.wait(WAIT)
        shared["n"] = 2

    gs = [go(first), go(second)]
    for g in gs:
        g.join(WAIT)
    assert race.reports()


# ------------------------------------------------------------------ exit


def test_interpreter_exits_cleanly_with_goroutines_still_running() -> None:
    script = textwrap.dedent(
        """
        import asyncio, threading, time
        from goconc import go

        async def forever():
            try:
                await asyncio.Event().wait()
            finally:
                print("task cleaned up", flush=True)

        async def quick():
            return 1

        go(forever)
        assert go(quick).join(timeout=10) == 1
        go(threading.Event().wait)
        time.sleep(0.05)
        print("main done", flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["main done", "task cleaned up"]
    # -X dev turns on asyncio's debug mode, which reports callbacks slower than 0.1 s:
    # a loaded machine's doing, not the runtime's.  Anything else on stderr fails.
    slow = re.compile(r"Executing <.*> took \d+\.\d+ seconds")
    assert [line for line in proc.stderr.splitlines() if not slow.fullmatch(line)] == []


# ------------------------------------------------------------------ properties


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["thread", "task"]), st.booleans()), max_size=12))
def test_every_goroutine_is_joined_with_its_own_outcome(
    plan: list[tuple[str, bool]],
) -> None:
    prev = runtime.set_panic_handler(lambda g, e: None)
    try:
        gs = []
        for i, (kind, ok) in enumerate(plan):
            if kind == "thread":
                gs.append(go(double, i) if ok else go(fail, str(i)))
            else:
                gs.append(go(adouble, i) if ok else go(afail, str(i)))
        for i, ((kind, ok), g) in enumerate(zip(plan, gs, strict=True)):
            assert g.kind == kind
            if ok:
                assert g.join(WAIT) == 2 * i
            else:
                with pytest.raises(ValueError, match=f"^{i}$"):
                    g.join(WAIT)
        assert not {g.id for g in gs} & set(runtime._registry)
    finally:
        runtime.set_panic_handler(prev)
