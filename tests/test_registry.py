"""goconc.registry: ServiceInstance, MemoryRegistry, FileRegistry, watchers, from_url.

FileRegistry is tested across real processes (subprocesses of this test run). EtcdRegistry
has its own module, against a real etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import WAIT, run_async
from goconc import context
from goconc.registry import (
    Discovery,
    EtcdRegistry,
    FileRegistry,
    MemoryRegistry,
    Registrar,
    Registry,
    RegistryClosed,
    ServiceInstance,
    Watcher,
    WatchStopped,
    from_url,
)


def instance(id: str, name: str = "greeter", port: int = 8000) -> ServiceInstance:
    return ServiceInstance(
        id=id,
        name=name,
        version="1.0",
        metadata={"zone": "a"},
        endpoints=[f"http://127.0.0.1:{port}"],
    )


@pytest.fixture
def memory() -> Iterator[MemoryRegistry]:
    with MemoryRegistry() as registry:
        yield registry


@pytest.fixture
def files(tmp_path: Path) -> Iterator[FileRegistry]:
    with FileRegistry(tmp_path / "registry", poll_interval=0.05) as registry:
        yield registry


@pytest.fixture(params=["memory", "file"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    made: Registry
    if request.param == "memory":
        made = MemoryRegistry()
    else:
        made = FileRegistry(tmp_path / "registry", poll_interval=0.05)
    with made:
        yield made


# -- ServiceInstance ------------------------------------------------------------------------


def test_instance_keeps_endpoints_as_tuple_and_metadata_read_only() -> None:
    inst = instance("a1")
    assert inst.endpoints == ("http://127.0.0.1:8000",)
    with pytest.raises(TypeError):
        inst.metadata["zone"] = "b"  # type: ignore[index]


def test_instances_are_equal_whatever_the_endpoint_order_and_hashable() -> None:
    a = ServiceInstance("a1", "s", endpoints=["http://h:1", "grpc://h:2"])
    b = ServiceInstance("a1", "s", endpoints=["grpc://h:2", "http://h:1"])
    assert a == b
    assert len({a, b}) == 1


def test_instance_round_trips_through_its_json_form() -> None:
    inst = instance("a1")
    data = json.loads(json.dumps(inst.to_dict()))
    assert set(data) == {"id", "name", "version", "metadata", "endpoints"}
    assert ServiceInstance.from_dict(data) == inst


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"id": 1, "name": "s"}, "id must be a str"),
        ({"id": "a", "name": "s", "endpoints": "http://h:1"}, "list of URL strings"),
        ({"id": "a", "name": "s", "endpoints": [1]}, r"endpoints\[0\] must be a str"),
        ({"id": "a", "name": "s", "metadata": {"k": 1}}, "map str to str"),
    ],
)
def test_instance_of_wrong_field_types_raises_type_error(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        ServiceInstance(**kwargs)


@pytest.mark.parametrize(
    ("inst", "match"),
    [
        (ServiceInstance("a1", "", endpoints=["http://h:1"]), "instance.name must not be empty"),
        (ServiceInstance("", "s", endpoints=["http://h:1"]), "instance.id must not be empty"),
        (ServiceInstance("a1", "s"), "instance.endpoints must not be empty"),
        (ServiceInstance("a1", "s", endpoints=["h:1"]), r"endpoints\[0\] must be a URL"),
        (ServiceInstance("a1", "a/b", endpoints=["http://h:1"]), "must not contain '/'"),
        (ServiceInstance("../x", "s", endpoints=["http://h:1"]), "must not contain '/'"),
        (ServiceInstance(".a", "s", endpoints=["http://h:1"]), "nor start with '.'"),
    ],
)
def test_registering_an_invalid_instance_raises_value_error_at_the_call(
    registry: Registry, inst: ServiceInstance, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        registry.register(inst, timeout=WAIT)
    assert registry.get_service("s", timeout=WAIT) == []


def test_registering_an_invalid_instance_fails_in_the_calling_task(registry: Registry) -> None:
    with pytest.raises(ValueError, match="endpoints must not be empty"):
        run_async(registry.aregister(ServiceInstance("a1", "s"), timeout=WAIT))


def test_registering_something_else_than_an_instance_raises_type_error(
    registry: Registry,
) -> None:
    with pytest.raises(TypeError, match="instance must be a ServiceInstance"):
        registry.register({"id": "a1"}, timeout=WAIT)  # type: ignore[arg-type]


def test_an_invalid_service_name_is_rejected_by_discovery(registry: Registry) -> None:
    with pytest.raises(ValueError, match="name must not be empty"):
        registry.get_service("", timeout=WAIT)
    with pytest.raises(TypeError, match="name must be a str"):
        registry.watch(None, timeout=WAIT)  # type: ignore[arg-type]


def test_negative_timeout_is_rejected(registry: Registry) -> None:
    with pytest.raises(ValueError, match="timeout"):
        registry.register(instance("a1"), timeout=-1)


# -- behaviour common to the memory and file registries -------------------------------------


def test_registries_implement_both_protocols(registry: Registry) -> None:
    assert isinstance(registry, Registrar)
    assert isinstance(registry, Discovery)
    assert isinstance(registry, Registry)


def test_registered_instances_are_discovered_sorted_by_id(registry: Registry) -> None:
    registry.register(instance("b2", port=8002), timeout=WAIT)
    registry.register(instance("a1", port=8001), timeout=WAIT)
    registry.register(instance("c3", name="other"), timeout=WAIT)
    assert [i.id for i in registry.get_service("greeter", timeout=WAIT)] == ["a1", "b2"]
    assert registry.get_service("nobody", timeout=WAIT) == []


def test_registering_the_same_id_again_replaces_the_instance(registry: Registry) -> None:
    registry.register(instance("a1", port=8001), timeout=WAIT)
    registry.register(instance("a1", port=9001), timeout=WAIT)
    assert registry.get_service("greeter", timeout=WAIT) == [instance("a1", port=9001)]


def test_deregister_removes_only_that_instance(registry: Registry) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    registry.register(instance("b2"), timeout=WAIT)
    registry.deregister(instance("a1"), timeout=WAIT)
    assert [i.id for i in registry.get_service("greeter", timeout=WAIT)] == ["b2"]
    registry.deregister(instance("a1"), timeout=WAIT)  # absent: not an error


def test_watch_returns_the_current_instances_first_then_each_change(registry: Registry) -> None:
    registry.register(instance("a1"), timeout=WAIT)
    with registry.watch("greeter", timeout=WAIT) as w:
        assert w.next(timeout=WAIT) == [instance("a1")]
        registry.register(instance("b2"), timeout=WAIT)
        assert _next_until(w, ["a1", "b2"]) == ["a1", "b2"]
        registry.deregister(instance("a1"), timeout=WAIT)
        assert _next_until(w, ["b2"]) == ["b2"]


def test_watch_of_an_unknown_service_starts_empty_and_sees_the_first_instance(
    registry: Registry,
) -> None:
    with registry.watch("greeter", timeout=WAIT) as w:
        assert w.next(timeout=WAIT) == []
        registry.register(instance("a1"), timeout=WAIT)
        assert _next_until(w, ["a1"]) == ["a1"]


def test_watch_next_times_out_when_nothing_changes(registry: Registry) -> None:
    with registry.watch("greeter", timeout=WAIT) as w:
        w.next(timeout=WAIT)
        with pytest.raises(TimeoutError):
            w.next(timeout=0.2)


def test_watch_next_ends_with_its_context(registry: Registry) -> None:
    with registry.watch("greeter", timeout=WAIT) as w:
        w.next(timeout=WAIT)
        ctx, cancel = context.with_cancel(context.background())
        with _after(0.1, cancel), pytest.raises(context.Canceled):
            w.next(timeout=WAIT, ctx=ctx)


def test_watch_ignores_changes_to_other_services(registry: Registry) -> None:
    with registry.watch("greeter", timeout=WAIT) as w:
        w.next(timeout=WAIT)
        registry.register(instance("x1", name="other"), timeout=WAIT)
        with pytest.raises(TimeoutError):
            w.next(timeout=0.3)


def test_stopping_a_watch_wakes_a_blocked_next(registry: Registry) -> None:
    w = registry.watch("greeter", timeout=WAIT)
    w.next(timeout=WAIT)
    with _after(0.1, w.stop), pytest.raises(WatchStopped):
        w.next(timeout=WAIT)
    assert w.stopped


def test_iterating_a_watch_ends_when_it_is_stopped(registry: Registry) -> None:
    w = registry.watch("greeter", timeout=WAIT)
    seen: list[list[str]] = []
    done = threading.Event()

    def consume() -> None:
        for snapshot in w:
            seen.append([i.id for i in snapshot])
            if len(seen) == 2:
                w.stop()
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    registry.register(instance("a1"), timeout=WAIT)
    t.join(WAIT)
    assert done.is_set()
    assert seen == [[], ["a1"]]


def test_closing_the_registry_stops_its_watchers(registry: Registry) -> None:
    w = registry.watch("greeter", timeout=WAIT)
    registry.close()
    with pytest.raises(WatchStopped):
        w.next(timeout=WAIT)


def test_a_closed_registry_refuses_every_call(registry: Registry) -> None:
    registry.close()
    registry.close()  # idempotent
    with pytest.raises(RegistryClosed):
        registry.register(instance("a1"), timeout=WAIT)
    with pytest.raises(RegistryClosed):
        registry.get_service("greeter", timeout=WAIT)
    with pytest.raises(RegistryClosed):
        registry.watch("greeter", timeout=WAIT)


def test_a_done_context_fails_every_call(registry: Registry) -> None:
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    with pytest.raises(context.Canceled):
        registry.register(instance("a1"), ctx=ctx)
    with pytest.raises(context.Canceled):
        registry.get_service("greeter", ctx=ctx)
    with pytest.raises(context.Canceled):
        registry.watch("greeter", ctx=ctx)
    assert registry.get_service("greeter", timeout=WAIT) == []


def test_async_twins_register_discover_and_watch(registry: Registry) -> None:
    async def main() -> list[list[str]]:
        seen = []
        async with registry.watch("greeter", timeout=WAIT) as w:
            seen.append([i.id for i in await w.anext(timeout=WAIT)])
            await registry.aregister(instance("a1"), timeout=WAIT)
            found = await registry.aget_service("greeter", timeout=WAIT)
            seen.append([i.id for i in found])
            seen.append(await _anext_until(w, ["a1"]))
            await registry.aderegister(instance("a1"), timeout=WAIT)
            seen.append(await _anext_until(w, []))
        return seen

    assert run_async(main()) == [[], ["a1"], ["a1"], []]


def test_async_iteration_of_a_watch_ends_when_it_is_stopped(registry: Registry) -> None:
    async def main() -> list[list[str]]:
        w = registry.watch("greeter", timeout=WAIT)
        seen = []
        async for snapshot in w:
            seen.append([i.id for i in snapshot])
            if len(seen) == 1:
                await registry.aregister(instance("a1"), timeout=WAIT)
            else:
                w.stop()
        return seen

    assert run_async(main()) == [[], ["a1"]]


# -- MemoryRegistry ---------------------------------------------------------------------------


def test_memory_watchers_each_see_every_registration_in_order(memory: MemoryRegistry) -> None:
    watchers = [memory.watch("greeter") for _ in range(3)]
    for w in watchers:
        w.next(timeout=WAIT)
    for n in range(5):
        memory.register(instance(f"i{n}"), timeout=WAIT)
    for w in watchers:
        # Coalesced or not, the last snapshot is the complete one.
        assert _next_until(w, [f"i{n}" for n in range(5)]) == [f"i{n}" for n in range(5)]
        w.stop()


def test_memory_watch_does_not_report_a_change_that_was_undone(memory: MemoryRegistry) -> None:
    with memory.watch("greeter") as w:
        w.next(timeout=WAIT)
        memory.register(instance("a1"))
        memory.deregister(instance("a1"))
        with pytest.raises(TimeoutError):
            w.next(timeout=0.2)


def test_memory_registry_is_safe_under_concurrent_registration(memory: MemoryRegistry) -> None:
    def work(k: int) -> None:
        for n in range(200):
            memory.register(instance(f"t{k}-{n}"))
            if n % 2:
                memory.deregister(instance(f"t{k}-{n}"))

    with memory.watch("greeter") as w:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        expected = sorted(f"t{k}-{n}" for k in range(4) for n in range(0, 200, 2))
        assert [i.id for i in memory.get_service("greeter")] == expected
        assert _next_until(w, expected) == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from(["a", "b", "c", "d"])), min_size=1, max_size=30
    )
)
def test_a_watcher_only_returns_states_the_registry_had_in_their_order(
    ops: list[tuple[bool, str]],
) -> None:
    with MemoryRegistry() as memory, memory.watch("greeter") as w:
        states = [frozenset[str]()]
        seen: list[frozenset[str]] = []
        finished = threading.Event()  # set once states is complete
        limit = time.monotonic() + WAIT

        def consume() -> None:
            # Reads while the registry changes, until it has returned the final state.
            while time.monotonic() < limit:
                try:
                    seen.append(frozenset(i.id for i in w.next(timeout=0.02)))
                except TimeoutError:
                    if finished.is_set() and seen and seen[-1] == states[-1]:
                        return

        consumer = threading.Thread(target=consume)
        consumer.start()
        present: set[str] = set()
        for add, i in ops:
            if add:
                memory.register(instance(i))
                present.add(i)
            else:
                memory.deregister(instance(i))
                present.discard(i)
            if frozenset(present) != states[-1]:
                states.append(frozenset(present))
        finished.set()
        consumer.join(WAIT)
        assert not consumer.is_alive()
        # Each snapshot returned is a state the registry went through, in order, never the
        # same one twice in a row, and the last is the final state.
        assert seen[-1] == states[-1]
        assert all(a != b for a, b in itertools.pairwise(seen))
        position = iter(states)
        assert all(any(s == state for state in position) for s in seen)


# -- FileRegistry -----------------------------------------------------------------------------


def test_file_registry_writes_one_json_file_per_instance(files: FileRegistry) -> None:
    files.register(instance("a1"), timeout=WAIT)
    path = files.directory / "greeter" / "a1.json"
    record = json.loads(path.read_text())
    assert ServiceInstance.from_dict(record) == instance("a1")
    assert record["owner"]["pid"] == os.getpid()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_file_registry_directory_is_private(tmp_path: Path) -> None:
    with FileRegistry(tmp_path / "private") as registry:
        assert registry.directory.stat().st_mode & 0o077 == 0


def test_file_registry_default_directory_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOCONC_REGISTRY_DIR", str(tmp_path / "env"))
    with FileRegistry() as registry:
        assert registry.directory == tmp_path / "env"


def test_file_registry_rejects_a_bad_poll_interval(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        FileRegistry(tmp_path, poll_interval=0)


def test_file_registry_close_removes_its_own_instances(tmp_path: Path) -> None:
    with FileRegistry(tmp_path) as other:
        other.register(instance("b2"), timeout=WAIT)
        with FileRegistry(tmp_path) as mine:
            mine.register(instance("a1"), timeout=WAIT)
        assert [i.id for i in other.get_service("greeter", timeout=WAIT)] == ["b2"]


def test_file_registry_ignores_files_it_cannot_read(files: FileRegistry) -> None:
    files.register(instance("a1"), timeout=WAIT)
    (files.directory / "greeter" / "junk.json").write_text("{not json")
    assert [i.id for i in files.get_service("greeter", timeout=WAIT)] == ["a1"]


def test_file_registry_drops_an_instance_whose_pid_was_recycled(files: FileRegistry) -> None:
    # Our own pid, but another start time: the process that registered it is gone and its
    # pid now names another process.
    files.register(instance("a1"), timeout=WAIT)
    path = files.directory / "greeter" / "a1.json"
    record = json.loads(path.read_text())
    if record["owner"]["start"] is None:
        pytest.skip("no /proc: process start times are not available")
    record["owner"]["start"] -= 1
    path.write_text(json.dumps(record))
    assert files.get_service("greeter", timeout=WAIT) == []
    assert not path.exists()


_CHILD = textwrap.dedent(
    """
    import json, sys
    from goconc.registry import FileRegistry, ServiceInstance

    directory, instance_id, wait_for = sys.argv[1], sys.argv[2], sys.argv[3:]
    registry = FileRegistry(directory, poll_interval=0.05)
    me = ServiceInstance(instance_id, "greeter", endpoints=["http://127.0.0.1:9000"])
    registry.register(me, timeout=10)
    with registry.watch("greeter", timeout=10) as watcher:
        while True:
            seen = sorted(i.id for i in watcher.next(timeout=20))
            if set(wait_for) <= set(seen):
                break
    print(json.dumps(seen), flush=True)
    sys.stdin.readline()  # stay registered until told to go
    registry.deregister(me, timeout=10)
    registry.close()
    """
)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _spawn(
    children: list[subprocess.Popen[str]], directory: Path, instance_id: str, *wait_for: str
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(directory), instance_id, *wait_for],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    children.append(proc)
    return proc


def _read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no line from child {proc.pid} in {timeout} s")
    return proc.stdout.readline()


def test_two_processes_see_each_other(
    files: FileRegistry, children: list[subprocess.Popen[str]]
) -> None:
    files.register(instance("parent"), timeout=WAIT)
    child = _spawn(children, files.directory, "child", "parent")
    assert json.loads(_read_line(child)) == ["child", "parent"]
    assert [i.id for i in files.get_service("greeter", timeout=WAIT)] == ["child", "parent"]

    with files.watch("greeter", timeout=WAIT) as w:
        w.next(timeout=WAIT)
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(WAIT) == 0
        assert _next_until(w, ["parent"]) == ["parent"]


def test_an_instance_of_a_killed_process_is_dropped_and_its_file_removed(
    files: FileRegistry, children: list[subprocess.Popen[str]]
) -> None:
    child = _spawn(children, files.directory, "doomed")
    assert json.loads(_read_line(child)) == ["doomed"]
    with files.watch("greeter", timeout=WAIT) as w:
        assert [i.id for i in w.next(timeout=WAIT)] == ["doomed"]
        os.kill(child.pid, signal.SIGKILL)
        # Not reaped yet: a zombie counts as dead.
        assert _next_until(w, []) == []
        assert not (files.directory / "greeter" / "doomed.json").exists()
        child.wait(WAIT)
    assert files.get_service("greeter", timeout=WAIT) == []


def test_many_processes_registering_at_once_are_all_seen(
    files: FileRegistry, children: list[subprocess.Popen[str]]
) -> None:
    ids = [f"c{n}" for n in range(4)]
    procs = [_spawn(children, files.directory, i, *ids) for i in ids]
    for proc in procs:
        assert json.loads(_read_line(proc)) == ids
    assert [i.id for i in files.get_service("greeter", timeout=WAIT)] == ids


# -- from_url ---------------------------------------------------------------------------------


def test_from_url_builds_each_registry(tmp_path: Path) -> None:
    with from_url("memory:") as m:
        assert isinstance(m, MemoryRegistry)
    with from_url(f"file://{tmp_path}/reg") as f:
        assert isinstance(f, FileRegistry)
        assert f.directory == tmp_path / "reg"
    with from_url("etcd://127.0.0.1:2379,127.0.0.2:2379/ns?ttl=7") as e:
        assert isinstance(e, EtcdRegistry)
        assert e.ttl == 7
        assert e.namespace == "/ns"
        assert "127.0.0.2:2379" in repr(e)


@pytest.mark.parametrize("url", ["ftp://x", "etcd://", "etcd://h:1?ttl=soon", "nothing"])
def test_from_url_rejects_what_it_does_not_know(url: str) -> None:
    with pytest.raises(ValueError):
        from_url(url)


# -- helpers ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _after(seconds: float, fn: Callable[[], object]) -> Iterator[None]:
    """Call ``fn`` from another thread ``seconds`` after entering; join that thread on exit."""
    timer = threading.Timer(seconds, fn)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join(WAIT)


def _next_until(w: Watcher, ids: list[str], timeout: float = 20.0) -> list[str]:
    """Read snapshots until one has exactly ``ids``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"watch of {w.name!r} never showed {ids}")
        try:
            seen = sorted(i.id for i in w.next(timeout=left))
        except TimeoutError:
            raise AssertionError(f"watch of {w.name!r} never showed {ids}") from None
        if seen == sorted(ids):
            return seen


async def _anext_until(w: Watcher, ids: list[str], timeout: float = 20.0) -> list[str]:
    async with asyncio.timeout(timeout):
        while True:
            seen = sorted(i.id for i in await w.anext())
            if seen == sorted(ids):
                return seen
