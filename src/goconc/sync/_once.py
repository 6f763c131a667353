"""sync.Once, once_func, once_value, once_values: run a function exactly once.

The fast path is one attribute read (``_done``), written only after the
function has finished, under a goconc :class:`Mutex`; callers that arrive
while the function runs block on that mutex (threads park, tasks suspend),
so no caller returns before the one call has finished, as Go requires.

A recursive call (the function calling its own Once, directly or from a
task on the same event loop thread) would deadlock, as in Go; goconc raises
:class:`SyncError` instead.

Happens-before (goconc.race): the end of the function releases the Once;
every return from ``do``/``ado`` or from a ``once_*`` function acquires it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

from .. import _racehooks
from ._common import SyncError
from ._mutex import Mutex

__all__ = ["Once", "once_func", "once_value", "once_values"]

T = TypeVar("T")
T1 = TypeVar("T1")
T2 = TypeVar("T2")

_RECURSIVE = "sync: Once called again before its function returned, on the same thread (deadlock)"


class Once:
    """Go's ``sync.Once``: ``do(fn)`` calls ``fn`` only the first time.

    Every ``do`` returns only after that one call has returned.  If ``fn``
    raises, the exception propagates to the caller that ran it and the Once
    still counts as done: later calls do nothing (as in Go, where a panic in
    ``f`` counts as returning).  ``ado(fn)`` is the asyncio form; its ``fn``
    may be a plain or a coroutine function, and tasks waiting for it do not
    block their event loop.  (A task calling the blocking ``do`` while
    another task runs ``fn`` under ``ado`` would block its loop: use ``ado``
    in asyncio code.)

    Threads::

        _init = sync.Once()

        def client() -> Client:
            _init.do(_connect)       # the first caller connects; the others wait
            return _client

    asyncio::

        await _init.ado(_aconnect)
    """

    __slots__ = ("__weakref__", "_done", "_m", "_runner")

    def __init__(self) -> None:
        # Set (under _m) once the function has returned or raised; read without a lock.
        self._done = False
        self._m = Mutex()
        # Guarded by _m: (thread ident, task) running the function, or None.
        self._runner: tuple[int, asyncio.Task[Any] | None] | None = None

    def __repr__(self) -> str:
        return f"<sync.Once done={self._done}>"

    def done(self) -> bool:
        """Whether the function has been called and has finished."""
        return self._done

    def do(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` if no ``do``/``ado`` of this Once has called a function yet.

        Blocks until that call has finished.  Raises what ``fn`` raises (to
        its caller only), and :class:`SyncError` for a recursive call.
        """
        if not self._done:
            runner = self._runner
            if runner is not None and runner[0] == threading.get_ident():
                raise SyncError(_RECURSIVE)
            with self._m:
                if not self._done:
                    self._runner = (threading.get_ident(), None)
                    try:
                        fn()
                    finally:
                        self._finish()
        if _racehooks.enabled:
            _racehooks.acquire(self)

    async def ado(self, fn: Callable[[], object | Awaitable[object]]) -> None:
        """The asyncio form of :meth:`do`; ``fn`` may return an awaitable, which is awaited.

        If the task running ``fn`` is cancelled, the Once counts as done (as
        for any exception).
        """
        if not self._done:
            runner = self._runner
            task = asyncio.current_task()
            if runner is not None and runner == (threading.get_ident(), task):
                raise SyncError(_RECURSIVE)
            async with self._m:
                if not self._done:
                    self._runner = (threading.get_ident(), task)
                    try:
                        result = fn()
                        if inspect.isawaitable(result):
                            await result
                    finally:
                        self._finish()
        if _racehooks.enabled:
            _racehooks.acquire(self)

    def _finish(self) -> None:
        self._runner = None
        if _racehooks.enabled:
            _racehooks.release(self)
        self._done = True


class _OnceCall(Generic[T]):
    """The function returned by once_func/once_value/once_values."""

    __slots__ = ("__weakref__", "_done", "_exc", "_f", "_m", "_runner", "_tb", "_value")

    def __init__(self, f: Callable[[], T]) -> None:
        if not callable(f):
            raise TypeError(f"f must be callable, got {type(f).__name__}")
        if inspect.iscoroutinefunction(f):
            raise TypeError("f must be a plain function, not a coroutine function (use Once.ado)")
        self._f: Callable[[], T] | None = f  # dropped after the call, so it can be collected
        self._m = Mutex()
        # Written under _m before _done is set; read without a lock after it is.
        self._value: T | None = None
        self._exc: BaseException | None = None
        self._tb: TracebackType | None = None
        self._runner: int | None = None
        self._done = False

    def __repr__(self) -> str:
        return f"<sync.once function done={self._done}>"

    def __call__(self) -> T:
        if not self._done:
            self._call()
        if _racehooks.enabled:
            _racehooks.acquire(self)
        exc = self._exc
        if exc is not None:
            raise exc.with_traceback(self._tb)
        return self._value  # type: ignore[return-value]

    def _call(self) -> None:
        if self._runner == threading.get_ident():
            raise SyncError(_RECURSIVE)
        with self._m:
            if self._done:
                return
            f = self._f
            assert f is not None
            self._runner = threading.get_ident()
            try:
                self._value = f()
            except BaseException as e:  # re-raised on every call, as Go re-panics
                self._exc = e
                self._tb = e.__traceback__
            finally:
                self._f = None
                self._runner = None
                if _racehooks.enabled:
                    _racehooks.release(self)
                self._done = True


def once_func(f: Callable[[], object]) -> Callable[[], None]:
    """Go 1.21's ``OnceFunc``: a function that calls ``f`` only the first time it is called.

    Concurrent callers wait for that call.  If ``f`` raised, every call
    raises the same exception.  ``f`` is released after the call.

    Example::

        close_once = sync.once_func(conn.close)
        close_once(); close_once()      # closes once
    """
    call = _OnceCall(f)

    def run() -> None:
        call()

    run.__wrapped__ = f  # type: ignore[attr-defined]
    return run


def once_value(f: Callable[[], T]) -> Callable[[], T]:
    """Go 1.21's ``OnceValue``: a function that calls ``f`` once and returns its value every time.

    If ``f`` raised, every call raises the same exception.

    Example::

        config = sync.once_value(load_config)
        config().timeout                # loaded on the first call only
    """
    return _OnceCall(f)


def once_values(f: Callable[[], tuple[T1, T2]]) -> Callable[[], tuple[T1, T2]]:
    """Go 1.21's ``OnceValues``: as :func:`once_value` for a function returning a pair.

    Example::

        read = sync.once_values(lambda: (path.read_bytes(), path.stat().st_mtime))
        data, mtime = read()
    """
    return _OnceCall(f)
