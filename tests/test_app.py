"""goconc.app.App: the lifecycle order, readiness, registration, signals, and
every known fault of go-kratos's App, each with a test that it is absent here."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WAIT, run_async
from goconc import Chan, ChanClosed, context, select
from goconc import time as gtime
from goconc.app import App, AppError, ForcedStop, StopTimeout, from_context
from goconc.registry import MemoryRegistry, ServiceInstance

pytestmark = pytest.mark.goconc_leaks


class Boom(Exception):
    pass


class Log:
    """What happened, in order, from any thread or task."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self.items: list[tuple[Any, ...]] = []

    def add(self, *item: Any) -> None:
        with self._mu:
            self.items.append(item)

    def kinds(self) -> list[tuple[Any, ...]]:
        with self._mu:
            return [i[:2] for i in self.items]

    def first(self, *prefix: Any) -> int:
        for i, item in enumerate(self.kinds()):
            if item[: len(prefix)] == prefix:
                return i
        raise AssertionError(f"{prefix} not in {self.kinds()}")

    def last(self, *prefix: Any) -> int:
        found = [i for i, item in enumerate(self.kinds()) if item[: len(prefix)] == prefix]
        assert found, f"{prefix} not in {self.kinds()}"
        return found[-1]

    def has(self, *prefix: Any) -> bool:
        return any(item[: len(prefix)] == prefix for item in self.kinds())


def is_closed(ch: Chan[None]) -> bool:
    return select(ch, default=True).index == 0


def close_once(ch: Chan[None]) -> None:
    try:
        ch.close()
    except ChanClosed:
        pass


class AsyncServer:
    """A fake server run as a task: ready after ``ready_after`` s, until stopped."""

    def __init__(
        self,
        name: str,
        log: Log,
        *,
        fail: BaseException | None = None,
        fail_after_ready: float | None = None,
        ready_after: float = 0.0,
        never_ready: bool = False,
        stop_hangs: bool = False,
    ) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.fail_after_ready = fail_after_ready
        self.ready_after = ready_after
        self.never_ready = never_ready
        self.stop_hangs = stop_hangs
        self.ready: Chan[None] = Chan()
        self._stop: Chan[None] = Chan()
        self.ctx: context.Context | None = None
        self.returned = False

    def endpoint(self) -> str:
        return f"http://{self.name}.test:80"

    async def start(self, ctx: context.Context) -> None:
        self.ctx = ctx
        self.log.add("start", self.name)
        try:
            if self.ready_after:
                await gtime.asleep(self.ready_after)
            if self.never_ready:
                await self._stop.arecv_ok()
                return
            if self.fail is not None and self.fail_after_ready is None:
                raise self.fail
            self.log.add("ready", self.name)
            self.ready.close()
            if self.fail is not None:
                try:
                    await self._stop.arecv_ok(timeout=self.fail_after_ready)
                    return
                except TimeoutError:
                    raise self.fail from None
            await self._stop.arecv_ok()
        finally:
            self.returned = True
            self.log.add("returned", self.name)

    async def stop(self, ctx: context.Context) -> None:
        self.log.add("stop", self.name, ctx.deadline())
        if self.stop_hangs:
            await Chan[None]().arecv_ok(timeout=WAIT * 3)  # ignores ctx
        close_once(self._stop)


class ThreadServer:
    """A fake server with plain (blocking) start and stop, run on goroutine threads."""

    def __init__(self, name: str, log: Log, *, stop_hangs: bool = False) -> None:
        self.name = name
        self.log = log
        self.stop_hangs = stop_hangs
        self.ready: Chan[None] = Chan()
        self._stop: Chan[None] = Chan()
        self.release: Chan[None] = Chan()  # lets a hanging stop go at the end of a test
        self.returned = False

    def endpoint(self) -> str:
        return f"http://{self.name}.test:81"

    def start(self, ctx: context.Context) -> None:
        self.log.add("start", self.name)
        self.log.add("ready", self.name)
        self.ready.close()
        try:
            self._stop.recv_ok(timeout=WAIT * 3)
        finally:
            self.returned = True
            self.log.add("returned", self.name)

    def stop(self, ctx: context.Context) -> None:
        self.log.add("stop", self.name, ctx.deadline())
        if self.stop_hangs:
            self.release.recv_ok(timeout=WAIT * 3)  # ignores ctx
        close_once(self._stop)


