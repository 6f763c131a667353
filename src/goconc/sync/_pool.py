"""sync.Pool: a cache of reusable objects that the garbage collector empties.

Go's design, in Python terms:

* Each thread has a private slot of one object, reached through a
  ``threading.local`` without any lock: a ``get`` after a ``put`` on the same
  thread (the common pattern: take a buffer, use it, give it back) touches
  no lock.  Every other object goes to a shared list under the pool's lock.
* A victim cache: at each full garbage collection (the oldest generation;
  every collection on free-threaded builds, whose collector is not
  generational) the previous victims are dropped and everything pooled
  becomes a victim.  ``get`` takes victims when nothing else is left.  So an
  object put in the pool survives one full collection and is gone after the
  second, unless taken: steady use keeps a working set, and an idle pool
  does not pin memory.
* The rotation runs from ``gc.callbacks`` when the collection starts.  It
  never blocks there: a pool whose lock is held at that moment (possibly by
  the very thread collecting) is rotated at its next use instead.

Private slots are plain lists of at most one item, and an item leaves a
list only by ``list.pop()``, which is atomic (also on free-threaded
CPython): the rotation and the owning thread can never both take the same
object.  An object put into a slot at the instant it is rotated may be
dropped, which a pool is always allowed to do; so is the object in the
private slot of a thread that ends (goconc reuses its goroutine threads, so
this is rare).

Happens-before (goconc.race): ``put(x)`` releases ``x``; the ``get`` that
returns it acquires it.
"""

from __future__ import annotations

import _thread
import gc
import sysconfig
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from .. import _racehooks
from ._stats import PoolStatistics

__all__ = ["Pool", "pool_totals"]

T = TypeVar("T")

# The oldest generation; on free-threaded builds every collection is full.
_FULL_GENERATION: Final = 2
_EVERY_COLLECTION_IS_FULL: Final = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


