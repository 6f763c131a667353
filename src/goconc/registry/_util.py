"""Checks and helpers shared by the registries."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._park import check_timeout
from .instance import ServiceInstance

if TYPE_CHECKING:
    from ..context import Context

__all__ = [
    "check_instance",
    "check_service_name",
    "deadline_of",
    "remaining",
    "sleep",
    "snapshot",
]


def check_service_name(name: object, what: str = "name") -> str:
    """Validate a service name (or id): a non-empty str without '/', NUL or a leading '.'."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError(f"{what} must not be empty")
    if "/" in name or "\0" in name or name.startswith("."):
        raise ValueError(f"{what} must not contain '/' or NUL nor start with '.', got {name!r}")
    return name


def check_instance(instance: object, *, registering: bool = True) -> ServiceInstance:
    """Validate an instance for registration (or, with ``registering=False``, for removal:
    only its name and id matter then); raises ``TypeError``/``ValueError``."""
    if not isinstance(instance, ServiceInstance):
        raise TypeError(f"instance must be a ServiceInstance, got {type(instance).__name__}")
    check_service_name(instance.name, "instance.name")
    check_service_name(instance.id, "instance.id")
    if not registering:
        return instance
    if not instance.endpoints:
        raise ValueError(f"instance.endpoints must not be empty (service {instance.name!r})")
    for i, endpoint in enumerate(instance.endpoints):
        parts = urlsplit(endpoint)
        if not parts.scheme or not parts.netloc:
            raise ValueError(
                f"instance.endpoints[{i}] must be a URL such as 'http://127.0.0.1:8000', "
                f"got {endpoint!r}"
            )
    return instance


def snapshot(instances: Iterable[ServiceInstance]) -> tuple[ServiceInstance, ...]:
    """The canonical form of a service's instances: sorted by id."""
    return tuple(sorted(instances, key=lambda i: i.id))


def deadline_of(timeout: float | None, ctx: Context | None) -> float | None:
    """The ``time.monotonic()`` time by which a call must end, from ``timeout`` and ``ctx``.

    Raises ``ValueError`` for a negative timeout and ``ctx.err()`` if ``ctx`` has ended.
    """
    check_timeout(timeout)
    if ctx is not None and (err := ctx.err()) is not None:
        raise err
    deadline = None if timeout is None else time.monotonic() + timeout
    ctx_deadline = ctx.deadline() if ctx is not None else None
    if ctx_deadline is not None and (deadline is None or ctx_deadline < deadline):
        deadline = ctx_deadline
    return deadline


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (0 when past), or None for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def sleep(ctx: Context, seconds: float) -> bool:
    """Wait ``seconds`` or until ``ctx`` ends; True if it ended."""
    try:
        ctx.done.recv_ok(timeout=seconds)
    except TimeoutError:
        return ctx.err() is not None
    return True