class RecordingRegistrar:
    """A registrar that logs calls, noting which servers were ready at registration."""

    def __init__(
        self,
        log: Log,
        servers: list[Any] = (),  # type: ignore[assignment]
        *,
        fail_register: BaseException | None = None,
        block_register: bool = False,
        fail_deregister: BaseException | None = None,
    ) -> None:
        self.log = log
        self.servers = list(servers)
        self.fail_register = fail_register
        self.block_register = block_register
        self.fail_deregister = fail_deregister
        self.ready_at_register: list[bool] = []
        self.instances: list[ServiceInstance] = []

    def register(
        self,
        instance: ServiceInstance,
        *,
        timeout: float | None = None,
        ctx: context.Context | None = None,
    ) -> None:
        self.ready_at_register = [is_closed(s.ready) for s in self.servers]
        self.log.add("register", instance.id)
        self.instances.append(instance)
        if self.block_register:  # like a registry that waits on the network until ctx ends
            assert ctx is not None
            ctx.done.recv_ok(timeout=WAIT)
            err = ctx.err()
            assert err is not None
            raise err
        if self.fail_register is not None:
            raise self.fail_register

    def deregister(
        self,
        instance: ServiceInstance,
        *,
        timeout: float | None = None,
        ctx: context.Context | None = None,
    ) -> None:
        self.log.add("deregister", instance.id)
        if self.fail_deregister is not None:
            raise self.fail_deregister

    async def aregister(self, instance: ServiceInstance, **kw: Any) -> None:
        self.register(instance, **kw)

    async def aderegister(self, instance: ServiceInstance, **kw: Any) -> None:
        self.deregister(instance, **kw)


def hook(log: Log, name: str, *, fail: BaseException | None = None) -> Callable[..., None]:
    def fn(ctx: context.Context) -> None:
        log.add("hook", name, from_context(ctx))
        if fail is not None:
            raise fail

    fn.__qualname__ = name
    return fn


def ahook(log: Log, name: str, *, fail: BaseException | None = None) -> Callable[..., Any]:
    async def fn(ctx: context.Context) -> None:
        log.add("hook", name, from_context(ctx))
        if fail is not None:
            raise fail

    fn.__qualname__ = name
    return fn


async def run_and(app: App, action: Callable[[], Any] | None = None) -> None:
    """Run ``app``; once it is ready, call ``action`` (default: ``app.stop``)."""

    async def driver() -> None:
        sel = await asyncio.wait_for(_ready_or_done(app), WAIT)
        if sel == 0:
            result = (action or app.stop)()
            if asyncio.iscoroutine(result):
                await result

    t = asyncio.create_task(driver())
    try:
        await app.arun()
    finally:
        await asyncio.wait_for(t, WAIT)


async def _ready_or_done(app: App) -> int:
    from goconc import aselect

    return (await aselect(app.ready, app.done)).index


def errors_of(exc_info: pytest.ExceptionInfo[AppError]) -> list[Exception]:
    return list(exc_info.value.exceptions)


def make_app(log: Log, servers: list[Any], **kw: Any) -> App:
    kw.setdefault("signals", ())
    kw.setdefault("stop_timeout", WAIT)
    return App(name="svc", version="1.2", servers=servers, **kw)


# -- the order ---------------------------------------------------------------------------


def test_lifecycle_runs_hooks_registration_and_servers_in_the_documented_order() -> None:
    log = Log()
    a, b = AsyncServer("a", log), ThreadServer("b", log)
    reg = RecordingRegistrar(log, [a, b])
    app = make_app(
        log,
        [a, b],
        registrar=reg,
        before_start=[hook(log, "bs1"), ahook(log, "bs2")],
        after_start=hook(log, "as"),
        before_stop=ahook(log, "bst"),
        after_stop=[hook(log, "ast1"), hook(log, "ast2")],
    )
    run_async(run_and(app))
    order = log.kinds()
    assert order[:2] == [("hook", "bs1"), ("hook", "bs2")]
    assert log.last("ready") < log.first("register") < log.first("hook", "as")
    assert log.first("hook", "as") < log.first("hook", "bst") < log.first("deregister")
    assert log.first("deregister") < log.first("stop")
    assert log.last("stop") < log.last("returned") < log.first("hook", "ast1")
    assert order[-2:] == [("hook", "ast1"), ("hook", "ast2")]
    assert a.returned and b.returned
    assert app.state == "stopped"


