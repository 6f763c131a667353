"""What every registry shares: open/closed state, its watchers, and the async twins."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .. import context, runtime
from ._util import check_instance, check_service_name, deadline_of
from .core import RegistryClosed, Watcher
from .instance import ServiceInstance

if TYPE_CHECKING:
    from ..context import Context
    from ..runtime import Goroutine

__all__ = ["Feed", "RegistryBase", "run_blocking"]

T = TypeVar("T")

_log = logging.getLogger("goconc.registry")

# How long stopping waits for a background goroutine (each is bounded by its own requests).
_STOP_WAIT = 30.0


class Feed:
    """A background goroutine of a registry (a watcher's feed, a keep-alive) and its context.

    ``stop()`` cancels ``ctx`` and waits for the goroutine to return.
    """

    def __init__(self, name: str, fn: Callable[..., None], /, *args: Any) -> None:
        self.ctx, self._cancel = context.with_cancel(context.background())
        self.g: Goroutine[None] = runtime.go_named(name, fn, self.ctx, *args)

    def stop(self, _: object = None) -> None:
        self._cancel()
        if self.g is runtime.current():
            return
        try:
            self.g.join(timeout=_STOP_WAIT)
        except TimeoutError:
            _log.error("%s did not stop in %s s", self.g, _STOP_WAIT)
        except Exception:
            pass  # already reported as a goroutine panic


async def run_blocking(name: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run the blocking ``fn`` in a thread goroutine and await its result.

    ``fn``'s exception is re-raised here (and is not reported as a goroutine panic: it is
    the caller's to handle). If the awaiting task is cancelled, ``fn`` still runs to its
    end, which its own ``timeout``/``ctx`` bound.
    """

    def call() -> tuple[bool, Any]:
        try:
            return True, fn(*args, **kwargs)
        except Exception as e:
            return False, e

    ok, value = await runtime.go_named(name, call).ajoin()
    if not ok:
        raise value
    result: T = value
    return result


class RegistryBase(ABC):
    """Shared lifecycle: ``close()`` (idempotent) stops every watcher, then ``_close()``."""

    _kind = "registry"

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._closed = False  # guarded by _mu; once True, every public call raises
        self._watchers: set[Watcher] = set()  # guarded by _mu; watchers not yet stopped

    def __enter__(self: T) -> T:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every watcher and background goroutine, and withdraw this registry's instances."""
        with self._mu:
            if self._closed:
                return
            self._closed = True
            watchers = list(self._watchers)
        for w in watchers:
            w.stop()
        self._close()

    @abstractmethod
    def _close(self) -> None:
        """Release what the subclass holds (called once, by ``close``)."""

    def _check_open(self) -> None:
        """Raise :class:`RegistryClosed` once closed (call with ``_mu`` held)."""
        if self._closed:
            raise RegistryClosed(f"the {self._kind} is closed")

    def _add_watcher(self, w: Watcher) -> None:
        with self._mu:
            self._check_open()
            self._watchers.add(w)

    def _forget_watcher(self, w: Watcher) -> None:
        with self._mu:
            self._watchers.discard(w)

    @abstractmethod
    def register(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None: ...

    @abstractmethod
    def deregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None: ...

    @abstractmethod
    def get_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]: ...

    @abstractmethod
    def watch(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> Watcher: ...

    # The async twins run the blocking forms in a goroutine; the arguments are checked here,
    # in the caller's task, so that bad input fails at the call site.

    async def aregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """The async twin of ``register``."""
        check_instance(instance)
        deadline_of(timeout, ctx)
        await run_blocking(
            f"{self._kind} register", self.register, instance, timeout=timeout, ctx=ctx
        )

    async def aderegister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """The async twin of ``deregister``."""
        check_instance(instance, registering=False)
        deadline_of(timeout, ctx)
        await run_blocking(
            f"{self._kind} deregister", self.deregister, instance, timeout=timeout, ctx=ctx
        )

    async def aget_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The async twin of ``get_service``."""
        check_service_name(name)
        deadline_of(timeout, ctx)
        return await run_blocking(
            f"{self._kind} get_service", self.get_service, name, timeout=timeout, ctx=ctx
        )
