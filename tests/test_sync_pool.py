"""sync.Pool: Go's pool tests (get/put, New, victim cache across collections, GC, stress)."""

from __future__ import annotations

import gc
import sysconfig
import threading
import weakref
from collections.abc import Iterator

import pytest

from conftest import WAIT
from goconc import sync


class Buf:
    """A pooled object that can be weakly referenced (to see it freed)."""

    def __init__(self, tag: object = None) -> None:
        self.tag = tag


@pytest.fixture(autouse=True)
def gc_enabled() -> Iterator[None]:
    # Collections in these tests are explicit; keep automatic ones from
    # rotating the pools at unexpected moments.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def test_get_put_and_the_victim_cache() -> None:
    # Go's TestPool.
    p: sync.Pool[str] = sync.Pool()
    assert p.get() is None
    p.put("a")
    p.put("b")
    got = {p.get(), p.get()}
    assert got == {"a", "b"}
    assert p.get() is None

    p.put("c")
    gc.collect()  # one full collection: "c" moved to the victim cache
    assert p.get() == "c"
    assert p.get() is None

    p.put("d")
    gc.collect()
    gc.collect()  # the second collection drops it
    assert p.get() is None


def test_objects_survive_exactly_one_full_collection_from_every_thread() -> None:
    p: sync.Pool[Buf] = sync.Pool()
    refs = []

    def put_some() -> None:
        for i in range(3):
            b = Buf(i)
            refs.append(weakref.ref(b))
            p.put(b)

    put_done, finish = threading.Event(), threading.Event()

    def other_thread() -> None:
        put_some()  # one object lands in this thread's private slot
        put_done.set()
        finish.wait(WAIT)

    t = threading.Thread(target=other_thread)
    t.start()
    try:
        assert put_done.wait(WAIT)
        put_some()
        gc.collect()
        assert all(r() is not None for r in refs)  # victims, still reachable
        gc.collect()
        assert all(r() is None for r in refs)  # freed at the second collection
        assert p.get() is None
    finally:
        finish.set()
        t.join(WAIT)


@pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="the free-threaded collector is not generational: every collection is full",
)
def test_young_collections_do_not_rotate() -> None:
    p: sync.Pool[str] = sync.Pool()
    p.put("x")
    gc.collect(0)
    gc.collect(1)
    gc.collect(0)
    assert p.get() == "x"


def test_new_is_called_when_empty() -> None:
    # Go's TestPoolNew.
    n = [0]

    def new() -> int:
        n[0] += 1
        return n[0]

    p = sync.Pool(new=new)
    assert p.get() == 1
    assert p.get() == 2
    p.put(42)
    assert p.get() == 42
    assert p.get() == 3
    s = p.statistics()
    assert (s.gets, s.misses, s.puts, s.news) == (4, 3, 1, 3)


def test_put_none_is_ignored() -> None:
    p: sync.Pool[object] = sync.Pool()
    p.put(None)
    assert p.get() is None
    assert p.statistics().puts == 0


def test_pooled_objects_are_freed_when_unused() -> None:
    # Go's TestPoolGC: everything put is eventually released.
    p: sync.Pool[Buf] = sync.Pool()
    refs = []
    for i in range(100):
        b = Buf(i)
        refs.append(weakref.ref(b))
        p.put(b)
    del b
    for _ in range(2):
        gc.collect()
    assert sum(r() is not None for r in refs) == 0


def test_a_pool_no_longer_referenced_is_collected() -> None:
    p: sync.Pool[Buf] = sync.Pool()
    p.put(Buf())
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert ref() is None


def test_stress_no_object_is_handed_out_twice() -> None:
    # Go's TestPoolStress, checking exclusivity: an object is held by one user at a time.
    p: sync.Pool[Buf] = sync.Pool(new=Buf)
    lock = threading.Lock()
    held: set[int] = set()
    errors: list[str] = []

    def worker() -> None:
        for i in range(2000):
            b = p.get()
            assert b is not None
            with lock:
                if id(b) in held:
                    errors.append("handed out twice")
                held.add(id(b))
            with lock:
                held.discard(id(b))
            p.put(b)
            if i % 500 == 0:
                gc.collect()

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT * 3)
        assert not t.is_alive()
    assert not errors
    s = p.statistics()
    assert s.gets == s.puts == 8000
    assert s.news < 8000  # objects were reused


def test_statistics_count_threads_that_ended() -> None:
    p: sync.Pool[int] = sync.Pool(new=lambda: 0)

    def use() -> None:
        p.put(p.get())

    ts = [threading.Thread(target=use) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT)
    del ts
    gc.collect()
    s = p.statistics()
    assert (s.gets, s.puts) == (3, 3)


def test_process_totals_sum_the_live_pools() -> None:
    p: sync.Pool[int] = sync.Pool(new=lambda: 1)
    before = sync.statistics()
    p.get()
    p.put(5)
    after = sync.statistics()
    assert after.pools >= 1
    assert after.pool_gets == before.pool_gets + 1
    assert after.pool_puts == before.pool_puts + 1


def test_new_must_be_callable() -> None:
    with pytest.raises(TypeError, match="new"):
        sync.Pool(new=3)  # type: ignore[arg-type]