def test_registration_waits_until_every_server_is_ready_not_merely_started() -> None:
    log = Log()
    fast, slow = AsyncServer("fast", log), AsyncServer("slow", log, ready_after=0.3)
    reg = RecordingRegistrar(log, [fast, slow])
    app = make_app(log, [fast, slow], registrar=reg)
    run_async(run_and(app))
    assert reg.ready_at_register == [True, True]
    inst = reg.instances[0]
    assert sorted(inst.endpoints) == ["http://fast.test:80", "http://slow.test:80"]
    assert (inst.id, inst.name, inst.version) == (app.id, "svc", "1.2")


def test_explicit_endpoints_are_registered_instead_of_the_servers() -> None:
    log = Log()
    s = AsyncServer("s", log)
    reg = RecordingRegistrar(log, [s])
    app = make_app(log, [s], registrar=reg, endpoints=["grpc://10.0.0.1:9000"])
    run_async(run_and(app))
    assert reg.instances[0].endpoints == ("grpc://10.0.0.1:9000",)


def test_app_is_reachable_from_every_context_it_hands_out() -> None:
    log = Log()
    s = AsyncServer("s", log)
    seen: list[Any] = []

    def capture(ctx: context.Context) -> None:
        seen.append(from_context(ctx))

    app = make_app(
        log,
        [s],
        before_start=capture,
        after_start=capture,
        before_stop=capture,
        after_stop=capture,
        metadata={"zone": "eu"},
    )
    run_async(run_and(app))
    assert seen == [app] * 4
    assert s.ctx is not None and from_context(s.ctx) is app
    assert app.metadata == {"zone": "eu"}
    assert from_context(context.background()) is None


def test_parent_context_values_reach_hooks_and_servers() -> None:
    key = object()
    parent = context.with_value(context.background(), key, "v")
    log = Log()
    s = AsyncServer("s", log)
    got: list[Any] = []
    app = make_app(log, [s], ctx=parent, after_start=lambda ctx: got.append(ctx.value(key)))
    run_async(run_and(app))
    assert got == ["v"]
    assert s.ctx is not None and s.ctx.value(key) == "v"


def test_servers_get_a_stop_context_whose_deadline_is_the_stop_timeout() -> None:
    log = Log()
    s = AsyncServer("s", log)
    app = make_app(log, [s], stop_timeout=7.0)
    before = time.monotonic()
    run_async(run_and(app))
    (deadline,) = [item[2] for item in log.items if item[0] == "stop"]
    assert before + 7.0 <= deadline <= time.monotonic() + 7.0


def test_sync_and_async_hooks_and_servers_mix() -> None:
    log = Log()
    servers = [AsyncServer("a", log), ThreadServer("t", log)]
    app = make_app(log, servers, before_start=[hook(log, "s"), ahook(log, "a")])
    run_async(run_and(app))
    assert log.has("hook", "s") and log.has("hook", "a")
    assert all(s.returned for s in servers)


def test_run_blocks_a_plain_thread_and_stop_works_from_another_thread() -> None:
    log = Log()
    s = ThreadServer("t", log)
    app = make_app(log, [s])

    def stopper() -> None:
        app.ready.recv_ok(timeout=WAIT)
        app.stop()

    t = threading.Thread(target=stopper)
    t.start()
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            app.run()
        except BaseException as e:
            errors.append(e)

    r = threading.Thread(target=runner)  # a plain thread: no signals there
    r.start()
    r.join(WAIT)
    t.join(WAIT)
    assert not r.is_alive() and not t.is_alive()
    assert errors == []
    assert s.returned


def test_stop_before_run_makes_run_return_without_starting_anything() -> None:
    log = Log()
    s = AsyncServer("s", log)
    app = make_app(log, [s], before_start=hook(log, "bs"))
    app.stop()
    run_async(app.arun())
    assert log.items == []
    assert app.state == "stopped"


