"""EtcdRegistry: service instances in etcd v3, kept alive by a lease, watched by etcd's watch.

Each instance is the key ``<namespace>/<name>/<id>`` (namespace ``/microservices`` by default,
as go-kratos) holding the instance's JSON, put under a lease of ``ttl`` seconds. One lease
serves every instance this registry registers; a keep-alive goroutine renews it every
``ttl / 3`` seconds. So:

* a process that crashes (or hangs) disappears from the registry ``ttl`` seconds later, as
  etcd expires its lease;
* if the lease expired anyway (the process was paused longer than ``ttl``, or etcd was
  unreachable), the keep-alive grants a new one and registers the instances again;
* the keep-alive stops when the last instance is deregistered (the lease is revoked) and on
  ``close()``, which revokes the lease: every instance registered here vanishes at once.

Watchers read the current instances (``/v3/kv/range``) and then follow etcd's watch stream
(``/v3/watch``) from the next revision, so no change between the two is missed. If the
stream breaks (etcd restarted, history compacted) the watcher reads the instances again and
resumes; every snapshot it returns is complete.

Only the standard library is used: etcd's JSON gateway over HTTP (``http://`` or
``https://`` endpoints; several endpoints of one cluster may be given, the first that answers
is used).

Thread use::

    with EtcdRegistry("http://127.0.0.1:2379", ttl=10) as registry:
        registry.register(instance, timeout=5)
        registry.get_service("greeter")

asyncio use::

    await registry.aregister(instance, timeout=5)
    async with registry.watch("greeter") as watcher:
        async for instances in watcher:
            ...
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import context
from ._base import Feed, RegistryBase
from ._gateway import EtcdError, EtcdUnavailable, Gateway, b64, unb64
from ._util import check_instance, check_service_name, deadline_of, sleep
from .core import Watcher
from .instance import ServiceInstance

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["EtcdError", "EtcdRegistry", "EtcdUnavailable"]

_log = logging.getLogger("goconc.registry")

# etcd's own minimum lease TTL with its default timing (shorter requests are raised to it).
_MIN_TTL = 2
# Bounds of the pause before a broken watch stream is opened again.
_RETRY_FIRST = 0.1
_RETRY_MAX = 5.0
# gRPC status NOT_FOUND, which etcd gives for an unknown lease.
_NOT_FOUND = 5


class EtcdRegistry(RegistryBase):
    """A registry on an etcd v3 cluster.

    ``endpoints``: one URL or a list (``http://127.0.0.1:2379`` by default). ``ttl``: the
    lease time to live in seconds (whole seconds, at least 2): how long a crashed process
    stays visible. ``namespace``: the key prefix. ``request_timeout``: the bound of one
    request when the caller gives no shorter ``timeout``/``ctx``.

    Raises ``ValueError``/``TypeError`` for bad arguments; the server is first contacted by
    the first call.
    """

    _kind = "EtcdRegistry"

    def __init__(
        self,
        endpoints: str | Sequence[str] = "http://127.0.0.1:2379",
        *,
        ttl: float = 15,
        namespace: str = "/microservices",
        request_timeout: float = 5.0,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not isinstance(ttl, int | float) or not ttl >= _MIN_TTL or math.isinf(ttl):
            raise ValueError(f"ttl must be a number of seconds >= {_MIN_TTL}, got {ttl!r}")
        if not isinstance(namespace, str) or not namespace.startswith("/"):
            raise ValueError(f"namespace must start with '/', got {namespace!r}")
        if not isinstance(request_timeout, int | float) or not request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0 seconds, got {request_timeout!r}")
        super().__init__()
        self._gw = Gateway(list(endpoints), float(request_timeout))
        self.ttl = math.ceil(ttl)
        self.namespace = namespace.rstrip("/")
        self._lease: int | None = None  # guarded by _mu; the lease of every instance put here
        # guarded by _mu: key -> JSON value of each instance registered through this object
        self._registered: dict[str, str] = {}
        # guarded by _mu: the keep-alive goroutine, started with the first lease, stopped
        # when the lease is released
        self._keeper: Feed | None = None

    def __repr__(self) -> str:
        urls = ",".join(e.url for e in self._gw.endpoints)
        return f"<EtcdRegistry {urls} ttl={self.ttl} namespace={self.namespace!r}>"

    # -- Registrar ------------------------------------------------------------------------

    def register(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Put ``instance`` under this registry's lease (granted, and kept alive, on first use).

        Raises ``ValueError``/``TypeError`` for an invalid instance, ``EtcdError``,
        ``EtcdUnavailable``, ``TimeoutError`` or ``ctx.err()``; then nothing was registered.
        """
        check_instance(instance)
        deadline = deadline_of(timeout, ctx)
        key = self._key(instance.name, instance.id)
        value = json.dumps(instance.to_dict(), sort_keys=True)
        with self._mu:
            self._check_open()
            previous = self._registered.get(key)
            self._registered[key] = value
        try:
            lease = self._ensure_lease(deadline, ctx)
            try:
                self._put(key, value, lease, deadline, ctx)
            except EtcdError as e:
                if e.code != _NOT_FOUND:
                    raise
                # The lease expired just now: replace it, with every instance registered here
                # (this one included), unless the keep-alive is doing so.
                current = self._replace_lease(lease, deadline, ctx)
                assert current is not None
                self._put(key, value, current, deadline, ctx)
        except BaseException:
            with self._mu:
                if self._registered.get(key) == value:
                    if previous is None:
                        del self._registered[key]
                    else:
                        self._registered[key] = previous
            self._release_if_unused(deadline)
            raise

    def deregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Delete ``instance``'s key (whoever registered it); revoke the lease if it was the last.

        Raises ``EtcdError``, ``EtcdUnavailable``, ``TimeoutError`` or ``ctx.err()``; then the
        instance is still registered.
        """
        check_instance(instance, registering=False)
        deadline = deadline_of(timeout, ctx)
        key = self._key(instance.name, instance.id)
        with self._mu:
            self._check_open()
            value = self._registered.pop(key, None)
        try:
            self._gw.call("kv/deleterange", {"key": b64(key)}, deadline=deadline, ctx=ctx)
        except BaseException:
            if value is not None:
                with self._mu:
                    self._registered.setdefault(key, value)
            raise
        self._release_if_unused(deadline)

    # -- Discovery ------------------------------------------------------------------------

    def get_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The instances of ``name`` in etcd now, sorted by id."""
        check_service_name(name)
        deadline = deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
        instances, _ = self._range(name, deadline, ctx)
        return sorted(instances.values(), key=lambda i: i.id)

    def watch(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> Watcher:
        """A watcher of ``name``'s instances, fed by etcd's watch stream.

        ``timeout``/``ctx`` bound the first read; the watch then lasts until ``stop()``.
        """
        check_service_name(name)
        deadline = deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
        instances, revision = self._range(name, deadline, ctx)
        w = Watcher(name, instances.values())
        self._add_watcher(w)
        feed = Feed(f"EtcdRegistry watch {name}", self._follow, w, instances, revision)
        w._set_on_stop(feed.stop)
        return w

    # -- keys and values ------------------------------------------------------------------

    def _key(self, name: str, instance_id: str) -> str:
        return f"{self.namespace}/{name}/{instance_id}"

    def _prefix(self, name: str) -> str:
        return f"{self.namespace}/{name}/"

    def _range(
        self, name: str, deadline: float | None, ctx: Context | None
    ) -> tuple[dict[bytes, ServiceInstance], int]:
        prefix = self._prefix(name).encode()
        answer = self._gw.call(
            "kv/range",
            {"key": b64(prefix), "range_end": b64(_prefix_end(prefix))},
            deadline=deadline,
            ctx=ctx,
        )
        instances: dict[bytes, ServiceInstance] = {}
        for kv in answer.get("kvs", ()):
            key = unb64(kv["key"])
            instance = _decode(key, kv.get("value", ""))
            if instance is not None:
                instances[key] = instance
        return instances, int(answer["header"]["revision"])

    def _put(
        self, key: str, value: str, lease: int, deadline: float | None, ctx: Context | None
    ) -> None:
        body = {"key": b64(key), "value": b64(value), "lease": str(lease)}
        self._gw.call("kv/put", body, deadline=deadline, ctx=ctx)

    # -- the lease ------------------------------------------------------------------------

    def _ensure_lease(self, deadline: float | None, ctx: Context | None) -> int:
        """This registry's lease, granted (and its keep-alive started) if there is none."""
        with self._mu:
            if self._lease is not None:
                return self._lease
        answer = self._gw.call("lease/grant", {"TTL": self.ttl}, deadline=deadline, ctx=ctx)
        lease = int(answer["ID"])
        with self._mu:
            installed = not self._closed and self._lease is None
            if installed:
                self._lease = lease
                if self._keeper is None:
                    self._keeper = Feed("EtcdRegistry keep-alive", self._keep_alive)
            current = self._lease
        if not installed:
            self._revoke(lease, None)  # closed meanwhile, or another call granted one
        with self._mu:
            self._check_open()
        assert current is not None
        return current

    def _lost(self, lease: int) -> None:
        """Forget ``lease`` (etcd no longer knows it) unless it was already replaced."""
        with self._mu:
            if self._lease == lease:
                self._lease = None

    def _keep_alive(self, ctx: Context) -> None:
        """Renew the lease every ttl/3 seconds; replace it (and re-put the instances) if lost.

        After a failed attempt the next one follows sooner, to renew before the lease expires.
        """
        interval = self.ttl / 3
        pause = interval
        while not sleep(ctx, pause):
            with self._mu:
                lease = self._lease
            try:
                if lease is None or not self._renew(lease, interval, ctx):
                    deadline = time.monotonic() + self._gw.request_timeout
                    self._replace_lease(lease, deadline, ctx, keeper=ctx)
                pause = interval
            except (OSError, EtcdError, ValueError, KeyError) as e:
                if ctx.err() is not None:
                    return
                _log.warning("EtcdRegistry: keep-alive failed, retrying: %s", e)
                pause = min(interval, _RETRY_FIRST * 2)
            except (context.Canceled, context.DeadlineExceeded):
                return

    def _renew(self, lease: int, interval: float, ctx: Context) -> bool:
        """Renew ``lease`` once; False if etcd no longer knows it."""
        deadline = time.monotonic() + max(interval, 1.0)
        answer = self._gw.call("lease/keepalive", {"ID": str(lease)}, deadline=deadline, ctx=ctx)
        return int(answer.get("result", {}).get("TTL", 0)) > 0

    def _replace_lease(
        self,
        lost: int | None,
        deadline: float | None,
        ctx: Context | None,
        keeper: Context | None = None,
    ) -> int | None:
        """Grant a lease in place of ``lost`` and put every instance registered here under it.

        Returns the lease in use afterwards (None if the keep-alive whose context is
        ``keeper`` was stopped meanwhile). If another call replaced ``lost`` first, that
        lease is kept and the one granted here revoked.
        """
        answer = self._gw.call("lease/grant", {"TTL": self.ttl}, deadline=deadline, ctx=ctx)
        lease = int(answer["ID"])
        with self._mu:
            replace = not self._closed and self._lease in (lost, None)
            if keeper is not None:  # from the keep-alive: only while it is the current one
                replace = replace and self._keeper is not None and self._keeper.ctx is keeper
            if replace:
                self._lease = lease
                if self._keeper is None:
                    self._keeper = Feed("EtcdRegistry keep-alive", self._keep_alive)
                items = dict(self._registered)
            current = self._lease
        if not replace:
            self._revoke(lease, None)
            if keeper is None:
                with self._mu:
                    self._check_open()
            return current
        _log.warning("EtcdRegistry: lease %x was lost; registering %d instance(s) again",
                     lost or 0, len(items))  # fmt: skip
        try:
            for key, value in items.items():
                self._put(key, value, lease, deadline, ctx)
                with self._mu:
                    gone = self._registered.get(key) != value
                if gone:  # deregistered (or replaced) meanwhile: do not resurrect it
                    self._gw.call("kv/deleterange", {"key": b64(key)}, deadline=deadline, ctx=ctx)
        except BaseException:
            # Some instances may be missing: the next round starts over with a new lease.
            self._lost(lease)
            raise
        return lease

    def _revoke(self, lease: int, ctx: Context | None) -> None:
        try:
            deadline = time.monotonic() + self._gw.request_timeout
            self._gw.call("lease/revoke", {"ID": str(lease)}, deadline=deadline, ctx=ctx)
        except EtcdError as e:
            if e.code != _NOT_FOUND:
                _log.warning("EtcdRegistry: cannot revoke lease %x: %s", lease, e)
        except (OSError, context.Canceled, context.DeadlineExceeded) as e:
            _log.warning("EtcdRegistry: cannot revoke lease %x: %s", lease, e)

    def _release_if_unused(self, deadline: float | None) -> None:
        """With nothing registered here any more, stop the keep-alive and revoke the lease."""
        with self._mu:
            if self._registered or self._lease is None:
                return
            lease, self._lease = self._lease, None
            keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()
        self._revoke(lease, None)

    def _close(self) -> None:
        with self._mu:
            lease, self._lease = self._lease, None
            keeper, self._keeper = self._keeper, None
            self._registered.clear()
        if keeper is not None:
            keeper.stop()
        if lease is not None:
            self._revoke(lease, None)

    # -- watching -------------------------------------------------------------------------

    def _follow(
        self,
        ctx: Context,
        w: Watcher,
        instances: dict[bytes, ServiceInstance],
        revision: int | None,
    ) -> None:
        """Feed ``w`` from etcd's watch stream, starting after ``revision``, until ``ctx`` ends.

        ``revision`` None means: read the instances again first (after any failure).
        """
        prefix = self._prefix(w.name).encode()
        pause = _RETRY_FIRST
        while ctx.err() is None:
            try:
                if revision is None:
                    instances, revision = self._range(w.name, None, ctx)
                    w._publish(instances.values())
                revision = self._stream(ctx, w, prefix, instances, revision)
                pause = _RETRY_FIRST
            except (OSError, EtcdError, ValueError, KeyError) as e:
                if ctx.err() is not None:
                    break
                _log.warning("EtcdRegistry: watch of %r broke (%s); resuming", w.name, e)
                revision = None
                if sleep(ctx, pause):
                    break
                pause = min(pause * 2, _RETRY_MAX)
            except (context.Canceled, context.DeadlineExceeded):
                break
        self._forget_watcher(w)

    def _stream(
        self,
        ctx: Context,
        w: Watcher,
        prefix: bytes,
        instances: dict[bytes, ServiceInstance],
        revision: int,
    ) -> int | None:
        """Apply the watch stream's events to ``instances`` until ``ctx`` ends.

        Returns None when etcd cancelled the watch (compacted history): read everything again.
        Raises when the stream breaks.
        """
        request = {
            "create_request": {
                "key": b64(prefix),
                "range_end": b64(_prefix_end(prefix)),
                "start_revision": str(revision + 1),
            }
        }
        stream = self._gw.stream("watch", request, ctx=ctx)
        try:
            for result in stream.messages():
                if result.get("canceled") or "compact_revision" in result:
                    return None
                for event in result.get("events", ()):
                    _apply(instances, event)
                if "events" in result:
                    w._publish(instances.values())
                header_revision = result.get("header", {}).get("revision")
                if header_revision is not None:
                    revision = max(revision, int(header_revision))
        finally:
            stream.close()
        if ctx.err() is None:
            raise EtcdUnavailable("etcd closed the watch stream")
        return revision


def _prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (etcd's range_end)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _decode(key: bytes, value: str) -> ServiceInstance | None:
    try:
        return ServiceInstance.from_dict(json.loads(unb64(value)))
    except (ValueError, TypeError) as e:
        _log.warning("EtcdRegistry: ignoring %r, not a service instance: %s", key, e)
        return None


def _apply(instances: dict[bytes, ServiceInstance], event: dict[str, Any]) -> None:
    kv = event.get("kv", {})
    key = unb64(kv.get("key", ""))
    if event.get("type") == "DELETE":
        instances.pop(key, None)
        return
    instance = _decode(key, kv.get("value", ""))
    if instance is not None:
        instances[key] = instance
