"""Contexts: cancellation, deadlines and request-scoped values, as in Go.

A :class:`Context` carries a cancellation signal, a deadline and values
across API boundaries, to threads and asyncio tasks alike.  Every blocking
call in goconc takes ``ctx=`` and raises ``ctx.err()`` once that context
ends, so cancelling one context stops a whole tree of work wherever it is
parked: in a thread, in a task, on another event loop.

How to use contexts well (Go's rules, which hold here too):

* Pass a context explicitly, as the first parameter, to each function that
  needs it (``def fetch(ctx, url)``).  Do not store it in an object or a
  global: a stored context outlives the operation it was meant to bound.
* Never pass ``None`` for a context you were given; use :func:`todo` when
  unsure which one to use, :func:`background` at the top of a program.
* Always call the ``cancel`` function a ``with_*`` constructor returns, as
  soon as the work it bounds is over (or use the ``with`` form, which does
  it): cancelling releases the context's timer and detaches it from its
  parent, which would otherwise keep it until the parent ends.
* Use values only for request-scoped data that crosses process and API
  boundaries (a request id, credentials), not to pass optional parameters;
  use a private object as the key.

Threads::

    ctx, cancel = context.with_timeout(context.background(), 2.0)
    try:
        v = ch.recv(ctx=ctx)  # raises context.DeadlineExceeded after 2 s
    finally:
        cancel()

    with context.with_cancel(parent) as ctx:  # cancelled when the block ends
        go(worker, ctx, jobs)

asyncio::

    async with context.with_timeout(parent, 2.0) as ctx:
        v = await ch.arecv(ctx=ctx)
    async with context.scope(ctx):  # asyncio code that knows nothing of goconc
        await aiohttp_session.get(url)  # cancelled when ctx ends; raises ctx.err()

Guarantees: once ``err()`` is not None it never changes; cancelling a
context cancels all its descendants with the same error and cause; a child
never outlives its parent's deadline; cancel functions are idempotent and
may be called from any thread, task or loop; a cancelled context is detached
from its parent, so a long-lived parent does not accumulate dead children.
Each context guards its own state with its own lock (no reliance on the GIL).
"""

from __future__ import annotations

import _thread
import asyncio
import datetime as _dt
import functools
import logging
import math
import time as _time
from asyncio import events
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, TypeAlias

from . import _racehooks, _timers
from .chan import Chan, ChanClosed

__all__ = [
    "CancelCauseFunc",
    "CancelCausePair",
    "CancelFunc",
    "CancelPair",
    "Canceled",
    "Context",
    "DeadlineExceeded",
    "after_func",
    "background",
    "cause",
    "scope",
    "todo",
    "with_cancel",
    "with_cancel_cause",
    "with_deadline",
    "with_deadline_cause",
    "with_timeout",
    "with_timeout_cause",
    "with_value",
    "without_cancel",
]

_log = logging.getLogger("goconc.context")


class Canceled(Exception):
    """The error of a context that was cancelled: "context canceled"."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or ("context canceled",)))


class DeadlineExceeded(TimeoutError):
    """The error of a context whose deadline passed: "context deadline exceeded".

    Also a ``TimeoutError``, so ``except TimeoutError`` catches both a
    ``timeout=`` and a context deadline.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or ("context deadline exceeded",)))


_ErrType: TypeAlias = "type[Canceled] | type[DeadlineExceeded]"

#: ``cancel()``: end the context (idempotent, callable from any thread or task).
CancelFunc: TypeAlias = Callable[[], None]
#: ``cancel(cause)``: end the context recording ``cause`` (None means Canceled).
CancelCauseFunc: TypeAlias = Callable[[BaseException | None], None]


class _DoneChan(Chan[None]):
    """A context's done channel: receive-only for everyone but its context."""

    __slots__ = ()

    def close(self) -> None:
        raise TypeError("context: the done channel is closed by its context only")

    def send(self, value: None, *args: Any, **kwargs: Any) -> None:
        raise TypeError("context: cannot send on a done channel")

    async def asend(self, value: None, *args: Any, **kwargs: Any) -> None:
        raise TypeError("context: cannot send on a done channel")

    def _end(self) -> None:
        try:
            Chan.close(self)
        except ChanClosed:
            pass


_shared_mu: Final = _thread.allocate_lock()
_shared: dict[str, _DoneChan] = {}  # guarded by _shared_mu: "never" and "closed"