def test_run_twice_raises() -> None:
    log = Log()
    app = make_app(log, [AsyncServer("s", log)])
    run_async(run_and(app))
    with pytest.raises(RuntimeError, match="run called twice"):
        run_async(app.arun())


def test_run_inside_a_running_loop_raises_and_points_to_arun() -> None:
    app = make_app(Log(), [])

    async def main() -> None:
        with pytest.raises(RuntimeError, match="arun"):
            app.run()

    run_async(main())


def test_an_app_without_servers_still_runs_its_hooks_in_order() -> None:
    log = Log()
    app = make_app(
        log,
        [],
        before_start=hook(log, "bs"),
        after_start=hook(log, "as"),
        before_stop=hook(log, "bst"),
        after_stop=hook(log, "ast"),
    )
    run_async(run_and(app))
    assert [k[1] for k in log.kinds()] == ["bs", "as", "bst", "ast"]


def test_a_server_with_only_start_and_stop_counts_as_ready_once_started() -> None:
    log = Log()
    stopped = Chan[None]()

    class Minimal:
        def start(self, ctx: context.Context) -> None:
            log.add("start", "minimal")
            stopped.recv_ok(timeout=WAIT)

        def stop(self, ctx: context.Context) -> None:
            stopped.close()

    app = make_app(log, [Minimal()])
    run_async(run_and(app))
    assert log.has("start", "minimal")


# -- failures: go-kratos's known faults ----------------------------------------------


def test_a_failing_server_is_reported_by_its_own_error_not_by_a_cancelled_registration() -> None:
    # kratos #3480/#2977: the failing Start cancels the errgroup ctx, the Register call
    # fails with "context canceled", and Run returns that instead of the real error.
    log = Log()
    bind_error = OSError(errno.EADDRINUSE, "address already in use")
    ok = AsyncServer("ok", log)
    bad = AsyncServer("bad", log, fail=bind_error, fail_after_ready=0.2)
    reg = RecordingRegistrar(log, [], block_register=True)
    app = make_app(log, [ok, bad], registrar=reg)
    with pytest.raises(AppError) as ei:
        run_async(app.arun())
    assert errors_of(ei) == [bind_error]
    assert ok.returned and bad.returned


def test_a_server_failing_before_ready_stops_the_others_and_is_the_error() -> None:
    log = Log()
    err = Boom("cannot listen")
    ok = AsyncServer("ok", log, ready_after=0.05)
    bad = AsyncServer("bad", log, fail=err)
    reg = RecordingRegistrar(log, [])
    app = make_app(log, [ok, bad], registrar=reg, after_start=hook(log, "as"))
    with pytest.raises(AppError) as ei:
        run_async(app.arun())
    assert errors_of(ei) == [err]
    assert not log.has("register") and not log.has("hook", "as")
    assert log.has("stop", "ok") and ok.returned
    assert "server bad" in "".join(err.__notes__)


def test_a_server_failing_while_running_stops_the_app_in_order() -> None:
    log = Log()
    err = Boom("lost the database")
    ok = AsyncServer("ok", log)
    bad = AsyncServer("bad", log, fail=err, fail_after_ready=0.1)
    reg = RecordingRegistrar(log, [])
    app = make_app(log, [ok, bad], registrar=reg, before_stop=hook(log, "bst"))
    with pytest.raises(AppError) as ei:
        run_async(app.arun())
    assert errors_of(ei) == [err]
    assert log.first("hook", "bst") < log.first("deregister") < log.first("stop", "ok")
    assert ok.returned


def test_a_registration_failure_stops_the_servers_that_started() -> None:
    log = Log()
    err = Boom("registry unreachable")
    servers = [AsyncServer("a", log), ThreadServer("t", log)]
    reg = RecordingRegistrar(log, servers, fail_register=err)
    app = make_app(log, servers, registrar=reg, after_start=hook(log, "as"))
    with pytest.raises(AppError) as ei:
        run_async(app.arun())
    assert errors_of(ei) == [err]
    assert not log.has("hook", "as")
    assert not log.has("deregister")  # it never was registered
    assert all(s.returned for s in servers)


