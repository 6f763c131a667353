"""Service registries: register this process's instances, discover and watch others'.

Three registries implement :class:`Registrar` and :class:`Discovery` (together,
:class:`Registry`):

* :class:`MemoryRegistry`: inside one process (tests, single-process programs);
* :class:`FileRegistry`: the embedded default, a directory shared by the processes of this
  machine; instances of processes that died are dropped;
* :class:`EtcdRegistry`: an etcd v3 cluster, for several machines; instances live under a
  lease kept alive in the background, so a crashed process disappears after ``ttl`` seconds.

:func:`from_url` builds one from a URL (``memory:``, ``file:///path``, ``etcd://host:2379``).

Thread use::

    from goconc.registry import FileRegistry, ServiceInstance

    inst = ServiceInstance(id="a1", name="greeter", version="1.0",
                           endpoints=["http://127.0.0.1:8000"])
    with FileRegistry() as registry:
        registry.register(inst, timeout=5)
        print(registry.get_service("greeter"))
        with registry.watch("greeter") as watcher:
            instances = watcher.next(timeout=5)   # now; then each change
        registry.deregister(inst)

asyncio use::

    await registry.aregister(inst, timeout=5)
    async with registry.watch("greeter") as watcher:
        async for instances in watcher:
            ...
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from ._gateway import EtcdError, EtcdUnavailable
from .core import Discovery, Registrar, Registry, RegistryClosed, Watcher, WatchStopped
from .etcd import EtcdRegistry
from .file import FileRegistry, default_directory
from .instance import ServiceInstance
from .memory import MemoryRegistry

__all__ = [
    "Discovery",
    "EtcdError",
    "EtcdRegistry",
    "EtcdUnavailable",
    "FileRegistry",
    "MemoryRegistry",
    "Registrar",
    "Registry",
    "RegistryClosed",
    "ServiceInstance",
    "WatchStopped",
    "Watcher",
    "default_directory",
    "from_url",
]


def from_url(url: str) -> MemoryRegistry | FileRegistry | EtcdRegistry:
    """The registry a URL names.

    * ``memory:`` - a new :class:`MemoryRegistry`;
    * ``file:`` (the default directory) or ``file:///some/dir`` - a :class:`FileRegistry`;
    * ``etcd://host:2379[,host2:2379][/namespace][?ttl=15]`` - an :class:`EtcdRegistry` over
      HTTP; ``etcd+https://...`` over HTTPS.

    Raises ``ValueError`` for anything else::

        registry = from_url("etcd://127.0.0.1:2379?ttl=10")
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return MemoryRegistry()
    if scheme == "file":
        return FileRegistry(unquote(parts.path) or None)
    if scheme in ("etcd", "etcd+http", "etcd+https"):
        if not parts.netloc:
            raise ValueError(f"an etcd URL names its hosts: etcd://127.0.0.1:2379, got {url!r}")
        http = "https" if scheme == "etcd+https" else "http"
        endpoints = [f"{http}://{host}" for host in parts.netloc.split(",") if host]
        query = parse_qs(parts.query)
        ttl = 15.0
        if "ttl" in query:
            try:
                ttl = float(query["ttl"][-1])
            except ValueError:
                raise ValueError(f"ttl must be a number of seconds in {url!r}") from None
        namespace = parts.path if parts.path not in ("", "/") else "/microservices"
        return EtcdRegistry(endpoints, ttl=ttl, namespace=namespace)
    raise ValueError(f"unknown registry URL {url!r} (use memory:, file:///dir or etcd://host:port)")