def _shared_done(kind: str) -> _DoneChan:
    d = _shared.get(kind)
    if d is None:
        with _shared_mu:
            d = _shared.get(kind)
            if d is None:
                d = _DoneChan()
                if kind == "closed":
                    d._end()
                _shared[kind] = d
    return d


class Context:
    """A context: cancellation signal, deadline and values, shared by a tree of work.

    Contexts are made only by this module's functions (:func:`background`,
    :func:`with_cancel`, :func:`with_timeout`, :func:`with_value`...); each
    derived context has a parent and ends when its parent ends.  Contexts
    are immutable from the outside and safe to share among any number of
    threads and tasks.

    * ``ctx.done``: a channel closed when the context ends (for ``select``).
    * ``ctx.err()``: None while live, then a fresh :class:`Canceled` or
      :class:`DeadlineExceeded` instance on every call.
    * ``ctx.deadline()``: the ``time.monotonic()`` time at which the context
      ends by itself, or None.
    * ``ctx.value(key)``: the value bound to ``key`` here or in an ancestor.
    """

    # _parent: the context this one derives from (None for the roots).
    # _canceller: for contexts that do not cancel by themselves, the nearest
    # ancestor that does (None if none can ever end this context).
    __slots__ = ("__weakref__", "_canceller", "_parent")

    _parent: Context | None
    _canceller: _CancelCtx | None

    def __init__(self) -> None:
        raise TypeError("contexts are made by context.background(), with_cancel() and the like")

    @property
    def done(self) -> Chan[None]:
        """A channel closed when this context ends; it never receives a value.

        Receive from it in ``select`` (``select(ctx.done, jobs)``); a
        context that can never end returns a channel that is never closed.
        """
        c = self._canceller
        return _shared_done("never") if c is None else c.done

    def err(self) -> BaseException | None:
        """None while live; then ``Canceled()`` or ``DeadlineExceeded()`` (a fresh instance)."""
        c = self._canceller
        return None if c is None else c.err()

    def deadline(self) -> float | None:
        """When this context ends by itself (``time.monotonic()`` seconds), or None."""
        c = self._canceller
        return None if c is None else c._deadline

    def value(self, key: object) -> Any:
        """The value bound to ``key`` by the nearest :func:`with_value`, or None."""
        c: Context | None = self
        while c is not None:
            if type(c) is _ValueCtx and (c._key is key or c._key == key):
                return c._val
            c = c._parent
        return None

    def _nearest(self) -> _CancelCtx | None:
        return self._canceller

    def _add_waiter(self, fn: Callable[[], object]) -> object | None:
        """Call ``fn()`` once when this context ends; None (and no call) if it has ended.

        Returns a token for :meth:`_remove_waiter`.  ``fn`` runs in the
        thread that ends the context and must be quick.  O(1).
        """
        c = self._canceller
        return _NEVER_TOKEN if c is None else c._add_waiter(fn)

    def _remove_waiter(self, token: object) -> None:
        """Forget a waiter added by :meth:`_add_waiter` (no-op if it ran).  O(1)."""
        c = self._canceller
        if c is not None:
            c._remove_waiter(token)

    def _label(self) -> str:
        return ".?"

    def __repr__(self) -> str:
        labels: list[str] = []
        c: Context | None = self
        while c is not None:
            labels.append(c._label())
            c = c._parent
        if len(labels) > 16:
            labels[8:-8] = [f".<{len(labels) - 16} more>"]
        return "".join(reversed(labels))


_NEVER_TOKEN: Final = object()