def test_an_after_start_failure_stops_the_servers_that_started() -> None:
    log = Log()
    err = Boom("warm-up failed")
    servers = [AsyncServer("a", log), ThreadServer("t", log)]
    reg = RecordingRegistrar(log, servers)
    app = make_app(
        log, servers, registrar=reg, after_start=[hook(log, "as1", fail=err), hook(log, "as2")]
    )
    with pytest.raises(AppError) as ei:
        run_async(app.arun())
    assert errors_of(ei) == [err]
    assert not log.has("hook", "as2")
    assert log.first("deregister") < log.first("stop")
    assert all(s.returned for s in servers)
    assert app.state == "stopped"


def test_a_before_start_failure_starts_nothing() -> None:
    log = Log()
    err = Boom("no config")
    s = AsyncServer("s", log)
    app = make_app(
        log,
        [s],
        before_start=[hook(log, "bs1", fail=err), hook(log, "bs2")],
        after_stop=hook(log, "ast"),
    )
    with pytest.raises(AppError) as ei:
        run_async(app.arun())
    assert errors_of(ei) == [err]
    assert log.kinds() == [("hook", "bs1")]


def test_cancelling_the_parent_context_still_deregisters_and_stops_in_order() -> None:
    log = Log()
    parent, cancel = context.with_cancel(context.background())
    servers = [AsyncServer("a", log), ThreadServer("t", log)]
    reg = RecordingRegistrar(log, servers)
    app = make_app(
        log,
        servers,
        registrar=reg,
        ctx=parent,
        before_stop=hook(log, "bst"),
        after_stop=hook(log, "ast"),
    )
    run_async(run_and(app, cancel))
    assert log.first("hook", "bst") < log.first("deregister") < log.first("stop")
    assert log.last("returned") < log.first("hook", "ast")
    # The stop context is not the cancelled parent: servers get time to drain.
    assert all(item[2] is not None for item in log.items if item[0] == "stop")
    assert all(s.returned for s in servers)


def test_every_hook_error_is_reported_in_order_not_only_the_last() -> None:
    log = Log()
    e1, e2, e3, e4 = Boom("bst1"), Boom("bst2"), Boom("ast1"), Boom("ast2")
    err_dereg = Boom("deregister")
    s = AsyncServer("s", log)
    app = make_app(
        log,
        [s],
        registrar=RecordingRegistrar(log, [s], fail_deregister=err_dereg),
        before_stop=[hook(log, "bst1", fail=e1), ahook(log, "bst2", fail=e2)],
        after_stop=[hook(log, "ast1", fail=e3), ahook(log, "ast2", fail=e4)],
    )
    with pytest.raises(AppError) as ei:
        run_async(run_and(app))
    assert errors_of(ei) == [e1, e2, err_dereg, e3, e4]
    assert s.returned  # a failing stop hook does not keep the servers running


def test_the_stop_timeout_is_enforced_by_the_app_for_a_task_server() -> None:
    log = Log()
    stuck = AsyncServer("stuck", log, stop_hangs=True)
    fine = AsyncServer("fine", log)
    # The after_stop hook comes after the deadline and gets the short grace (STOP_GRACE):
    # an async one, run on the App's own loop, needs no thread to be scheduled in time.
    app = make_app(log, [stuck, fine], stop_timeout=0.5, after_stop=ahook(log, "ast"))
    t0 = time.monotonic()
    with pytest.raises(AppError) as ei:
        run_async(run_and(app))
    elapsed = time.monotonic() - t0
    (err,) = errors_of(ei)
    assert isinstance(err, StopTimeout) and "stuck" in str(err)
    assert elapsed < 0.5 + WAIT  # bounded by the App, not by the server
    assert stuck.returned and fine.returned  # the stuck task was cancelled
    assert log.has("hook", "ast")  # after_stop still ran, in its short grace


