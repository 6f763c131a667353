"""Atomic values and copy-on-write: readers that never take a lock.

Go's ``sync/atomic`` for Python.  Every type here keeps its current value as
one attribute holding an object that is never changed in place: a load is a
plain attribute read (no lock, never blocked by a writer, safe on
free-threaded CPython, where reading one attribute is atomic), and every
write (store, swap, compare-and-swap, add, update) runs under a small
``threading`` lock of its own, so read-modify-write sequences do not lose
updates even without the GIL.

* :class:`Value` is Go's ``atomic.Value``: any object, with Go's type rule
  (every store must have the type of the first) and no ``None`` stored.
* :class:`Int` and :class:`Bool` are Go's ``atomic.Int64`` and ``atomic.Bool``.
* :class:`CopyOnWrite` is the lessons' copy-on-write idiom: readers
  ``load()`` a snapshot without a lock; writers build a new snapshot from
  the current one and swap it in under the writers' lock (``update``).

Loads observe stores in one order for every reader (what Go calls
sequentially consistent atomics): a value stored before a load began is
seen by it or replaced by a later store.  A loaded snapshot must be treated
as immutable: mutating it in place is a data race, exactly as in Go.

Happens-before (goconc.race): a store (or swap, successful CAS, add,
update) releases the atomic; a load (and every swap, CAS and add) acquires
it, after reading the value, so that it acquires at least the store it read.

Threads and asyncio alike (nothing here blocks on anything but a write
lock held for a few bytecodes)::

    config = atomic.Value(load_config())
    config.store(load_config())        # the reloader
    timeout = config.load().timeout    # any reader, any thread or task
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from . import _racehooks

__all__ = ["Bool", "CopyOnWrite", "Int", "Value"]

T = TypeVar("T")
W = TypeVar("W", int, bool)


class Value(Generic[T]):
    """Go's ``atomic.Value``: load and store one object without readers locking.

    ``Value()`` is empty (``load()`` returns None) until the first store;
    ``Value(x)`` stores ``x`` at once.  Every stored value must have
    exactly the type of the first one, and None cannot be stored, as in Go.

    Raises ``TypeError`` ("sync/atomic: store of inconsistently typed value
    into Value", "sync/atomic: store of nil value into Value") on a bad
    store, swap or compare-and-swap.

    Example::

        current = atomic.Value(Config(timeout=1.0))

        def reload() -> None:                # a writer, any thread
            current.store(read_config_file())

        def handle(request) -> None:         # readers: no lock, never blocked
            cfg = current.load()
            ...
    """

    __slots__ = ("__weakref__", "_mu", "_type", "_v")

    def __init__(self, initial: T | None = None) -> None:
        self._mu = _thread.allocate_lock()  # serialises writers; readers never take it
        self._type: type[Any] | None = None  # guarded by _mu; the type of the first store
        self._v: T | None = None  # written under _mu, read without it
        if initial is not None:
            self.store(initial)

    def __repr__(self) -> str:
        return f"<atomic.Value {self._v!r}>"

    def load(self) -> T | None:
        """The value last stored, or None if there was none.  Never blocks."""
        v = self._v
        if _racehooks.enabled:
            _racehooks.acquire(self)  # after reading: acquires at least the store that is read
        return v

    def store(self, value: T) -> None:
        """Replace the value.  Raises ``TypeError`` for None or a different type."""
        with self._mu:
            self._check(value)
            if _racehooks.enabled:
                _racehooks.release(self)
            self._v = value

    def swap(self, new: T) -> T | None:
        """Store ``new`` and return the previous value (None if there was none)."""
        with self._mu:
            self._check(new)
            if _racehooks.enabled:
                _racehooks.release(self)
                _racehooks.acquire(self)
            old, self._v = self._v, new
        return old

    def compare_and_swap(self, old: T | None, new: T) -> bool:
        """Store ``new`` if the current value is ``old``; return whether it did.

        "Is ``old``" is decided the way Python containers compare members:
        the same object, or else equal (``==``).  An empty Value matches only
        ``old=None``.  Raises ``TypeError`` if ``new`` is None or of another
        type than the stored values, or if ``old`` and ``new`` differ in type.
        """
        if new is None:
            raise TypeError("sync/atomic: compare and swap of nil value into Value")
        if old is not None and type(old) is not type(new):
            raise TypeError("sync/atomic: compare and swap of inconsistently typed values")
        with self._mu:
            t = self._type
            if t is not None and type(new) is not t:
                self._check(new)  # raises
            cur = self._v
            if not (cur is old or (cur is not None and old is not None and bool(cur == old))):
                if _racehooks.enabled:
                    _racehooks.acquire(self)  # a failed swap still loads, as in Go
                return False
            self._check(new)
            if _racehooks.enabled:
                _racehooks.release(self)
                _racehooks.acquire(self)
            self._v = new
        return True

    def _check(self, value: object) -> None:
        """Under _mu: reject a value that may not be stored; note the first type."""
        if value is None:
            raise TypeError("sync/atomic: store of nil value into Value")
        t = self._type
        if t is None:
            self._type = type(value)
        elif type(value) is not t:
            raise TypeError(
                "sync/atomic: store of inconsistently typed value into Value "
                f"({type(value).__name__}, not {t.__name__})"
            )


class _Word(Generic[W]):
    """A word loaded without a lock and changed under a writers' lock (Int, Bool)."""

    __slots__ = ("__weakref__", "_mu", "_v")

    def __init__(self, value: W) -> None:
        self._check(value, "value")
        self._mu = _thread.allocate_lock()  # serialises writers
        self._v: W = value  # written under _mu, read without it

    @staticmethod
    def _check(v: object, name: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _same(a: object, b: object) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<atomic.{type(self).__name__} {self._v}>"

    def load(self) -> W:
        """The current value.  Never blocks."""
        v = self._v
        if _racehooks.enabled:
            _racehooks.acquire(self)  # after reading: acquires at least the store that is read
        return v

    def store(self, value: W) -> None:
        """Set the value."""
        self._check(value, "value")
        with self._mu:
            if _racehooks.enabled:
                _racehooks.release(self)
            self._v = value

    def swap(self, new: W) -> W:
        """Set the value to ``new`` and return the previous one."""
        self._check(new, "new")
        with self._mu:
            if _racehooks.enabled:
                _racehooks.release(self)
                _racehooks.acquire(self)
            old, self._v = self._v, new
        return old

    def compare_and_swap(self, old: W, new: W) -> bool:
        """Set the value to ``new`` if it is ``old``; return whether it did."""
        self._check(new, "new")
        with self._mu:
            if not self._same(self._v, old):
                if _racehooks.enabled:
                    _racehooks.acquire(self)  # a failed swap still loads, as in Go
                return False
            if _racehooks.enabled:
                _racehooks.release(self)
                _racehooks.acquire(self)
            self._v = new
        return True


class Int(_Word[int]):
    """Go's ``atomic.Int64``: an integer loaded without a lock, changed atomically.

    ``compare_and_swap(old, new)`` compares with ``==``.

    Example::

        hits = atomic.Int()
        n = hits.add(1)          # the new value, as Go's Add
        hits.load()
    """

    __slots__ = ()

    def __init__(self, value: int = 0) -> None:
        super().__init__(value)

    @staticmethod
    def _check(v: object, name: str) -> None:
        _check_int(v, name)

    @staticmethod
    def _same(a: object, b: object) -> bool:
        return a == b

    def add(self, delta: int) -> int:
        """Add ``delta`` (may be negative) and return the new value."""
        _check_int(delta, "delta")
        with self._mu:
            if _racehooks.enabled:
                _racehooks.release(self)
                _racehooks.acquire(self)
            v: int = self._v + delta
            self._v = v
        return v


class Bool(_Word[bool]):
    """Go's ``atomic.Bool``.

    ``compare_and_swap(old, new)`` succeeds only when the value *is* ``old``.

    Example::

        closing = atomic.Bool()
        if closing.compare_and_swap(False, True):
            ...                  # only the first caller gets here
    """

    __slots__ = ()

    def __init__(self, value: bool = False) -> None:
        super().__init__(value)

    @staticmethod
    def _check(v: object, name: str) -> None:
        _check_bool(v, name)

    @staticmethod
    def _same(a: object, b: object) -> bool:
        return a is b


class CopyOnWrite(Generic[T]):
    """A snapshot that readers load without a lock and writers replace whole.

    ``load()`` is a plain attribute read.  ``store(v)`` replaces the
    snapshot; ``update(fn)`` runs ``fn(current)`` under the writers' lock
    and stores what it returns, so concurrent updates are applied one after
    another and none is lost.  ``fn`` must build a new object and leave
    ``current`` untouched: readers may be using it.  Unlike :class:`Value`
    any type (and None) may be stored.

    Example, the lessons' read-mostly map::

        routes = atomic.CopyOnWrite[dict[str, str]]({})

        def add_route(path: str, backend: str) -> None:      # writers
            routes.update(lambda cur: {**cur, path: backend})

        def lookup(path: str) -> str | None:                  # readers: no lock
            return routes.load().get(path)
    """

    __slots__ = ("__weakref__", "_mu", "_v")

    def __init__(self, initial: T) -> None:
        self._mu = _thread.allocate_lock()  # the writers' lock
        self._v = initial  # written under _mu, read without it

    def __repr__(self) -> str:
        return f"<atomic.CopyOnWrite {self._v!r}>"

    def load(self) -> T:
        """The current snapshot.  Never blocks; treat it as immutable."""
        v = self._v
        if _racehooks.enabled:
            _racehooks.acquire(self)  # after reading: acquires at least the store that is read
        return v

    def store(self, value: T) -> None:
        """Replace the snapshot."""
        with self._mu:
            if _racehooks.enabled:
                _racehooks.release(self)
            self._v = value

    def update(self, fn: Callable[[T], T]) -> T:
        """Store ``fn(current)`` under the writers' lock and return it.

        If ``fn`` raises, nothing is stored and the exception propagates.
        ``fn`` runs with the writers' lock held: keep it short, and do not
        call this object's ``store``/``update`` from it (that deadlocks).
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        with self._mu:
            if _racehooks.enabled:
                _racehooks.acquire(self)
            new = fn(self._v)
            if _racehooks.enabled:
                _racehooks.release(self)
            self._v = new
        return new


def _check_int(v: object, name: str) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")


def _check_bool(v: object, name: str) -> None:
    if type(v) is not bool:
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
