"""EtcdRegistry against a real etcd, started for this module by tests/services.py.

No mocks: every test talks to etcd's v3 JSON gateway. Where a process must die, it is a
real subprocess killed with SIGKILL.
"""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import WAIT, run_async
from goconc import context
from goconc.registry import (
    EtcdError,
    EtcdRegistry,
    EtcdUnavailable,
    RegistryClosed,
    ServiceInstance,
    Watcher,
    WatchStopped,
)
from goconc.registry._gateway import b64, unb64
from services import EtcdServer, etcd_server

# The shortest lease etcd grants with its default timing; crashed processes vanish after it.
TTL = 2


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with etcd_server() as server:
        yield server


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace of its own for each test, so that tests never see each other's keys."""
    return f"/goconc-test/{request.node.name}"


@pytest.fixture
def registry(etcd: EtcdServer, namespace: str) -> Iterator[EtcdRegistry]:
    with EtcdRegistry(etcd.endpoint, ttl=TTL, namespace=namespace) as r:
        yield r


@pytest.fixture
def other(etcd: EtcdServer, namespace: str) -> Iterator[EtcdRegistry]:
    """A second registry on the same etcd and namespace, as another process would have."""
    with EtcdRegistry(etcd.endpoint, ttl=TTL, namespace=namespace) as r:
        yield r


def instance(id: str, name: str = "greeter", port: int = 8000) -> ServiceInstance:
    return ServiceInstance(
        id=id, name=name, version="2.0", metadata={"zone": "b"},
        endpoints=[f"http://127.0.0.1:{port}", f"grpc://127.0.0.1:{port + 1}"],
    )  # fmt: skip


def test_register_discover_deregister(registry: EtcdRegistry, other: EtcdRegistry) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    registry.register(instance("b2"), timeout=WAIT)
    assert other.get_service("greeter", timeout=WAIT) == [instance("a1"), instance("b2")]
    registry.deregister(instance("a1"), timeout=WAIT)
    assert other.get_service("greeter", timeout=WAIT) == [instance("b2")]
    assert other.get_service("nobody", timeout=WAIT) == []


def test_instances_are_stored_as_go_kratos_stores_them(
    registry: EtcdRegistry, etcd: EtcdServer, namespace: str
) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    kvs = _range(etcd, f"{namespace}/greeter/")
    assert [unb64(kv["key"]).decode() for kv in kvs] == [f"{namespace}/greeter/a1"]
    value = json.loads(unb64(kvs[0]["value"]))
    assert value == {
        "id": "a1",
        "name": "greeter",
        "version": "2.0",
        "metadata": {"zone": "b"},
        "endpoints": ["http://127.0.0.1:8000", "grpc://127.0.0.1:8001"],
    }
    assert int(kvs[0]["lease"]) != 0


def test_one_lease_serves_every_instance_of_a_registry(
    registry: EtcdRegistry, etcd: EtcdServer, namespace: str
) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    registry.register(instance("b2"), timeout=WAIT)
    leases = {kv["lease"] for kv in _range(etcd, f"{namespace}/greeter/")}
    assert len(leases) == 1


def test_instances_outlive_their_ttl_while_the_process_lives(registry: EtcdRegistry) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    with registry.watch("greeter", timeout=WAIT) as w:
        assert [i.id for i in w.next(timeout=WAIT)] == ["a1"]
        # Over two TTLs: the keep-alive must have renewed the lease several times.
        with pytest.raises(TimeoutError):
            w.next(timeout=2 * TTL + 0.5)
    assert registry.get_service("greeter", timeout=WAIT) == [instance("a1")]


def test_watch_sees_instances_added_and_removed_by_another_registry(
    registry: EtcdRegistry, other: EtcdRegistry
) -> None:
    with registry.watch("greeter", timeout=WAIT) as w:
        assert w.next(timeout=WAIT) == []
        other.register(instance("a1"), timeout=WAIT)
        assert _next_until(w, ["a1"]) == [instance("a1")]
        other.register(instance("b2"), timeout=WAIT)
        assert _next_until(w, ["a1", "b2"]) == [instance("a1"), instance("b2")]
        other.deregister(instance("a1"), timeout=WAIT)
        assert _next_until(w, ["b2"]) == [instance("b2")]


def test_watch_sees_an_instance_replaced_in_place(
    registry: EtcdRegistry, other: EtcdRegistry
) -> None:
    other.register(instance("a1", port=8000), timeout=WAIT)
    with registry.watch("greeter", timeout=WAIT) as w:
        assert w.next(timeout=WAIT) == [instance("a1", port=8000)]
        other.register(instance("a1", port=9000), timeout=WAIT)
        assert w.next(timeout=WAIT) == [instance("a1", port=9000)]


