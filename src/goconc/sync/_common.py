"""What the sync primitives share: the misuse error, the Locker protocol, deadlines."""

from __future__ import annotations

from time import monotonic
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .._park import check_timeout

__all__ = ["Deadline", "LockContext", "Locker", "SyncError"]


class SyncError(RuntimeError):
    """Misuse of a sync primitive, raised at the call site with Go's message.

    Go treats these as fatal errors or panics ("sync: unlock of unlocked
    mutex", "sync: negative WaitGroup counter", "semaphore: released more
    than held"); goconc raises this exception instead and leaves the
    primitive as it was before the bad call.  It is a ``RuntimeError``, as
    ``threading.Lock().release()`` of an unlocked lock raises one.
    """


@runtime_checkable
class Locker(Protocol):
    """Go's ``sync.Locker``: anything with ``lock()`` and ``unlock()``.

    :class:`Mutex`, :class:`RWMutex` (its write side) and
    ``RWMutex.rlocker()`` are Lockers, and also offer ``alock()`` for tasks.
    """

    def lock(self) -> None: ...

    def unlock(self) -> None: ...


class LockContext:
    """``with`` and ``async with`` for a lock: ``lock``/``alock`` on entry, ``unlock`` on exit."""

    __slots__ = ()

    def lock(self) -> None:
        raise NotImplementedError

    async def alock(self) -> None:
        raise NotImplementedError

    def unlock(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.lock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unlock()

    async def __aenter__(self) -> Self:
        await self.alock()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unlock()


class Deadline:
    """A timeout turned into a deadline, for operations that park more than once."""

    __slots__ = ("at",)

    def __init__(self, timeout: float | None) -> None:
        check_timeout(timeout)
        self.at = None if timeout is None else monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None for no deadline."""
        at = self.at
        if at is None:
            return None
        return max(0.0, at - monotonic())