def test_the_stop_timeout_is_enforced_by_the_app_for_a_thread_server() -> None:
    log = Log()
    stuck = ThreadServer("stuck", log, stop_hangs=True)
    app = make_app(log, [stuck], stop_timeout=0.3)
    try:
        with pytest.raises(AppError) as ei:
            run_async(run_and(app))
        assert [type(e) for e in errors_of(ei)] == [StopTimeout]
    finally:
        stuck.release.close()  # the abandoned thread can finish now
        deadline = time.monotonic() + WAIT
        while not stuck.returned and time.monotonic() < deadline:
            time.sleep(0.01)
    assert stuck.returned


def test_a_stop_hook_that_hangs_is_abandoned_at_the_deadline() -> None:
    log = Log()
    s = AsyncServer("s", log)

    async def hangs(ctx: context.Context) -> None:
        await Chan[None]().arecv_ok(timeout=WAIT * 3)

    app = make_app(log, [s], stop_timeout=0.3, before_stop=hangs)
    with pytest.raises(AppError) as ei:
        run_async(run_and(app))
    errs = errors_of(ei)
    assert isinstance(errs[0], StopTimeout) and "before_stop" in str(errs[0])
    assert s.returned  # servers were still stopped, with an expired stop context


# -- signals ----------------------------------------------------------------------------


def test_sigterm_stops_the_app_gracefully_and_handlers_are_restored() -> None:
    log = Log()
    s = AsyncServer("s", log)
    before = signal.getsignal(signal.SIGTERM)
    app = App(name="svc", servers=[s], stop_timeout=WAIT)
    run_async(run_and(app, lambda: signal.raise_signal(signal.SIGTERM)))
    assert s.returned
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_during_start_up_stops_the_app_at_once() -> None:
    log = Log()
    never = AsyncServer("never", log, never_ready=True)
    app = App(name="svc", servers=[never], stop_timeout=WAIT)

    async def main() -> None:
        async def send_signal() -> None:
            while not log.has("start", "never"):
                await asyncio.sleep(0.005)
            signal.raise_signal(signal.SIGINT)

        t = asyncio.create_task(send_signal())
        await app.arun()
        await t

    run_async(main())
    assert never.returned
    assert log.has("stop", "never")


def test_a_second_signal_during_stop_forces_a_prompt_exit() -> None:
    log = Log()
    stuck = AsyncServer("stuck", log, stop_hangs=True)
    app = App(name="svc", servers=[stuck], stop_timeout=60.0, after_stop=hook(log, "ast"))

    async def twice() -> None:
        signal.raise_signal(signal.SIGTERM)
        while not log.has("stop", "stuck"):
            await asyncio.sleep(0.005)
        signal.raise_signal(signal.SIGTERM)

    t0 = time.monotonic()
    with pytest.raises(AppError) as ei:
        run_async(run_and(app, twice))
    assert time.monotonic() - t0 < WAIT  # far from the 60 s stop timeout
    errs = errors_of(ei)
    assert [type(e) for e in errs] == [ForcedStop]
    assert "second SIGTERM" in str(errs[0])
    assert stuck.returned  # its task was cancelled
    assert not log.has("hook", "ast")