class _EmptyCtx(Context):
    """The roots: never cancelled, no deadline, no values."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._parent = None
        self._canceller = None
        self._name = name

    def _label(self) -> str:
        return self._name


class _ValueCtx(Context):
    __slots__ = ("_key", "_val")

    def __init__(self, parent: Context, key: object, val: object) -> None:
        self._parent = parent
        self._canceller = parent._nearest()
        self._key = key
        self._val = val

    def _label(self) -> str:
        return f".WithValue({self._key!r}, <{type(self._val).__name__}>)"


class _WithoutCancelCtx(Context):
    __slots__ = ()

    def __init__(self, parent: Context) -> None:
        self._parent = parent
        self._canceller = None

    def _label(self) -> str:
        return ".WithoutCancel"


class _CancelCtx(Context):
    """A context that can be cancelled (and, subclassed, one with a deadline).

    ``_canceller`` is unused here (this context is its own canceller, and a
    reference to itself would make every context a reference cycle).
    """

    __slots__ = (
        "_cause",
        "_children",
        "_deadline",
        "_done",
        "_err",
        "_mu",
        "_nwait",
        "_pc",
        "_timer",
        "_waiters",
    )

    def __init__(self, parent: Context) -> None:
        self._parent = parent
        self._mu = _thread.allocate_lock()
        # Guarded by _mu.  _err goes from None to an error class exactly once
        # (it is also read without the lock: a single reference that never
        # changes once set); _cause is set with it and never changes after.
        self._err: _ErrType | None = None
        self._cause: BaseException | None = None
        # Guarded by _mu; created lazily; all None once the context ended
        # (except _done, which keeps the closed channel).
        self._done: _DoneChan | None = None
        self._children: set[_CancelCtx] | None = None
        self._waiters: dict[int, Callable[[], object]] | None = None
        self._nwait = 0  # guarded by _mu; the last waiter token handed out
        self._timer: _timers.Handle | None = None  # guarded by _mu
        # The ancestor whose _children holds this context (None if none).
        # Set by _attach before the context is shared, reset to None by the
        # cancel that detaches it; concurrent cancels may both detach, which
        # is harmless (discard is idempotent, under the ancestor's lock).
        self._pc: _CancelCtx | None = None
        self._deadline: float | None = parent.deadline()

    @property
    def done(self) -> Chan[None]:
        d = self._done
        if d is None:
            with self._mu:
                d = self._done
                if d is None:
                    d = self._done = (
                        _shared_done("closed") if self._err is not None else _DoneChan()
                    )
        if _racehooks.enabled and self._err is not None:
            _racehooks.acquire(self)  # (its done may be the shared closed channel)
        return d

    def err(self) -> BaseException | None:
        e = self._err
        if e is None:
            return None
        if _racehooks.enabled:
            _racehooks.acquire(self)
        return e()

    def deadline(self) -> float | None:
        return self._deadline

    def _nearest(self) -> _CancelCtx:
        return self

    def _add_waiter(self, fn: Callable[[], object]) -> object | None:
        with self._mu:
            if self._err is not None:
                if _racehooks.enabled:
                    _racehooks.acquire(self)  # the caller observes the end
                return None
            w = self._waiters
            if w is None:
                w = self._waiters = {}
            self._nwait = token = self._nwait + 1
            w[token] = fn
            return token

    def _remove_waiter(self, token: object) -> None:
        with self._mu:
            w = self._waiters
            if w is not None:
                w.pop(token, None)  # type: ignore[call-overload]

    def _label(self) -> str:
        return ".WithCancel"

    def _attach(self) -> None:
        """Register with the nearest cancellable ancestor, or end now if it has ended."""
        p = self._parent._nearest()  # type: ignore[union-attr]
        if p is None:
            return
        with p._mu:
            err = p._err
            if err is None:
                ch = p._children
                if ch is None:
                    ch = p._children = set()
                ch.add(self)
                self._pc = p
                return
            cause_ = p._cause
        if _racehooks.enabled:
            _racehooks.acquire(p)  # the parent's end happens before this child's
        self._cancel(err, cause_, detach=False)

    def _end(
        self, err: _ErrType, cause_: BaseException | None, detach: bool
    ) -> set[_CancelCtx] | None:
        """Mark this context ended, detach it if asked, wake its waiters.

        Returns its children, to be ended by the caller (None if this
        context had already ended).  Detaching comes before any wake-up, so
        whoever sees the context end also sees it detached.
        """
        with self._mu:
            if self._err is not None:
                return None
            if _racehooks.enabled:
                _racehooks.release(self)  # cancel -> end observed (err(), done)
            self._err = err
            self._cause = cause_
            done, children, waiters, timer = self._done, self._children, self._waiters, self._timer
            self._children = self._waiters = self._timer = None
        p = self._pc
        if detach and p is not None:
            self._pc = None
            with p._mu:
                ch = p._children
                if ch is not None:
                    ch.discard(self)
        if timer is not None:
            timer.cancel()
        if done is not None:
            done._end()
        if waiters:
            for fn in waiters.values():
                try:
                    fn()
                except Exception:
                    _log.exception("goconc: context waiter %r raised", fn)
        return children

    def _cancel(self, err: _ErrType, cause_: BaseException | None, detach: bool = True) -> None:
        """End this context and its whole subtree (iteratively: trees may be deep)."""
        children = self._end(err, cause_, detach)
        if not children:
            return
        # The children were taken from this context under its lock, so each
        # is ended exactly once here, and none needs detaching: the set that
        # held them is gone.
        stack = list(children)
        while stack:
            more = stack.pop()._end(err, cause_, False)
            if more:
                stack.extend(more)

    def _cancel_by_caller(self) -> None:
        self._cancel(Canceled, None)

    def _cancel_by_caller_with_cause(self, cause_: BaseException | None = None) -> None:
        if cause_ is not None and not isinstance(cause_, BaseException):
            raise TypeError(f"cause must be an exception or None, got {type(cause_).__name__}")
        self._cancel(Canceled, cause_)


class _DeadlineCtx(_CancelCtx):
    __slots__ = ()

    def _label(self) -> str:
        d = self._deadline
        assert d is not None
        return f".WithDeadline({d:.3f} [{d - _time.monotonic():.3f}s])"


class CancelPair(tuple[Context, CancelFunc]):
    """``(ctx, cancel)``, which also works as ``with``/``async with`` (cancel on exit)."""

    __slots__ = ()

    def __enter__(self) -> Context:
        return self[0]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self[1]()

    async def __aenter__(self) -> Context:
        return self[0]

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self[1]()


class CancelCausePair(tuple[Context, CancelCauseFunc]):
    """``(ctx, cancel)`` where ``cancel(cause)`` records why; also a ``with`` block.

    Leaving the block by an exception cancels with that exception as the
    cause; leaving it normally cancels with no cause (so ``cause(ctx)`` is
    ``Canceled``).
    """

    __slots__ = ()

    def __enter__(self) -> Context:
        return self[0]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self[1](exc)

    async def __aenter__(self) -> Context:
        return self[0]

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self[1](exc)


_new_pair = tuple.__new__

_BACKGROUND: Final = _EmptyCtx("context.Background")
_TODO: Final = _EmptyCtx("context.TODO")


def background() -> Context:
    """The root context: never cancelled, no deadline, no values.

    Use it at the top of a program (``main``, a server's start-up, tests)
    and derive everything else from it.
    """
    return _BACKGROUND


def todo() -> Context:
    """A root context like :func:`background`, marking "not decided yet".

    Use it where a context is needed but the caller does not pass one yet;
    it shows up as ``context.TODO`` in reprs so it can be found and fixed.
    """
    return _TODO


def _check_parent(parent: object) -> None:
    if not isinstance(parent, Context):
        hint = " (unpack it: ctx, cancel = ...)" if isinstance(parent, tuple) else ""
        raise TypeError(f"parent must be a goconc Context, got {type(parent).__name__}{hint}")


def with_cancel(parent: Context) -> CancelPair:
    """A child of ``parent`` that ends when ``cancel()`` is called or ``parent`` ends.

    Returns ``(ctx, cancel)``.  Call ``cancel`` as soon as the work is done,
    or use the ``with`` form::

        ctx, cancel = context.with_cancel(parent)
        try:
            go(worker, ctx)
            ...
        finally:
            cancel()

        with context.with_cancel(parent) as ctx:      # threads
            ...
        async with context.with_cancel(parent) as ctx:  # asyncio
            ...

    ``ctx.err()`` becomes ``Canceled()`` (or the parent's error if the parent
    ended first).  Raises ``TypeError`` if ``parent`` is not a Context.
    """
    _check_parent(parent)
    c = _CancelCtx(parent)
    c._attach()
    return _new_pair(CancelPair, (c, c._cancel_by_caller))


def with_cancel_cause(parent: Context) -> CancelCausePair:
    """Like :func:`with_cancel`, but ``cancel(cause)`` records why.

    ``ctx.err()`` is still ``Canceled()``; :func:`cause` returns the cause
    (``cancel(None)`` or no argument records ``Canceled``)::

        ctx, cancel = context.with_cancel_cause(parent)
        cancel(ConnectionResetError("peer went away"))
        context.cause(ctx)  # ConnectionResetError('peer went away')
    """
    _check_parent(parent)
    c = _CancelCtx(parent)
    c._attach()
    return _new_pair(CancelCausePair, (c, c._cancel_by_caller_with_cause))


def _monotonic_deadline(t: object) -> float:
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise TypeError("deadline must be a float or a timezone-aware datetime, got naive")
        now = _dt.datetime.now(_dt.UTC)
        return _time.monotonic() + (t - now).total_seconds()
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"deadline must be a float or an aware datetime, got {type(t).__name__}")
    if math.isnan(t):
        raise ValueError("deadline must not be NaN")
    return float(t)


def _check_seconds(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"seconds must be >= 0, got {seconds!r}")
    return float(seconds)


def _with_deadline(parent: Context, d: float, cause_: BaseException | None) -> CancelPair:
    _check_parent(parent)
    if cause_ is not None and not isinstance(cause_, BaseException):
        raise TypeError(f"cause must be an exception or None, got {type(cause_).__name__}")
    pd = parent.deadline()
    if pd is not None and pd <= d:
        # The parent ends first anyway: this is just a cancellable child.
        c = _CancelCtx(parent)
        c._attach()
        return _new_pair(CancelPair, (c, c._cancel_by_caller))
    c = _DeadlineCtx(parent)
    c._deadline = d
    c._attach()
    if d <= _time.monotonic():
        c._cancel(DeadlineExceeded, cause_)
    elif d != math.inf:
        expire = functools.partial(c._cancel, DeadlineExceeded, cause_)
        with c._mu:
            if c._err is None:
                c._timer = _timers.call_at(d, expire)
    return _new_pair(CancelPair, (c, c._cancel_by_caller))


def with_deadline(parent: Context, t: float | _dt.datetime) -> CancelPair:
    """A child of ``parent`` that ends at ``t`` at the latest.

    ``t`` is a ``time.monotonic()`` time (or a timezone-aware ``datetime``,
    converted; a naive one raises ``TypeError``).  If ``parent`` ends
    earlier, the child ends with it and keeps the parent's deadline: a
    child never outlives its parent.  At ``t``, ``ctx.err()`` becomes
    ``DeadlineExceeded()``.  A ``t`` already past gives a context that has
    already ended.  Returns ``(ctx, cancel)``; call ``cancel`` once done to
    release the timer at once (or use ``with``).
    """
    return _with_deadline(parent, _monotonic_deadline(t), None)


def with_deadline_cause(
    parent: Context, t: float | _dt.datetime, cause: BaseException | None
) -> CancelPair:
    """Like :func:`with_deadline`, recording ``cause`` when the deadline passes.

    The cause is used only if the deadline ends the context; ``cancel()``
    does not set it.
    """
    return _with_deadline(parent, _monotonic_deadline(t), cause)


def with_timeout(parent: Context, seconds: float) -> CancelPair:
    """``with_deadline(parent, time.monotonic() + seconds)``; ``seconds`` >= 0.

    ::

        with context.with_timeout(parent, 2.0) as ctx:
            reply = replies.recv(ctx=ctx)  # DeadlineExceeded after 2 s

        async with context.with_timeout(parent, 2.0) as ctx:
            reply = await replies.arecv(ctx=ctx)

    Raises ``ValueError`` for a negative or NaN ``seconds``.
    """
    s = _check_seconds(seconds)
    return _with_deadline(parent, _time.monotonic() + s, None)


def with_timeout_cause(parent: Context, seconds: float, cause: BaseException | None) -> CancelPair:
    """Like :func:`with_timeout`, recording ``cause`` if the timeout ends the context."""
    s = _check_seconds(seconds)
    return _with_deadline(parent, _time.monotonic() + s, cause)


def with_value(parent: Context, key: object, value: object) -> Context:
    """A child of ``parent`` carrying ``value`` under ``key``.

    ``ctx.value(key)`` finds it here and in every descendant (a nearer
    ``with_value`` of the same key shadows it).  Keys compare by identity,
    then equality: define a private key (``_REQUEST_ID = object()``) so no
    other package can collide with it.  Raises ``TypeError`` for a None key.
    """
    _check_parent(parent)
    if key is None:
        raise TypeError("key must not be None")
    return _ValueCtx(parent, key, value)


def without_cancel(parent: Context) -> Context:
    """A child of ``parent`` that keeps its values but never ends.

    No deadline, ``err()`` always None, ``cause()`` None, ``done`` never
    closed.  Use it for work that must finish even though the request that
    started it was cancelled, such as a server's graceful stop
    (``with_timeout(without_cancel(ctx), 5)``).
    """
    _check_parent(parent)
    return _WithoutCancelCtx(parent)


def cause(ctx: Context) -> BaseException | None:
    """Why ``ctx`` ended: the cause given to the cancel that ended it (or an ancestor).

    None while ``ctx`` is live (and always for :func:`without_cancel`
    contexts); ``ctx.err()`` when the cancellation carried no cause.
    """
    c = ctx._nearest()
    if c is None:
        return None
    with c._mu:
        err, cause_ = c._err, c._cause
    if err is None:
        return None
    if _racehooks.enabled:
        _racehooks.acquire(c)
    return cause_ if cause_ is not None else err()


class _AfterFunc:
    __slots__ = ("_ctx", "_fn", "_mu", "_state", "_token")

    def __init__(self, ctx: Context, fn: Callable[[], object]) -> None:
        self._ctx = ctx
        self._fn = fn
        self._mu = _thread.allocate_lock()
        self._state = 0  # guarded by _mu: 0 pending, 1 started, 2 stopped
        self._token: object | None = None  # set once, before stop() is handed out

    def _fire(self) -> None:
        with self._mu:
            if self._state != 0:
                return
            self._state = 1
        from .runtime import go

        go(self._fn)

    def stop(self) -> bool:
        with self._mu:
            if self._state != 0:
                return False
            self._state = 2
        if self._token is not None:
            self._ctx._remove_waiter(self._token)
        return True


def after_func(ctx: Context, fn: Callable[[], object]) -> Callable[[], bool]:
    """Run ``fn()`` in its own goroutine once ``ctx`` ends (at once if it has).

    Returns ``stop``: ``stop()`` returns True if it prevented the call, False
    if ``fn`` has already been started or ``stop`` was already called; it
    does not wait for a running ``fn``.  Registrations are independent::

        stop = context.after_func(ctx, conn.close)  # unblock a blocking read
        try:
            data = conn.recv(4096)
        finally:
            stop()

    Raises ``TypeError`` if ``fn`` is not callable.
    """
    _check_parent(ctx)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    a = _AfterFunc(ctx, fn)
    token = ctx._add_waiter(a._fire)
    if token is None:
        a._fire()
    else:
        a._token = token
    return a.stop


_CREATED: Final = 0
_ENTERED: Final = 1
_CANCELLING: Final = 2
_EXITED: Final = 3


class scope:  # lower case on purpose: `async with context.scope(ctx)`, like asyncio.timeout
    """Bridge a context to asyncio code that knows nothing of goconc.

    ::

        async with context.scope(ctx):
            await third_party_call()  # cancelled when ctx ends

    When ``ctx`` ends (cancel from any thread or loop, or its deadline), the
    current task is cancelled; on leaving the block, the resulting
    ``CancelledError`` is replaced by ``ctx.err()`` (``Canceled`` or
    ``DeadlineExceeded``; chained from the context's cause if one was
    given).  Other cancellations are left alone: if the task is also
    cancelled from elsewhere, ``CancelledError`` propagates, as with
    ``asyncio.timeout``.  If ``ctx`` has already ended, entering raises
    ``ctx.err()`` at once and the block does not run.  Enter it once only.
    """

    __slots__ = ("_cancelling", "_ctx", "_loop", "_state", "_task", "_token")

    def __init__(self, ctx: Context) -> None:
        if not isinstance(ctx, Context):
            raise TypeError(f"ctx must be a goconc Context, got {type(ctx).__name__}")
        self._ctx = ctx
        # All below are touched only on the task's loop thread.
        self._state = _CREATED
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancelling = 0
        self._token: object | None = None

    async def __aenter__(self) -> Context:
        if self._state != _CREATED:
            raise RuntimeError("context.scope has already been entered")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("context.scope must be used inside an asyncio task")
        err = self._ctx.err()
        if err is not None:
            self._state = _EXITED
            raise err
        self._task = task
        self._loop = events.get_running_loop()
        self._cancelling = task.cancelling()
        self._state = _ENTERED
        token = self._ctx._add_waiter(self._on_done)
        if token is None:  # ended just now
            self._state = _EXITED
            raise self._ctx.err() or Canceled()
        self._token = token
        return self._ctx

    def _on_done(self) -> None:
        # Any thread.  Always go through the loop, so that the cancellation
        # reaches the task where it is suspended inside the block.
        loop = self._loop
        assert loop is not None
        if events._get_running_loop() is loop:
            loop.call_soon(self._fire)
        else:
            try:
                loop.call_soon_threadsafe(self._fire)
            except RuntimeError:
                pass  # the loop is closed: no task is left to cancel

    def _fire(self) -> None:
        if self._state == _ENTERED:
            self._state = _CANCELLING
            assert self._task is not None
            self._task.cancel("goconc context ended")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._ctx._remove_waiter(token)
        state, self._state = self._state, _EXITED
        if state != _CANCELLING:
            return
        assert self._task is not None
        if (
            self._task.uncancel() <= self._cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            err = self._ctx.err() or Canceled()
            why = cause(self._ctx)
            raise err from (why if why is not None and type(why) is not type(err) else exc)
