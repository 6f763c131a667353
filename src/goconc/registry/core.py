"""The Registrar and Discovery protocols, and the Watcher of a service's instances.

A :class:`ServiceInstance` describes one running copy of a service: an ``id`` unique among
the copies, the service ``name`` clients look up, a ``version``, free-form string
``metadata`` and the ``endpoints`` it serves (URLs such as ``http://127.0.0.1:8000``).
The shape and its JSON form are go-kratos's, so a goconc service and a kratos service can
share an etcd namespace.

A registry implements both protocols:

* :class:`Registrar`: ``register(instance)`` / ``deregister(instance)`` and their async twins
  ``aregister`` / ``aderegister``. An instance without a name, an id or endpoints is rejected
  with ``ValueError`` at the call, never later in a background goroutine.
* :class:`Discovery`: ``get_service(name)`` returns the live instances now;
  ``watch(name)`` returns a :class:`Watcher` whose ``next()`` returns the complete list of
  instances each time it changes (the first call returns the current list at once).

Every call that may block takes ``timeout=`` (seconds, ``TimeoutError``) and ``ctx=`` (a
goconc Context, ``ctx.err()``).

Thread use::

    registry.register(instance, timeout=10)
    with registry.watch("greeter") as watcher:
        for instances in watcher:          # each change, as a full snapshot
            balancer.update(instances)

asyncio use::

    await registry.aregister(instance, timeout=10)
    async with registry.watch("greeter") as watcher:
        async for instances in watcher:
            balancer.update(instances)
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from ..chan import Chan
from ._util import deadline_of, remaining, snapshot
from .instance import ServiceInstance

if TYPE_CHECKING:
    from ..context import Context

__all__ = [
    "Discovery",
    "Registrar",
    "Registry",
    "RegistryClosed",
    "ServiceInstance",
    "WatchStopped",
    "Watcher",
]

T = TypeVar("T")


class RegistryClosed(RuntimeError):
    """The registry was closed: it accepts no more calls."""


class WatchStopped(RuntimeError):
    """The watcher was stopped (by ``stop()`` or by closing its registry)."""


class Watcher:
    """The instances of one service, each time they change, as complete snapshots.

    ``next()`` returns the current instances at once on its first call, then blocks until
    they differ from what it last returned. Changes that happen between two calls are
    coalesced into the latest snapshot (each snapshot is complete, so nothing is lost but
    intermediate states). ``stop()`` ends the watch: a blocked or later ``next()`` raises
    :class:`WatchStopped`, and iteration (``for`` / ``async for``) ends. Closing the registry
    stops its watchers. A watcher may be shared by threads and tasks.

    Thread use::

        with registry.watch("greeter") as w:
            instances = w.next(timeout=5)

    asyncio use::

        w = registry.watch("greeter")
        instances = await w.anext(timeout=5)
        w.stop()
    """

    def __init__(
        self,
        name: str,
        initial: Iterable[ServiceInstance],
        on_stop: Callable[[Watcher], None] | None = None,
    ) -> None:
        self.name = name
        self._mu = threading.Lock()
        self._current = snapshot(initial)  # guarded by _mu; the latest snapshot published
        # guarded by _mu; the snapshot next() returned last (None before the first call)
        self._last: tuple[ServiceInstance, ...] | None = None
        self._stopped = False  # guarded by _mu; once True, nothing is published any more
        # Holds one token while _current may differ from _last; closed by stop(). Sends
        # happen under _mu, so none can race the close.
        self._notify: Chan[None] = Chan(1)
        self._notify.try_send(None)
        self._on_stop = on_stop  # guarded by _mu; called once, by stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "watching"
        return f"<Watcher {self.name!r} {state}>"

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _publish(self, instances: Iterable[ServiceInstance]) -> None:
        """Make ``instances`` the current snapshot (called by the registry that feeds it)."""
        new = snapshot(instances)
        with self._mu:
            if self._stopped or new == self._current:
                return
            self._current = new
            self._notify.try_send(None)

    def next(
        self, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The instances, at once the first time, then as soon as they change.

        Raises ``TimeoutError``, ``ctx.err()``, or :class:`WatchStopped`.
        """
        deadline = deadline_of(timeout, None)
        while True:
            _, ok = self._notify.recv_ok(timeout=remaining(deadline), ctx=ctx)
            result = self._take(ok)
            if result is not None:
                return result

    async def anext(
        self, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The async twin of :meth:`next`."""
        deadline = deadline_of(timeout, None)
        while True:
            _, ok = await self._notify.arecv_ok(timeout=remaining(deadline), ctx=ctx)
            result = self._take(ok)
            if result is not None:
                return result

    def _take(self, ok: bool) -> list[ServiceInstance] | None:
        with self._mu:
            if not ok or self._stopped:
                raise WatchStopped(f"the watch of {self.name!r} was stopped")
            if self._current == self._last:
                return None  # changed, then changed back before this call
            self._last = self._current
            return list(self._current)

    def stop(self) -> None:
        """End the watch and release what feeds it. Idempotent."""
        with self._mu:
            if self._stopped:
                return
            self._stopped = True
            self._notify.close()
            on_stop, self._on_stop = self._on_stop, None
        if on_stop is not None:
            on_stop(self)

    def _set_on_stop(self, fn: Callable[[Watcher], None]) -> None:
        """Call ``fn(self)`` when stopped (at once if already stopped)."""
        with self._mu:
            if not self._stopped:
                self._on_stop = fn
                return
        fn(self)

    def __iter__(self) -> Iterator[list[ServiceInstance]]:
        while True:
            try:
                yield self.next()
            except WatchStopped:
                return

    def __aiter__(self) -> AsyncIterator[list[ServiceInstance]]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[list[ServiceInstance]]:
        while True:
            try:
                yield await self.anext()
            except WatchStopped:
                return

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@runtime_checkable
class Registrar(Protocol):
    """Registers the instances of this process so that others can find them."""

    def register(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Make ``instance`` discoverable; registering the same id again replaces it."""
        ...

    def deregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Remove ``instance`` (by name and id); removing an absent instance is not an error."""
        ...

    async def aregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None: ...

    async def aderegister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None: ...


@runtime_checkable
class Discovery(Protocol):
    """Finds the live instances of a service, now or as they change."""

    def get_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The live instances of ``name``, sorted by id (empty if none)."""
        ...

    async def aget_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]: ...

    def watch(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> Watcher:
        """A :class:`Watcher` of ``name``'s instances (``timeout``/``ctx`` bound its setup)."""
        ...


@runtime_checkable
class Registry(Registrar, Discovery, Protocol):
    """Both protocols, plus ``close()`` (also by ``with``)."""

    def close(self) -> None: ...

    def __enter__(self: T) -> T: ...

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