def test_closing_a_registry_removes_its_instances_at_once(
    etcd: EtcdServer, namespace: str, registry: EtcdRegistry
) -> None:
    with EtcdRegistry(etcd.endpoint, ttl=60, namespace=namespace) as short_lived:
        short_lived.register(instance("a1"), timeout=WAIT)
        assert [i.id for i in registry.get_service("greeter", timeout=WAIT)] == ["a1"]
    # The lease is revoked by close(): no waiting for its 60 s TTL.
    assert registry.get_service("greeter", timeout=WAIT) == []


def test_deregistering_the_last_instance_revokes_the_lease_and_stops_the_keep_alive(
    registry: EtcdRegistry, etcd: EtcdServer, namespace: str
) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    lease = _range(etcd, f"{namespace}/greeter/")[0]["lease"]
    keeper = registry._keeper
    assert keeper is not None
    registry.deregister(instance("a1"), timeout=WAIT)
    assert keeper.g.done()
    assert registry._keeper is None
    assert _lease_ttl(etcd, lease) == -1  # etcd no longer knows it
    registry.register(instance("a1"), timeout=WAIT)  # a new lease, a new keep-alive
    assert registry.get_service("greeter", timeout=WAIT) == [instance("a1")]


def test_a_lost_lease_is_replaced_and_the_instances_registered_again(
    registry: EtcdRegistry, other: EtcdRegistry, etcd: EtcdServer, namespace: str
) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    registry.register(instance("b2"), timeout=WAIT)
    lease = _range(etcd, f"{namespace}/greeter/")[0]["lease"]
    with other.watch("greeter", timeout=WAIT) as w:
        assert len(w.next(timeout=WAIT)) == 2
        _post(etcd, "lease/revoke", {"ID": lease})  # as if the lease had expired
        assert _next_until(w, []) == []
        assert _next_until(w, ["a1", "b2"]) == [instance("a1"), instance("b2")]
    leases = {kv["lease"] for kv in _range(etcd, f"{namespace}/greeter/")}
    assert len(leases) == 1
    assert lease not in leases


def test_registering_under_a_lost_lease_registers_the_others_again_too(
    etcd: EtcdServer, namespace: str, other: EtcdRegistry
) -> None:
    # A long TTL: the keep-alive (every ttl/3 s) does not notice the loss; register() does.
    with EtcdRegistry(etcd.endpoint, ttl=60, namespace=namespace) as r:
        r.register(instance("a1"), timeout=WAIT)
        lease = _range(etcd, f"{namespace}/greeter/")[0]["lease"]
        _post(etcd, "lease/revoke", {"ID": lease})
        assert other.get_service("greeter", timeout=WAIT) == []
        r.register(instance("b2"), timeout=WAIT)
        assert other.get_service("greeter", timeout=WAIT) == [instance("a1"), instance("b2")]
        leases = {kv["lease"] for kv in _range(etcd, f"{namespace}/greeter/")}
        assert len(leases) == 1
        assert lease not in leases


_CHILD = textwrap.dedent(
    """
    import sys, time
    from goconc.registry import EtcdRegistry, ServiceInstance

    endpoint, namespace, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    registry = EtcdRegistry(endpoint, ttl=ttl, namespace=namespace)
    registry.register(
        ServiceInstance("crashing", "greeter", endpoints=["http://127.0.0.1:9000"]), timeout=10
    )
    print("registered", flush=True)
    time.sleep(120)  # killed long before
    """
)


