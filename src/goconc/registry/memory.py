"""MemoryRegistry: a registry inside one process, for tests and single-process programs.

Nothing here blocks: registering publishes the new snapshot to the service's watchers before
it returns, so a watcher sees every registration in order (coalesced if it reads slowly).

Thread use::

    registry = MemoryRegistry()
    registry.register(ServiceInstance("a1", "greeter", endpoints=["http://127.0.0.1:8000"]))
    registry.get_service("greeter")          # [ServiceInstance(id='a1', ...)]

asyncio use::

    await registry.aregister(instance)
    async with registry.watch("greeter") as watcher:
        instances = await watcher.anext(timeout=5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import RegistryBase
from ._util import check_instance, check_service_name, deadline_of
from .core import Watcher
from .instance import ServiceInstance

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["MemoryRegistry"]


class MemoryRegistry(RegistryBase):
    """Service instances held in this process's memory, shared by its threads and tasks.

    ``close()`` stops the watchers and forgets every instance. After ``close()`` every call
    raises :class:`~goconc.registry.RegistryClosed`.
    """

    _kind = "MemoryRegistry"

    def __init__(self) -> None:
        super().__init__()
        # guarded by _mu: service name -> instance id -> instance
        self._services: dict[str, dict[str, ServiceInstance]] = {}
        # guarded by _mu: service name -> its live watchers (a subset of self._watchers)
        self._by_name: dict[str, set[Watcher]] = {}

    def register(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Add ``instance`` (replacing one with the same name and id).

        Raises ``ValueError``/``TypeError`` for an invalid instance.
        """
        check_instance(instance)
        deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
            self._services.setdefault(instance.name, {})[instance.id] = instance
            self._publish(instance.name)

    def deregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Remove the instance with ``instance``'s name and id, if present."""
        check_instance(instance, registering=False)
        deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
            instances = self._services.get(instance.name)
            if instances is None or instances.pop(instance.id, None) is None:
                return
            if not instances:
                del self._services[instance.name]
            self._publish(instance.name)

    def get_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The instances of ``name`` registered now, sorted by id."""
        check_service_name(name)
        deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
            return sorted(self._services.get(name, {}).values(), key=lambda i: i.id)

    def watch(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> Watcher:
        """A watcher of ``name``'s instances."""
        check_service_name(name)
        deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
            w = Watcher(name, self._services.get(name, {}).values(), self._forget_watcher)
            self._watchers.add(w)
            self._by_name.setdefault(name, set()).add(w)
            return w

    # Nothing here blocks, so the async twins call the plain forms directly.

    async def aregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """The async twin of :meth:`register`."""
        self.register(instance, timeout=timeout, ctx=ctx)

    async def aderegister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """The async twin of :meth:`deregister`."""
        self.deregister(instance, timeout=timeout, ctx=ctx)

    async def aget_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The async twin of :meth:`get_service`."""
        return self.get_service(name, timeout=timeout, ctx=ctx)

    def _publish(self, name: str) -> None:
        # Called with _mu held, so watchers get the snapshots in registration order.
        current = self._services.get(name, {}).values()
        for w in self._by_name.get(name, ()):
            w._publish(current)

    def _forget_watcher(self, w: Watcher) -> None:
        with self._mu:
            self._watchers.discard(w)
            watchers = self._by_name.get(w.name)
            if watchers is not None:
                watchers.discard(w)
                if not watchers:
                    del self._by_name[w.name]

    def _close(self) -> None:
        with self._mu:
            self._services.clear()