def test_explicit_signals_outside_the_main_thread_raise() -> None:
    app = App(name="svc", signals=[signal.SIGUSR1])
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            app.run()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=runner)
    t.start()
    t.join(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


# -- arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"name": 3}, TypeError, "name"),
        ({"servers": [object()]}, TypeError, "servers"),
        ({"signals": [99999]}, ValueError, "signals"),
        ({"signals": [signal.SIGKILL]}, ValueError, "SIGKILL"),
        ({"stop_timeout": 0}, ValueError, "stop_timeout"),
        ({"stop_timeout": -1}, ValueError, "stop_timeout"),
        ({"registrar_timeout": "x"}, TypeError, "registrar_timeout"),
        ({"registrar": object()}, TypeError, "registrar"),
        ({"before_start": [1]}, TypeError, "before_start"),
        ({"metadata": {"a": 1}}, TypeError, "metadata"),
        ({"ctx": "ctx"}, TypeError, "ctx"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(
    kwargs: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        App(**kwargs)


def test_registering_with_a_real_registry_and_gone_after_stop() -> None:
    log = Log()
    s = AsyncServer("s", log)
    registry = MemoryRegistry()
    seen: list[list[ServiceInstance]] = []
    app = make_app(
        log,
        [s],
        registrar=registry,
        after_start=lambda ctx: seen.append(registry.get_service("svc", timeout=WAIT)),
    )
    run_async(run_and(app))
    assert [i.id for i in seen[0]] == [app.id]
    assert registry.get_service("svc", timeout=WAIT) == []
    registry.close()


# -- a property: whatever fails, run ends, in order, with exactly the real errors --------


FAILURES = st.sampled_from(["none", "start", "later"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    servers=st.lists(st.tuples(st.booleans(), FAILURES), min_size=0, max_size=3),
    fail_register=st.booleans(),
    fail_after_start=st.booleans(),
    fail_before_stop=st.booleans(),
    fail_after_stop=st.booleans(),
)
def test_whatever_fails_run_ends_in_order_with_only_real_errors(
    servers: list[tuple[bool, str]],
    fail_register: bool,
    fail_after_start: bool,
    fail_before_stop: bool,
    fail_after_stop: bool,
) -> None:
    log = Log()
    injected: list[Exception] = []
    made: list[Any] = []
    start_failures: list[Exception] = []
    for i, (is_async, failure) in enumerate(servers):
        if is_async:
            err = Boom(f"server {i}")
            if failure == "start":
                start_failures.append(err)
            made.append(
                AsyncServer(
                    f"s{i}",
                    log,
                    fail=None if failure == "none" else err,
                    fail_after_ready=0.05 if failure == "later" else None,
                )
            )
            if failure != "none":
                injected.append(err)
        else:
            made.append(ThreadServer(f"s{i}", log))

    def maybe(flag: bool, name: str) -> Exception | None:
        if not flag:
            return None
        err = Boom(name)
        injected.append(err)
        return err

    reg = RecordingRegistrar(log, made, fail_register=maybe(fail_register, "register"))
    app = make_app(
        log,
        made,
        registrar=reg,
        endpoints=["http://x.test"],
        after_start=hook(log, "as", fail=maybe(fail_after_start, "as")),
        before_stop=hook(log, "bst", fail=maybe(fail_before_stop, "bst")),
        after_stop=hook(log, "ast", fail=maybe(fail_after_stop, "ast")),
    )
    errors: list[Exception] = []
    try:
        run_async(run_and(app), timeout=WAIT * 2)
    except AppError as e:
        errors = list(e.exceptions)
    assert all(any(e is i for i in injected) for e in errors), errors
    assert not any(isinstance(e, context.Canceled | context.DeadlineExceeded) for e in errors)
    for err in start_failures:
        assert any(e is err for e in errors)
    if not injected:
        assert errors == []
    assert all(s.returned for s in made)
    if log.has("register") and log.has("ready"):
        assert log.last("ready") < log.first("register")
    if log.has("deregister") and log.has("stop"):
        assert log.first("deregister") < log.first("stop")
    if log.has("hook", "ast") and log.has("stop"):
        assert log.last("returned") < log.first("hook", "ast")
    assert app.state == "stopped"


def test_cancelling_the_task_running_arun_stops_the_app_gracefully() -> None:
    log = Log()
    s = AsyncServer("s", log)
    reg = RecordingRegistrar(log, [s])
    app = make_app(log, [s], registrar=reg, before_stop=hook(log, "bst"))

    async def main() -> None:
        task = asyncio.create_task(app.arun())
        await app.ready.arecv_ok(timeout=WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)

    run_async(main())
    assert log.first("hook", "bst") < log.first("deregister") < log.first("stop", "s")
    assert s.returned and app.state == "stopped"


def test_a_tracker_is_an_app_server_drained_at_stop() -> None:
    from goconc.tracker import CallableSink, Tracker

    delivered: list[Any] = []
    tracker = Tracker(CallableSink(delivered.extend), name="app-server-test")
    log = Log()
    s = AsyncServer("s", log)
    app = make_app(log, [s, tracker])

    async def report() -> None:
        for i in range(50):
            await tracker.aevent(context.background(), {"n": i}, timeout=WAIT)
        app.stop()

    run_async(run_and(app, report))
    assert [json.loads(e.data)["n"] for e in delivered] == list(range(50))
    assert tracker.statistics().closed