def test_a_killed_process_disappears_when_its_lease_expires(
    etcd: EtcdServer, namespace: str, registry: EtcdRegistry
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, etcd.endpoint, namespace, str(TTL)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the child did not register in 30 s"
        assert child.stdout.readline().strip() == "registered"
        with registry.watch("greeter", timeout=WAIT) as w:
            assert [i.id for i in w.next(timeout=WAIT)] == ["crashing"]
            # It stays while the child lives: its keep-alive renews the lease.
            with pytest.raises(TimeoutError):
                w.next(timeout=TTL + 1)
            child.send_signal(signal.SIGKILL)
            child.wait(WAIT)
            killed = time.monotonic()
            assert _next_until(w, [], timeout=TTL + 20) == []
            # Not before the lease could have expired (etcd rounds TTLs up, never down).
            assert time.monotonic() - killed > 0.5
        assert registry.get_service("greeter", timeout=WAIT) == []
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(WAIT)
        assert child.stdout is not None
        child.stdout.close()


def test_async_twins(registry: EtcdRegistry, other: EtcdRegistry) -> None:
    async def main() -> list[list[str]]:
        seen = []
        async with other.watch("greeter", timeout=WAIT) as w:
            seen.append([i.id for i in await w.anext(timeout=WAIT)])
            await registry.aregister(instance("a1"), timeout=WAIT)
            seen.append([i.id for i in await other.aget_service("greeter", timeout=WAIT)])
            seen.append([i.id for i in await w.anext(timeout=WAIT)])
            await registry.aderegister(instance("a1"), timeout=WAIT)
            seen.append([i.id for i in await w.anext(timeout=WAIT)])
        return seen

    assert run_async(main()) == [[], ["a1"], ["a1"], []]


def test_invalid_instances_fail_before_etcd_is_contacted() -> None:
    with EtcdRegistry("http://127.0.0.1:1") as unreachable:
        with pytest.raises(ValueError, match="endpoints must not be empty"):
            unreachable.register(ServiceInstance("a1", "greeter"), timeout=WAIT)
        with pytest.raises(ValueError, match="name must not be empty"):
            unreachable.register(ServiceInstance("a1", "", endpoints=["http://h:1"]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ttl": 1}, "ttl must be"),
        ({"ttl": float("nan")}, "ttl must be"),
        ({"namespace": "services"}, "namespace must start with '/'"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"endpoints": []}, "at least one etcd URL"),
        ({"endpoints": "ftp://h:1"}, "etcd endpoint must look like"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EtcdRegistry(**kwargs)


def test_an_unreachable_etcd_raises_etcd_unavailable() -> None:
    with EtcdRegistry(["http://127.0.0.1:1", "127.0.0.1:2"]) as unreachable:
        with pytest.raises(EtcdUnavailable, match="no endpoint answered"):
            unreachable.register(instance("a1"), timeout=WAIT)
        with pytest.raises(EtcdUnavailable):
            unreachable.get_service("greeter", timeout=WAIT)
        assert unreachable._keeper is None


def test_a_later_endpoint_answers_when_the_first_is_down(etcd: EtcdServer, namespace: str) -> None:
    endpoints = ["http://127.0.0.1:1", etcd.endpoint]
    with EtcdRegistry(endpoints, ttl=TTL, namespace=namespace) as r:
        r.register(instance("a1"), timeout=WAIT)
        assert r.get_service("greeter", timeout=WAIT) == [instance("a1")]


def test_etcd_errors_carry_etcds_message(registry: EtcdRegistry) -> None:
    with pytest.raises(EtcdError, match="lease not found"):
        registry._put("/goconc-test/x", "{}", 12345, time.monotonic() + WAIT, None)


def test_a_call_to_a_silent_server_times_out() -> None:
    with _silent_server() as port, EtcdRegistry(f"http://127.0.0.1:{port}") as r:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            r.get_service("greeter", timeout=0.3)
        assert time.monotonic() - started < WAIT


def test_a_call_to_a_silent_server_ends_with_its_context() -> None:
    with _silent_server() as port, EtcdRegistry(f"http://127.0.0.1:{port}") as r:
        ctx, cancel = context.with_cancel(context.background())
        timer = threading.Timer(0.2, cancel)
        timer.start()
        try:
            with pytest.raises(context.Canceled):
                r.get_service("greeter", ctx=ctx)
        finally:
            timer.join(WAIT)


def test_a_done_context_fails_the_call_at_once(registry: EtcdRegistry) -> None:
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    with pytest.raises(context.Canceled):
        registry.register(instance("a1"), ctx=ctx)
    assert registry.get_service("greeter", timeout=WAIT) == []


def test_closing_stops_watchers_and_refuses_calls(registry: EtcdRegistry) -> None:
    w = registry.watch("greeter", timeout=WAIT)
    w.next(timeout=WAIT)
    registry.close()
    with pytest.raises(WatchStopped):
        w.next(timeout=WAIT)
    with pytest.raises(RegistryClosed):
        registry.register(instance("a1"), timeout=WAIT)


def test_stopping_a_watch_ends_its_stream_goroutine(registry: EtcdRegistry) -> None:
    w = registry.watch("greeter", timeout=WAIT)
    w.next(timeout=WAIT)
    w.stop()
    assert w not in registry._watchers


# -- helpers ----------------------------------------------------------------------------------


def _post(etcd: EtcdServer, method: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{etcd.endpoint}/v3/{method}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def _range(etcd: EtcdServer, prefix: str) -> list[dict[str, Any]]:
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    kvs: list[dict[str, Any]] = _post(
        etcd, "kv/range", {"key": b64(prefix), "range_end": b64(end)}
    ).get("kvs", [])
    return kvs


def _lease_ttl(etcd: EtcdServer, lease: str) -> int:
    return int(_post(etcd, "kv/lease/timetolive", {"ID": lease}).get("TTL", -1))


def _next_until(w: Watcher, ids: list[str], timeout: float = 20.0) -> list[ServiceInstance]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            snapshot = w.next(timeout=max(left, 0))
        except TimeoutError:
            raise AssertionError(f"watch of {w.name!r} never showed {ids}") from None
        if sorted(i.id for i in snapshot) == sorted(ids):
            return snapshot


class _silent_server:
    """A loopback TCP server that accepts connections and never answers."""

    def __enter__(self) -> int:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        port: int = self._sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
