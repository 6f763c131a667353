"""goconc.atomic: Go's atomic.Value tests, Int/Bool, and copy-on-write; hypothesis sums."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import WAIT
from goconc import atomic


def run_threads(fn: Callable[[int], object], n: int) -> None:
    ts = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(WAIT)
        assert not t.is_alive()


# -- Value ----------------------------------------------------------------------------------


def test_value_load_store() -> None:
    # Go's TestValue.
    v: atomic.Value[int] = atomic.Value()
    assert v.load() is None
    v.store(42)
    assert v.load() == 42
    v.store(84)
    assert v.load() == 84
    assert atomic.Value("x").load() == "x"


def test_value_rejects_none_and_other_types() -> None:
    # Go's TestValuePanic.
    v: atomic.Value[object] = atomic.Value()
    with pytest.raises(TypeError, match="sync/atomic: store of nil value into Value"):
        v.store(None)
    v.store(42)
    with pytest.raises(TypeError, match="sync/atomic: store of inconsistently typed value"):
        v.store("foo")
    with pytest.raises(TypeError, match="sync/atomic: store of inconsistently typed value"):
        v.store(True)  # exactly the first type, as Go's concrete types
    with pytest.raises(TypeError, match="nil"):
        v.store(None)
    assert v.load() == 42


def test_value_swap() -> None:
    # Go's TestValue_Swap.
    v: atomic.Value[int] = atomic.Value()
    assert v.swap(1) is None
    assert v.swap(2) == 1
    assert v.load() == 2
    with pytest.raises(TypeError, match="nil"):
        v.swap(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inconsistently"):
        v.swap("x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("init", "old", "new", "want"),
    [
        (None, None, 1, True),  # an empty Value matches only None
        (None, 2, 1, False),
        (1, 1, 2, True),
        (1, 3, 2, False),
    ],
)
def test_value_compare_and_swap_table(
    init: int | None, old: int | None, new: int, want: bool
) -> None:
    # Go's TestValue_CompareAndSwap.
    v: atomic.Value[int] = atomic.Value(init)
    assert v.compare_and_swap(old, new) is want
    assert v.load() == (new if want else init)


def test_value_compare_and_swap_compares_like_containers() -> None:
    v: atomic.Value[tuple[int, ...]] = atomic.Value((1, 2))
    assert v.compare_and_swap((1, 2), (3,))  # equal, not identical
    nan = float("nan")
    f: atomic.Value[float] = atomic.Value(nan)
    assert f.compare_and_swap(nan, 1.0)  # identical, though nan != nan
    assert not f.compare_and_swap(nan, 2.0)


def test_value_compare_and_swap_misuse() -> None:
    v: atomic.Value[int] = atomic.Value(1)
    with pytest.raises(TypeError, match="nil"):
        v.compare_and_swap(1, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inconsistently typed values"):
        v.compare_and_swap("a", 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inconsistently typed value into Value"):
        v.compare_and_swap(None, "b")  # type: ignore[arg-type]
    e: atomic.Value[int] = atomic.Value()
    assert not e.compare_and_swap(5, 6)
    e.store("first type is set by the first store, not by a failed CAS")  # type: ignore[arg-type]


def test_value_concurrent_stores_are_seen_whole() -> None:
    # Go's TestValueConcurrent: every load sees one of the stored values.
    values = [(i, i * 10) for i in range(10)]
    v: atomic.Value[tuple[int, int]] = atomic.Value(values[0])
    errors: list[object] = []

    def worker(i: int) -> None:
        for k in range(2000):
            if k % 2:
                v.store(values[(i + k) % len(values)])
            else:
                got = v.load()
                if got not in values:
                    errors.append(got)

    run_threads(worker, 4)
    assert not errors


def test_value_compare_and_swap_counter_under_threads() -> None:
    # Go's TestValueCompareAndSwapConcurrent: CAS loops never lose an increment.
    v: atomic.Value[int] = atomic.Value(0)

    def worker(_: int) -> None:
        for _ in range(500):
            while True:
                cur = v.load()
                assert cur is not None
                if v.compare_and_swap(cur, cur + 1):
                    break

    run_threads(worker, 4)
    assert v.load() == 2000


# -- Int and Bool ---------------------------------------------------------------------------


def test_int_operations() -> None:
    n = atomic.Int()
    assert n.load() == 0
    assert n.add(5) == 5
    assert n.add(-2) == 3
    assert n.swap(10) == 3
    assert n.compare_and_swap(10, 11)
    assert not n.compare_and_swap(10, 12)
    n.store(-4)
    assert n.load() == -4
    assert "Int -4" in repr(n)


def test_int_rejects_non_ints() -> None:
    n = atomic.Int()
    with pytest.raises(TypeError, match="delta"):
        n.add(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value"):
        atomic.Int(True)
    with pytest.raises(TypeError):
        n.store("1")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(deltas=st.lists(st.lists(st.integers(-(2**70), 2**70), max_size=40), min_size=1, max_size=4))
def test_int_add_from_threads_equals_the_sum(deltas: list[list[int]]) -> None:
    n = atomic.Int(7)
    returned: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        for d in deltas[i]:
            r = n.add(d)
            with lock:
                returned.append(r)

    run_threads(worker, len(deltas))
    assert n.load() == 7 + sum(sum(d) for d in deltas)
    assert len(returned) == sum(len(d) for d in deltas)


def test_bool_operations() -> None:
    b = atomic.Bool()
    assert b.load() is False
    assert b.compare_and_swap(False, True)
    assert not b.compare_and_swap(False, True)
    assert b.swap(False) is True
    b.store(True)
    assert b.load() is True
    with pytest.raises(TypeError):
        b.store(1)  # type: ignore[arg-type]


def test_bool_compare_and_swap_lets_one_thread_win() -> None:
    b = atomic.Bool()
    winners = atomic.Int()

    def worker(_: int) -> None:
        if b.compare_and_swap(False, True):
            winners.add(1)

    run_threads(worker, 8)
    assert winners.load() == 1


# -- CopyOnWrite ------------------------------------------------------------------------------


def test_copy_on_write_update_never_loses_a_write() -> None:
    m: atomic.CopyOnWrite[dict[str, int]] = atomic.CopyOnWrite({})
    seen_sizes: list[int] = []

    def writer(i: int) -> None:
        for k in range(200):
            m.update(_adding(f"{i}-{k}", k))

    def reader() -> None:
        for _ in range(500):
            snap = m.load()
            seen_sizes.append(len(snap))

    r = threading.Thread(target=reader)
    r.start()
    run_threads(writer, 4)
    r.join(WAIT)
    assert len(m.load()) == 800
    assert seen_sizes == sorted(seen_sizes)  # snapshots only grow, each one whole


def _adding(key: str, value: int) -> Callable[[dict[str, int]], dict[str, int]]:
    return lambda cur: {**cur, key: value}


def test_copy_on_write_update_returns_the_stored_value_and_keeps_it_on_error() -> None:
    c = atomic.CopyOnWrite[tuple[int, ...]]((1,))
    assert c.update(lambda cur: (*cur, 2)) == (1, 2)

    def boom(cur: tuple[int, ...]) -> tuple[int, ...]:
        raise KeyError

    with pytest.raises(KeyError):
        c.update(boom)
    assert c.load() == (1, 2)
    c.store(())
    assert c.load() == ()
    with pytest.raises(TypeError, match="callable"):
        c.update(3)  # type: ignore[arg-type]


def test_loaded_snapshot_is_unaffected_by_later_stores() -> None:
    c = atomic.CopyOnWrite({"a": 1})
    snap = c.load()
    c.update(lambda cur: {**cur, "b": 2})
    assert snap == {"a": 1}
    assert c.load() == {"a": 1, "b": 2}
