"""Go's concurrency patterns, ready to use from threads and asyncio tasks.

* Timing out: :func:`with_timeout` / :func:`awith_timeout`.
* Moving on (replicated requests): :func:`first` / :func:`afirst`.
* Pipelines: :func:`generate`, :func:`map_stage`; fan-in :func:`fan_in`,
  fan-out :func:`fan_out`; :func:`or_done`.
* Bounded parallelism: :func:`parallel_map` / :func:`aparallel_map`.
* Dropping under overload: :func:`drop` and :class:`Dropper`.

Lifetimes are the point.  Every goroutine a pattern starts ends when its
inputs are closed or its context ends, and every output channel is closed
when its goroutines are done, so a consumer's ``for v in out`` always ends.
A function that takes a context (``first``, ``with_timeout``) is given it as
its first argument; coroutine functions also run inside
``context.scope(ctx)``, so asyncio code that knows nothing of goconc is
cancelled when that context ends.

Where a function runs: a coroutine function runs as an asyncio task (on the
running loop, or on the runtime's loop when called from a plain thread), any
other callable on a goroutine thread.  So the thread and the asyncio forms
below take both kinds.

A pipeline in threads::

    with context.with_cancel(context.background()) as ctx:
        nums = generate(range(100), ctx=ctx)
        squares = map_stage(lambda x: x * x, nums, workers=4, ctx=ctx)
        total = sum(squares)

asyncio::

    results = await aparallel_map(fetch, urls, limit=8)
    fastest = await afirst(ctx, query_replica_a, query_replica_b)
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from . import context as _context
from . import errgroup as _errgroup
from .chan import Chan, aselect
from .errgroup import _describe
from .runtime import _is_coroutine_function, go_named

__all__ = [
    "DropStatistics",
    "Dropper",
    "afirst",
    "aparallel_map",
    "awith_timeout",
    "drop",
    "drop_statistics",
    "fan_in",
    "fan_out",
    "first",
    "generate",
    "map_stage",
    "or_done",
    "parallel_map",
    "with_timeout",
]

T = TypeVar("T")
R = TypeVar("R")

_log = logging.getLogger("goconc.patterns")

# The outcome of one call: (True, result) or (False, exception).
_Outcome = tuple[bool, Any]


# -- calls bounded by a context ----------------------------------------------------------


def _spawn_call(
    out: Chan[_Outcome], ctx: _context.Context, fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    """Call ``fn(ctx, *args)`` in a goroutine that sends its outcome to ``out``.

    ``out`` must have room for the outcome (a buffer slot per call), so the
    goroutine never blocks on it: it ends as soon as ``fn`` returns, whether
    or not anybody still waits for the outcome.
    """
    call = _acall_into if _is_coroutine_function(fn) else _call_into
    go_named(_describe(fn), call, out, ctx, fn, args)


def _call_into(
    out: Chan[_Outcome], ctx: _context.Context, fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    try:
        outcome: _Outcome = (True, fn(ctx, *args))
    except BaseException as e:
        outcome = (False, e)
    out.send(outcome)


async def _acall_into(
    out: Chan[_Outcome], ctx: _context.Context, fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    try:
        async with _context.scope(ctx):
            outcome: _Outcome = (True, await fn(ctx, *args))
    except BaseException as e:  # CancelledError too: the call did not complete
        outcome = (False, e)
    out.send(outcome)


def _unwrap(outcome: _Outcome) -> Any:
    ok, value = outcome
    if not ok:
        raise value
    return value


@overload
def with_timeout(
    seconds: float,
    fn: Callable[..., Awaitable[R]],
    *args: Any,
    ctx: _context.Context | None = None,
) -> R: ...
@overload
def with_timeout(
    seconds: float, fn: Callable[..., R], *args: Any, ctx: _context.Context | None = None
) -> R: ...
def with_timeout(
    seconds: float,
    fn: Callable[..., Any],
    *args: Any,
    ctx: _context.Context | None = None,
) -> Any:
    """Return ``fn(c, *args)``, or raise once ``seconds`` have passed.

    ``c`` is a context derived from ``ctx`` that ends after ``seconds``: a
    well-behaved ``fn`` passes it to its blocking calls and stops.  The call
    runs in its own goroutine, which delivers its outcome into a one-slot
    buffer: if the caller has stopped waiting, the goroutine still finishes
    and exits instead of blocking forever on a send nobody receives (the
    leaking sender of the classic search-with-timeout bug).

    Raises what ``fn`` raised, ``context.DeadlineExceeded`` (a
    ``TimeoutError``) after ``seconds``, or ``ctx.err()`` if ``ctx`` ends
    first.

    ::

        page = with_timeout(0.5, search, "golang")  # search(ctx, query)
    """
    parent = _context.background() if ctx is None else ctx
    with _context.with_timeout(parent, seconds) as c:
        out: Chan[_Outcome] = Chan(1)
        _spawn_call(out, c, fn, args)
        return _unwrap(out.recv(ctx=c))


@overload
async def awith_timeout(
    seconds: float,
    fn: Callable[..., Awaitable[R]],
    *args: Any,
    ctx: _context.Context | None = None,
) -> R: ...
@overload
async def awith_timeout(
    seconds: float, fn: Callable[..., R], *args: Any, ctx: _context.Context | None = None
) -> R: ...
async def awith_timeout(
    seconds: float,
    fn: Callable[..., Any],
    *args: Any,
    ctx: _context.Context | None = None,
) -> Any:
    """The asyncio form of :func:`with_timeout`.

    A coroutine function runs in the current task, inside
    ``context.scope(c)``: it is cancelled when ``c`` ends, and the
    cancellation surfaces as ``DeadlineExceeded`` (or ``ctx.err()``).  A plain
    function runs in a goroutine thread, as in :func:`with_timeout`.

    ::

        page = await awith_timeout(0.5, asearch, "golang")
    """
    parent = _context.background() if ctx is None else ctx
    async with _context.with_timeout(parent, seconds) as c:
        if _is_coroutine_function(fn):
            async with _context.scope(c):
                return await fn(c, *args)
        out: Chan[_Outcome] = Chan(1)
        _spawn_call(out, c, fn, args)
        return _unwrap(await out.arecv(ctx=c))


# -- moving on: the first success wins -------------------------------------------------


def _check_fns(fns: tuple[Callable[..., Any], ...]) -> None:
    if not fns:
        raise ValueError("first: at least one function is needed")
    for i, fn in enumerate(fns):
        if not callable(fn):
            raise TypeError(f"first: fns[{i}] must be callable, got {type(fn).__name__}")


class _Race:
    """The bookkeeping of one :func:`first` call."""

    def __init__(self, ctx: _context.Context | None, fns: tuple[Callable[..., Any], ...]) -> None:
        _check_fns(fns)
        parent = _context.background() if ctx is None else ctx
        self.ctx, self.cancel = _context.with_cancel(parent)
        self.out: Chan[_Outcome] = Chan(len(fns))
        self.left = len(fns)
        self.errors: list[BaseException] = []
        for fn in fns:
            _spawn_call(self.out, self.ctx, fn, ())

    def take(self, outcome: _Outcome) -> bool:
        """Account for one outcome; True if it is the winner."""
        ok, value = outcome
        self.left -= 1
        if ok:
            return True
        self.errors.append(value)
        if not self.left:
            raise BaseExceptionGroup(f"first: all {len(self.errors)} calls failed", self.errors)
        return False


@overload
def first(ctx: _context.Context | None, *fns: Callable[..., Awaitable[R]]) -> R: ...
@overload
def first(ctx: _context.Context | None, *fns: Callable[..., R]) -> R: ...
def first(ctx: _context.Context | None, *fns: Callable[..., Any]) -> Any:
    """Call every ``fn(c)`` concurrently; return the first successful result.

    Go's "moving on" (replicated requests): the other calls are cancelled
    through ``c``, a child of ``ctx`` (coroutine functions also through
    ``context.scope``), and nobody waits for them; each delivers its outcome
    into a buffer with room for all, so none is left blocked.

    Raises an ``ExceptionGroup`` of every error if all calls fail, and
    ``ctx.err()`` if ``ctx`` ends first.

    ::

        row = first(ctx, replica_a.query, replica_b.query)  # query(ctx)
    """
    race = _Race(ctx, fns)
    try:
        while True:
            outcome = race.out.recv(ctx=ctx)
            if race.take(outcome):
                result: Any = outcome[1]
                return result
    finally:
        race.cancel()


@overload
async def afirst(ctx: _context.Context | None, *fns: Callable[..., Awaitable[R]]) -> R: ...
@overload
async def afirst(ctx: _context.Context | None, *fns: Callable[..., R]) -> R: ...
async def afirst(ctx: _context.Context | None, *fns: Callable[..., Any]) -> Any:
    """The asyncio form of :func:`first`; coroutine functions run as tasks on this loop."""
    race = _Race(ctx, fns)
    try:
        while True:
            outcome = await race.out.arecv(ctx=ctx)
            if race.take(outcome):
                result: Any = outcome[1]
                return result
    finally:
        race.cancel()


# -- pipelines ---------------------------------------------------------------------------


def _stopped(ctx: _context.Context | None, e: BaseException) -> bool:
    """Whether ``e`` is ``ctx`` ending (a normal stop), rather than a failure."""
    return (
        ctx is not None
        and isinstance(e, (_context.Canceled, _context.DeadlineExceeded))
        and ctx.err() is not None
    )


def generate(
    items: Iterable[T] | AsyncIterable[T],
    *,
    ctx: _context.Context | None = None,
    cap: int = 0,
) -> Chan[T]:
    """Send every item on a new channel, then close it; return the channel.

    The first stage of a pipeline.  One goroutine sends (a task for an
    async iterable, a thread otherwise); it ends, closing the channel, when
    the items run out or ``ctx`` ends.  If iterating ``items`` raises, the
    channel is closed and the exception goes to the runtime's panic handler.

    ::

        for n in generate(range(3)):
            print(n)
    """
    out: Chan[T] = Chan(cap)
    if isinstance(items, AsyncIterable):
        go_named("generate", _agenerate, items, out, ctx)
    elif isinstance(items, Iterable):
        go_named("generate", _generate, items, out, ctx)
    else:
        raise TypeError(f"generate: items must be iterable, got {type(items).__name__}")
    return out


def _generate(items: Iterable[T], out: Chan[T], ctx: _context.Context | None) -> None:
    try:
        for v in items:
            out.send(v, ctx=ctx)
    except BaseException as e:
        if not _stopped(ctx, e):
            raise
    finally:
        out.close()


async def _agenerate(items: AsyncIterable[T], out: Chan[T], ctx: _context.Context | None) -> None:
    try:
        async for v in items:
            await out.asend(v, ctx=ctx)
    except BaseException as e:
        if not _stopped(ctx, e):
            raise
    finally:
        out.close()


class _Stage:
    """Workers sharing one output channel: the last to finish closes it.

    A failing worker cancels the stage's context, so its siblings stop too.
    """

    def __init__(self, n: int, out: Chan[Any], parent: _context.Context | None) -> None:
        self.out = out
        base = _context.background() if parent is None else parent
        self.ctx, self._cancel = _context.with_cancel(base)
        self._mu = threading.Lock()
        self._left = n  # guarded by _mu: workers not yet finished

    def failed(self, e: BaseException) -> bool:
        """Called with what a worker raised; True if it is a failure to re-raise."""
        if _stopped(self.ctx, e):
            return False
        self._cancel()
        return True

    def worker_done(self) -> None:
        with self._mu:
            self._left -= 1
            last = self._left == 0
        if last:
            self._cancel()
            self.out.close()


def _check_workers(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return n


@overload
def map_stage(
    fn: Callable[[T], Awaitable[R]],
    in_ch: Chan[T],
    workers: int = 1,
    *,
    ctx: _context.Context | None = None,
    cap: int = 0,
    group: _errgroup.Group | None = None,
) -> Chan[R]: ...
@overload
def map_stage(
    fn: Callable[[T], R],
    in_ch: Chan[T],
    workers: int = 1,
    *,
    ctx: _context.Context | None = None,
    cap: int = 0,
    group: _errgroup.Group | None = None,
) -> Chan[R]: ...
def map_stage(
    fn: Callable[[Any], Any],
    in_ch: Chan[Any],
    workers: int = 1,
    *,
    ctx: _context.Context | None = None,
    cap: int = 0,
    group: _errgroup.Group | None = None,
) -> Chan[Any]:
    """A pipeline stage: ``workers`` goroutines send ``fn(v)`` for each ``v`` of ``in_ch``.

    Returns the output channel, closed once every worker has ended: when
    ``in_ch`` is closed and drained, or when ``ctx`` (default: ``group.ctx``)
    ends.  With more than one worker, outputs may come out of input order.

    If ``fn`` raises, the stage stops (its other workers too) and the
    exception is the worker's error: with ``group=``, the workers run in that
    errgroup, so the error is the group's (and cancels ``group.ctx``, which
    stops every stage sharing it); without, it goes to the runtime's panic
    handler.

    ::

        g, ctx = errgroup.with_context(parent)
        lines = generate(read_lines(path), ctx=ctx)
        parsed = map_stage(parse, lines, workers=4, group=g)
        for rec in parsed:
            store(rec)
        err = g.wait()
    """
    n = _check_workers("workers", workers)
    if not isinstance(in_ch, Chan):
        raise TypeError(f"map_stage: in_ch must be a Chan, got {type(in_ch).__name__}")
    if ctx is None and group is not None:
        ctx = group.ctx
    out: Chan[Any] = Chan(cap)
    stage = _Stage(n, out, ctx)
    worker = _amap_worker if _is_coroutine_function(fn) else _map_worker
    name = f"map_stage({_describe(fn)})"
    for _ in range(n):
        if group is not None:
            group.go(worker, fn, in_ch, stage)
        else:
            go_named(name, worker, fn, in_ch, stage)
    return out


def _map_worker(fn: Callable[[Any], Any], in_ch: Chan[Any], stage: _Stage) -> None:
    c = stage.ctx
    try:
        while True:
            v, ok = in_ch.recv_ok(ctx=c)
            if not ok:
                return
            stage.out.send(fn(v), ctx=c)
    except BaseException as e:
        if stage.failed(e):
            raise
    finally:
        stage.worker_done()


async def _amap_worker(fn: Callable[[Any], Any], in_ch: Chan[Any], stage: _Stage) -> None:
    c = stage.ctx
    try:
        while True:
            v, ok = await in_ch.arecv_ok(ctx=c)
            if not ok:
                return
            await stage.out.asend(await fn(v), ctx=c)
    except BaseException as e:
        if stage.failed(e):
            raise
    finally:
        stage.worker_done()


def fan_in(*chans: Chan[T], ctx: _context.Context | None = None, cap: int = 0) -> Chan[T]:
    """Merge channels into one; return it.

    One goroutine (a task) receives from every input with ``select`` and
    forwards each value; the output is closed when every input is closed and
    drained, or when ``ctx`` ends (then the value in flight, if any, is not
    delivered).  Values of one input keep their order.

    ::

        for v in fan_in(worker_a_results, worker_b_results):
            ...
    """
    for i, ch in enumerate(chans):
        if not isinstance(ch, Chan):
            raise TypeError(f"fan_in: chans[{i}] must be a Chan, got {type(ch).__name__}")
    out: Chan[T] = Chan(cap)
    go_named("fan_in", _fan_in, list(chans), out, ctx)
    return out


async def _fan_in(
    cases: list[Chan[Any] | None], out: Chan[Any], ctx: _context.Context | None
) -> None:
    live = len(cases)
    try:
        while live:
            sel = await aselect(*cases, ctx=ctx)
            if not sel.ok:
                cases[sel.index] = None
                live -= 1
                continue
            await out.asend(sel.value, ctx=ctx)
    except BaseException as e:
        if not _stopped(ctx, e):
            raise
    finally:
        out.close()


def fan_out(
    src: Chan[T],
    n: int,
    fn: Callable[[T], object],
    *,
    ctx: _context.Context | None = None,
) -> _errgroup.Group:
    """Start ``n`` workers that each receive from ``src`` and call ``fn(v)``.

    Returns the errgroup the workers run in: ``g.wait()`` waits for them and
    returns the first error.  The workers end when ``src`` is closed and
    drained, when ``ctx`` ends, or when one of them fails (the failure
    cancels ``g.ctx``, which stops the others).  A coroutine ``fn`` makes
    the workers tasks.

    ::

        g = fan_out(jobs, 4, handle)
        ...
        jobs.close()
        if (err := g.wait()) is not None:
            raise err
    """
    k = _check_workers("n", n)
    if not isinstance(src, Chan):
        raise TypeError(f"fan_out: src must be a Chan, got {type(src).__name__}")
    g = _errgroup.Group(ctx)
    worker = _afan_out_worker if _is_coroutine_function(fn) else _fan_out_worker
    for _ in range(k):
        g.go(worker, src, fn, g.ctx)
    return g


def _fan_out_worker(src: Chan[Any], fn: Callable[[Any], object], ctx: _context.Context) -> None:
    try:
        while True:
            v, ok = src.recv_ok(ctx=ctx)
            if not ok:
                return
            fn(v)
    except (_context.Canceled, _context.DeadlineExceeded) as e:
        if not _stopped(ctx, e):
            raise


async def _afan_out_worker(src: Chan[Any], fn: Callable[[Any], Any], ctx: _context.Context) -> None:
    try:
        while True:
            v, ok = await src.arecv_ok(ctx=ctx)
            if not ok:
                return
            await fn(v)
    except (_context.Canceled, _context.DeadlineExceeded) as e:
        if not _stopped(ctx, e):
            raise


def or_done(ctx: _context.Context, ch: Chan[T], *, cap: int = 0) -> Chan[T]:
    """A channel that yields ``ch``'s values until ``ch`` closes or ``ctx`` ends.

    Go's or-done channel: a consumer ranging over the result stops at
    cancellation without checking ``ctx`` itself.  One goroutine (a task)
    forwards; it ends, closing the result, when ``ch`` is closed and drained
    or ``ctx`` ends.  A value taken from ``ch`` at the moment ``ctx`` ends is
    not delivered: the consumer asked to stop.
    """
    if not isinstance(ch, Chan):
        raise TypeError(f"or_done: ch must be a Chan, got {type(ch).__name__}")
    out: Chan[T] = Chan(cap)
    go_named("or_done", _or_done, ctx, ch, out)
    return out


async def _or_done(ctx: _context.Context, ch: Chan[Any], out: Chan[Any]) -> None:
    try:
        while True:
            v, ok = await ch.arecv_ok(ctx=ctx)
            if not ok:
                return
            await out.asend(v, ctx=ctx)
    except BaseException as e:
        if not _stopped(ctx, e):
            raise
    finally:
        out.close()


# -- bounded parallel map --------------------------------------------------------------


class _Feed(Generic[T]):
    """The items of a parallel map, handed out one at a time with their index."""

    def __init__(self, items: Iterable[T]) -> None:
        self._mu = threading.Lock()
        # Guarded by _mu: the items not yet handed out (consumed lazily), each
        # finished call's result by index, and whether the items ran out.
        self._it: Iterator[tuple[int, T]] = enumerate(items)
        self._results: dict[int, Any] = {}
        self._exhausted = False

    def next(self) -> tuple[int, T] | None:
        """The next item and its index, or None when there is none left."""
        with self._mu:
            item = next(self._it, None)
            if item is None:
                self._exhausted = True
            return item

    def put(self, i: int, result: Any) -> None:
        with self._mu:
            self._results[i] = result

    def ordered(self) -> list[Any] | None:
        """Every result in item order, or None if some item was never called."""
        with self._mu:
            if not self._exhausted:
                return None
            return [self._results[i] for i in range(len(self._results))]


def _map_workers(
    fn: Callable[..., Any], items: Iterable[Any], limit: int, ctx: _context.Context | None
) -> tuple[_errgroup.Group, _Feed[Any]]:
    n = _check_workers("limit", limit)
    if not callable(fn):
        raise TypeError(f"parallel_map: fn must be callable, got {type(fn).__name__}")
    if isinstance(items, Sized):
        n = max(1, min(n, len(items)))
    feed = _Feed(items)
    g = _errgroup.Group(ctx)
    worker = _apm_worker if _is_coroutine_function(fn) else _pm_worker
    for _ in range(n):
        g.go(worker, fn, feed, g.ctx)
    return g, feed


def _pm_worker(fn: Callable[[Any], Any], feed: _Feed[Any], ctx: _context.Context) -> None:
    while ctx.err() is None:
        item = feed.next()
        if item is None:
            return
        feed.put(item[0], fn(item[1]))


async def _apm_worker(fn: Callable[[Any], Any], feed: _Feed[Any], ctx: _context.Context) -> None:
    while ctx.err() is None:
        item = feed.next()
        if item is None:
            return
        feed.put(item[0], await fn(item[1]))


def _map_result(
    err: BaseException | None, ctx: _context.Context | None, feed: _Feed[Any]
) -> list[Any]:
    if err is not None:
        raise err
    results = feed.ordered()
    if results is None:  # stopped early, not by an error: by ctx
        raise (ctx.err() if ctx is not None else None) or _context.Canceled()
    return results


@overload
def parallel_map(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    limit: int,
    *,
    ctx: _context.Context | None = None,
) -> list[R]: ...
@overload
def parallel_map(
    fn: Callable[[T], R], items: Iterable[T], limit: int, *, ctx: _context.Context | None = None
) -> list[R]: ...
def parallel_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    limit: int,
    *,
    ctx: _context.Context | None = None,
) -> list[Any]:
    """``[fn(x) for x in items]``, with at most ``limit`` calls running at once.

    Results are in the order of ``items``.  ``limit`` worker goroutines take
    the items one at a time (``items`` is consumed lazily, under a lock), so
    the bound holds by construction and no goroutine is started per item.
    At the first error no new call starts; the calls already running finish,
    then that error is raised (with its traceback).  If ``ctx`` ends, no new
    call starts and ``ctx.err()`` is raised once the running ones finish.

    ::

        sizes = parallel_map(lambda p: os.stat(p).st_size, paths, limit=8)
    """
    g, feed = _map_workers(fn, items, limit, ctx)
    return _map_result(g.wait(), ctx, feed)


@overload
async def aparallel_map(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    limit: int,
    *,
    ctx: _context.Context | None = None,
) -> list[R]: ...
@overload
async def aparallel_map(
    fn: Callable[[T], R], items: Iterable[T], limit: int, *, ctx: _context.Context | None = None
) -> list[R]: ...
async def aparallel_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    limit: int,
    *,
    ctx: _context.Context | None = None,
) -> list[Any]:
    """The asyncio form of :func:`parallel_map`: ``limit`` worker tasks on this loop.

    ::

        pages = await aparallel_map(fetch, urls, limit=8)
    """
    g, feed = _map_workers(fn, items, limit, ctx)
    return _map_result(await g.wait_async(), ctx, feed)


# -- drop --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DropStatistics:
    """How many values a :class:`Dropper` sent and dropped."""

    sent: int
    dropped: int


class Dropper(Generic[T]):
    """Send without ever blocking: a value that does not fit is dropped and counted.

    For bounded buffers in front of slow consumers (metrics, logs, events
    whose loss is acceptable under overload): ``send(v)`` puts ``v`` in the
    channel if a receiver is waiting or the buffer has room, and otherwise
    counts a drop.  Drops are never silent: they are counted
    (:meth:`statistics`) and logged as a warning on the 1st, 2nd, 4th, 8th...
    drop of this dropper.  Safe to share among threads and tasks.

    ::

        events = Chan[Event](1024)
        d = Dropper(events, name="events")
        d.send(ev)                 # never blocks
        d.statistics().dropped
    """

    def __init__(self, ch: Chan[T], *, name: str = "") -> None:
        if not isinstance(ch, Chan):
            raise TypeError(f"Dropper: ch must be a Chan, got {type(ch).__name__}")
        self._ch = ch
        self.name = name or repr(ch)
        self._mu = threading.Lock()
        self._sent = 0  # guarded by _mu
        self._dropped = 0  # guarded by _mu

    def send(self, value: T) -> bool:
        """Send ``value`` if that needs no waiting; else count a drop.

        Returns whether it was sent.  Raises ``ChanClosed`` if the channel is
        closed (a closed channel is a bug, not an overload).
        """
        sent = self._ch.try_send(value)
        with self._mu:
            if sent:
                self._sent += 1
                return True
            self._dropped += 1
            dropped = self._dropped
        if dropped & (dropped - 1) == 0:
            _log.warning("goconc: dropped %d value(s) on %s: channel full", dropped, self.name)
        return False

    def statistics(self) -> DropStatistics:
        with self._mu:
            return DropStatistics(sent=self._sent, dropped=self._dropped)


_droppers_mu = threading.Lock()
# guarded by _droppers_mu: the Dropper behind drop() for each channel.
_droppers: weakref.WeakKeyDictionary[Chan[Any], Dropper[Any]] = weakref.WeakKeyDictionary()


def _dropper_for(ch: Chan[Any]) -> Dropper[Any]:
    with _droppers_mu:
        d = _droppers.get(ch)
        if d is None:
            d = _droppers[ch] = Dropper(ch)
        return d


def drop(ch: Chan[T], value: T) -> bool:
    """Send ``value`` on ``ch`` without blocking, or count a drop; return whether it was sent.

    The counts are kept per channel (see :func:`drop_statistics`) and drops
    are logged as :class:`Dropper` does.
    """
    if not isinstance(ch, Chan):
        raise TypeError(f"drop: ch must be a Chan, got {type(ch).__name__}")
    return _dropper_for(ch).send(value)


def drop_statistics(ch: Chan[Any]) -> DropStatistics:
    """What :func:`drop` sent and dropped on ``ch`` so far."""
    with _droppers_mu:
        d = _droppers.get(ch)
    return DropStatistics(0, 0) if d is None else d.statistics()
