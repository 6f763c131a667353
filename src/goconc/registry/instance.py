"""ServiceInstance: one running copy of a service, as registries store and return it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["ServiceInstance"]


@dataclass(frozen=True)
class ServiceInstance:
    """One running copy of a service, as registries store and return it.

    ``endpoints`` may be given as any iterable of strings (kept as a tuple) and ``metadata``
    as any string-to-string mapping (kept read-only). Two instances are equal when all five
    fields are equal, endpoints in any order.

    Raises ``TypeError`` for a field of the wrong type. Registering an instance checks the
    rest (a name, an id, at least one endpoint URL) and raises ``ValueError`` there::

        inst = ServiceInstance(id="a1", name="greeter", version="1.2.0",
                               endpoints=["http://127.0.0.1:8000"])
    """

    id: str
    name: str
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    endpoints: Sequence[str] = ()

    def __post_init__(self) -> None:
        for attr in ("id", "name", "version"):
            value = getattr(self, attr)
            if not isinstance(value, str):
                raise TypeError(f"ServiceInstance.{attr} must be a str, got {type(value).__name__}")
        endpoints = self.endpoints
        if isinstance(endpoints, str | bytes) or not isinstance(endpoints, Iterable):
            raise TypeError(
                f"ServiceInstance.endpoints must be a list of URL strings, got {endpoints!r}"
            )
        endpoints = tuple(endpoints)
        for i, endpoint in enumerate(endpoints):
            if not isinstance(endpoint, str):
                raise TypeError(
                    f"ServiceInstance.endpoints[{i}] must be a str, got {type(endpoint).__name__}"
                )
        if not isinstance(self.metadata, Mapping):
            raise TypeError(
                f"ServiceInstance.metadata must be a mapping, got {type(self.metadata).__name__}"
            )
        metadata = dict(self.metadata)
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"ServiceInstance.metadata must map str to str, got {key!r}: {value!r}"
                )
        object.__setattr__(self, "endpoints", endpoints)
        object.__setattr__(self, "metadata", MappingProxyType(metadata))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServiceInstance):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"ServiceInstance(id={self.id!r}, name={self.name!r}, version={self.version!r}, "
            f"metadata={dict(self.metadata)!r}, endpoints={list(self.endpoints)!r})"
        )

    def _key(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.name,
            self.version,
            tuple(sorted(self.metadata.items())),
            tuple(sorted(self.endpoints)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object registries store (go-kratos's field names)."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "metadata": dict(self.metadata),
            "endpoints": list(self.endpoints),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceInstance:
        """The instance stored as ``data``; raises ``TypeError``/``ValueError`` if malformed."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a service instance must be a JSON object, got {data!r}")
        return cls(
            id=data.get("id", ""),
            name=data.get("name", ""),
            version=data.get("version") or "",
            metadata=data.get("metadata") or {},
            endpoints=data.get("endpoints") or (),
        )
