"""sync.Once and once_func/once_value/once_values: Go's once and oncefunc tests."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

import pytest

from conftest import WAIT, run_async
from goconc import sync


class Boom(Exception):
    pass


def test_do_calls_the_function_once_across_threads() -> None:
    # Go's TestOnce: 10 goroutines call Do; f runs once, and every Do returns after it.
    once = sync.Once()
    calls = []
    finished = threading.Event()
    seen_unfinished = []

    def f() -> None:
        calls.append(1)
        time.sleep(0.02)
        finished.set()

    def caller() -> None:
        once.do(f)
        if not finished.is_set():
            seen_unfinished.append(1)

    ts = [threading.Thread(target=caller) for _ in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT)
    assert calls == [1]
    assert not seen_unfinished
    assert once.done()


def test_a_function_that_raises_still_counts_as_done() -> None:
    # Go's TestOncePanic: the panic reaches the first caller; later Do calls do nothing.
    once = sync.Once()

    def boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        once.do(boom)
    called = []
    once.do(lambda: called.append(1))
    assert called == []


def test_recursive_do_raises_instead_of_deadlocking() -> None:
    once = sync.Once()
    with pytest.raises(sync.SyncError, match="deadlock"):
        once.do(lambda: once.do(lambda: None))
    assert once.done()


def test_ado_runs_a_coroutine_function_once_and_others_wait() -> None:
    async def main() -> None:
        once = sync.Once()
        calls = []
        finished = asyncio.Event()

        async def f() -> None:
            calls.append(1)
            await asyncio.sleep(0.01)
            finished.set()

        async def caller() -> bool:
            await once.ado(f)
            return finished.is_set()

        assert all(await asyncio.gather(*(caller() for _ in range(5))))
        assert calls == [1]
        await once.ado(f)
        assert calls == [1]

    run_async(main())


def test_ado_accepts_a_plain_function_and_mixes_with_do() -> None:
    once = sync.Once()
    calls = []
    run_async(once.ado(lambda: calls.append("a")))
    once.do(lambda: calls.append("b"))
    assert calls == ["a"]


def test_a_thread_waits_for_a_task_running_the_function() -> None:
    once = sync.Once()
    started = threading.Event()
    result: list[str] = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.05)
        result.append("task")

    t = threading.Thread(target=run_async, args=(once.ado(slow),))
    t.start()
    assert started.wait(WAIT)
    once.do(lambda: result.append("thread"))  # blocks until the task's call returns
    assert result == ["task"]
    t.join(WAIT)


def test_recursive_ado_raises() -> None:
    async def main() -> None:
        once = sync.Once()

        async def f() -> None:
            await once.ado(f)

        with pytest.raises(sync.SyncError):
            await once.ado(f)

    run_async(main())


def test_once_func_calls_once_and_releases_f() -> None:
    # Go's TestOnceFunc and TestOnceXGC.
    calls = []

    class F:
        def __call__(self) -> None:
            calls.append(1)

    f = F()
    ref = weakref.ref(f)
    g = sync.once_func(f)
    del f
    g()
    g()
    assert calls == [1]
    del g.__wrapped__  # type: ignore[attr-defined]
    gc.collect()
    assert ref() is None


def test_once_value_returns_the_first_value_every_time() -> None:
    n = [0]

    def f() -> int:
        n[0] += 1
        return n[0]

    g = sync.once_value(f)
    assert [g() for _ in range(3)] == [1, 1, 1]


def test_once_values_returns_the_pair() -> None:
    g = sync.once_values(lambda: (1, "a"))
    assert g() == (1, "a")
    v, s = g()
    assert (v, s) == (1, "a")


@pytest.mark.parametrize("make", [sync.once_func, sync.once_value, sync.once_values])
def test_an_exception_is_raised_again_on_every_call(make: object) -> None:
    # Go 1.21: "If f panics, the returned function will panic with the same value on every call."
    calls = []

    def f() -> tuple[int, int]:
        calls.append(1)
        raise Boom("first")

    g = make(f)  # type: ignore[operator]
    errors = []
    for _ in range(3):
        with pytest.raises(Boom) as info:
            g()
        errors.append(info.value)
    assert calls == [1]
    assert errors[0] is errors[1] is errors[2]
    # The traceback does not grow with each re-raise.
    depth = [len(list(_frames(e.__traceback__))) for e in errors]
    assert depth[0] == depth[2]


def _frames(tb: object) -> list[object]:
    out = []
    while tb is not None:
        out.append(tb)
        tb = tb.tb_next  # type: ignore[attr-defined]
    return out


def test_once_value_concurrent_callers_get_the_same_object() -> None:
    def make() -> object:
        time.sleep(0.01)
        return object()

    g = sync.once_value(make)
    got: list[object] = []
    lock = threading.Lock()

    def caller() -> None:
        v = g()
        with lock:
            got.append(v)

    ts = [threading.Thread(target=caller) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT)
    assert len(got) == 8 and all(v is got[0] for v in got)


def test_once_value_recursion_raises() -> None:
    holder: list[object] = []

    def f() -> int:
        return holder[0]()  # type: ignore[operator,no-any-return]

    g = sync.once_value(f)
    holder.append(g)
    with pytest.raises(sync.SyncError):
        g()


def test_once_helpers_reject_bad_functions() -> None:
    async def coro() -> int:
        return 1

    with pytest.raises(TypeError, match="coroutine"):
        sync.once_value(coro)
    with pytest.raises(TypeError, match="callable"):
        sync.once_func(3)  # type: ignore[arg-type]