class Pool(Generic[T]):
    """A set of temporary objects to reuse, to spare allocations: Go's ``sync.Pool``.

    ``get()`` returns some pooled object, or ``new()`` when the pool is
    empty (None without ``new``); ``put(x)`` offers ``x`` for reuse.  No
    order is promised, and any pooled object may be dropped at any time
    (see the module notes: they survive one full garbage collection).
    ``put(None)`` does nothing, as Go's ``Put(nil)``.  Never blocks; safe
    from any thread or task.  Put only objects that are no longer used and
    that may be handed to any other user as they are (reset them first).

    Example::

        buffers: sync.Pool[bytearray] = sync.Pool(new=lambda: bytearray(64 * 1024))

        def handle(conn) -> None:
            buf = buffers.get()
            try:
                n = conn.recv_into(buf)
                ...
            finally:
                buffers.put(buf)
    """

    __slots__ = (
        "__weakref__",
        "_epoch",
        "_members",
        "_misses",
        "_mu",
        "_retired",
        "_shared",
        "_tls",
        "_victim",
        "new",
    )

    def __init__(self, new: Callable[[], T] | None = None) -> None:
        if new is not None and not callable(new):
            raise TypeError(f"new must be callable or None, got {type(new).__name__}")
        #: Called by ``get`` when the pool is empty; may be replaced at any time.
        self.new = new
        self._tls = threading.local()  # .loc: this thread's _Local
        self._mu = _thread.allocate_lock()
        # Guarded by self._mu:
        # - _shared: pooled objects beyond the private slots; _victim: the previous
        #   generation, dropped at the next rotation.
        # - _epoch: the full collections counted when this pool was last rotated.
        # - _members: every thread's _Local (weakly) with its counters (strongly), so
        #   the rotation reaches the private slots and no count is lost.
        # - _retired: the counters of threads that ended; _misses: gets that found nothing.
        self._shared: list[T] = []
        self._victim: list[T] = []
        self._epoch = _gc_epoch[0]
        self._members: list[tuple[weakref.ref[_Local[T]], list[int]]] = []
        self._retired = [0, 0, 0]
        self._misses = 0
        with _registry_mu:
            _registry.append(weakref.ref(self))

    def __repr__(self) -> str:
        return f"<sync.Pool shared={len(self._shared)} victims={len(self._victim)}>"

    def get(self) -> T | None:
        """Take a pooled object, or return ``new()`` (None without ``new``) if there is none."""
        try:
            loc: _Local[T] = self._tls.loc
        except AttributeError:
            loc = self._join()
        loc.counts[0] += 1
        slot = loc.slot
        if slot:
            try:
                mine = slot.pop()
            except IndexError:  # emptied by a rotation just now
                pass
            else:
                if _racehooks.enabled:
                    _racehooks.acquire(mine)
                return mine
        x: T | None
        with self._mu:
            if self._epoch != _gc_epoch[0]:
                self._rotate()
            if self._shared:
                x = self._shared.pop()
            elif self._victim:
                x = self._victim.pop()
            else:
                self._misses += 1
                x = None
        if x is not None:
            if _racehooks.enabled:
                _racehooks.acquire(x)
            return x
        new = self.new
        if new is None:
            return None
        loc.counts[2] += 1
        return new()

    def put(self, x: T | None) -> None:
        """Offer ``x`` for reuse by a later ``get``; ``put(None)`` does nothing."""
        if x is None:
            return
        if _racehooks.enabled:
            _racehooks.release(x)
        try:
            loc: _Local[T] = self._tls.loc
        except AttributeError:
            loc = self._join()
        loc.counts[1] += 1
        slot = loc.slot
        if not slot:
            slot.append(x)
            return
        with self._mu:
            if self._epoch != _gc_epoch[0]:
                self._rotate()
            self._shared.append(x)

    def statistics(self) -> PoolStatistics:
        """Gets, misses (gets that found the pool empty), puts, calls of ``new``, objects held."""
        with self._mu:
            self._prune()
            gets, puts, news = self._retired
            pooled = len(self._shared) + len(self._victim)
            for ref, counts in self._members:
                gets += counts[0]
                puts += counts[1]
                news += counts[2]
                loc = ref()
                if loc is not None:
                    pooled += len(loc.slot)
            return PoolStatistics(
                gets=gets, misses=self._misses, puts=puts, news=news, pooled=pooled
            )

    # -- internals -----------------------------------------------------------------------

    def _join(self) -> _Local[T]:
        """First use of this pool by the current thread: create its private slot."""
        loc: _Local[T] = _Local()
        self._tls.loc = loc
        with self._mu:
            self._members.append((weakref.ref(loc), loc.counts))
        return loc

    def _prune(self) -> None:
        """Under _mu: fold the counters of threads that ended into _retired."""
        if all(ref() is not None for ref, _ in self._members):
            return
        live = []
        for ref, counts in self._members:
            if ref() is None:
                for i in range(3):
                    self._retired[i] += counts[i]
            else:
                live.append((ref, counts))
        self._members = live

    def _rotate(self) -> None:
        """Under _mu: catch up with the full collections since the last rotation."""
        epoch = _gc_epoch[0]
        collections = epoch - self._epoch
        self._epoch = epoch
        if collections <= 0:
            return
        primary = self._shared
        for ref, _ in self._members:
            loc = ref()
            if loc is None:
                continue
            old, loc.slot = loc.slot, []
            while True:
                try:
                    primary.append(old.pop())
                except IndexError:
                    break
        self._shared = []
        self._victim = primary if collections == 1 else []

    def _rotate_now(self) -> None:
        """From the collector: rotate unless the pool is in use (then its next use does)."""
        if self._mu.acquire(False):
            try:
                self._rotate()
            finally:
                self._mu.release()


class _Local(Generic[T]):
    """One thread's part of one pool."""

    __slots__ = ("__weakref__", "counts", "slot")

    def __init__(self) -> None:
        self.slot: list[T] = []  # at most one object; written by its thread, replaced by _rotate
        self.counts = [0, 0, 0]  # gets, puts, news; written only by its thread


# Full collections seen so far (written only by the collector's callback).
_gc_epoch = [0]
_registry_mu = _thread.allocate_lock()
_registry: list[weakref.ref[Pool[Any]]] = []  # guarded by _registry_mu: every pool made


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase != "start":
        return
    if info.get("generation") != _FULL_GENERATION and not _EVERY_COLLECTION_IS_FULL:
        return
    _gc_epoch[0] += 1
    if not _registry_mu.acquire(False):
        return  # registering a pool right now: each pool rotates at its next use
    try:
        live = []
        for ref in _registry:
            pool = ref()
            if pool is not None:
                live.append(ref)
                pool._rotate_now()
        _registry[:] = live
    finally:
        _registry_mu.release()


gc.callbacks.append(_on_gc)


def pool_totals() -> tuple[int, PoolStatistics]:
    """The number of live pools and their statistics summed."""
    with _registry_mu:
        pools = [p for p in (ref() for ref in _registry) if p is not None]
        _registry[:] = [weakref.ref(p) for p in pools]
    gets = misses = puts = news = pooled = 0
    for p in pools:
        s = p.statistics()
        gets += s.gets
        misses += s.misses
        puts += s.puts
        news += s.news
        pooled += s.pooled
    return len(pools), PoolStatistics(gets, misses, puts, news, pooled)
