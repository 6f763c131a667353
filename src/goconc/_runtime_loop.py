"""The runtime's own event loop, for task goroutines started from plain threads.

``go(coroutine_function)`` called where no event loop is running puts the
task on this loop: one daemon thread (``goconc-loop``) running an asyncio
event loop, started on first use.  Submissions are batched: a submitter wakes
the loop (one ``call_soon_threadsafe``, a write to the loop's self-pipe) only
when the batch was empty, so a burst of ``go()`` calls from a thread costs one
wake-up, not one each.

At interpreter exit (``atexit``) the loop cancels its remaining tasks, gives
them a bounded time to finish (as ``asyncio.run`` does), closes asynchronous
generators and stops; a goroutine that refuses to end within the bound is
abandoned quietly, as Go abandons goroutines when ``main`` returns.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final

__all__ = ["LOOP_NAME", "configure", "loop_ident", "shutdown", "submit"]

LOOP_NAME: Final = "goconc-loop"
# How long exit waits for cancelled goroutines of the runtime loop to finish.
_EXIT_GRACE: Final = 1.0

# Called on the loop thread as start(loop, item) for every submitted item.
Starter = Callable[[asyncio.AbstractEventLoop, Any], None]
# Called (from the exiting thread) for items never started because of shutdown.
Dropper = Callable[[Any], None]

_mu = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None  # guarded by _mu; None until first use
_thread: threading.Thread | None = None  # guarded by _mu; the thread running _loop
_closed = False  # guarded by _mu; True once the exit hook ran: no more submissions
# guarded by _mu: items submitted but not yet started; non-empty iff a _drain
# call is scheduled on _loop.
_pending: deque[Any] = deque()
_hook_registered = False  # guarded by _mu
_starter: Starter | None = None  # set once by configure()
_dropper: Dropper | None = None  # set once by configure()


def configure(starter: Starter, dropper: Dropper) -> None:
    """Say how to start a submitted item on the loop, and how to drop one never started."""
    global _starter, _dropper
    _starter, _dropper = starter, dropper


def submit(item: Any) -> asyncio.AbstractEventLoop:
    """Queue ``item`` to be started on the runtime loop; return that loop.

    Raises ``RuntimeError`` after interpreter shutdown began.
    """
    with _mu:
        loop = _loop if _loop is not None else _start_locked()
        wake = not _pending
        _pending.append(item)
    if wake:
        loop.call_soon_threadsafe(_drain, loop)
    return loop


def loop_ident() -> int | None:
    """The OS thread ident of the runtime loop's thread, if it is running."""
    with _mu:
        t = _thread
    return t.ident if t is not None else None


def _start_locked() -> asyncio.AbstractEventLoop:
    global _loop, _thread, _hook_registered
    if _closed:
        raise RuntimeError("goconc: cannot start a goroutine: the interpreter is shutting down")
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=_run, args=(loop,), name=LOOP_NAME, daemon=True)
    t.start()
    _loop, _thread = loop, t
    if not _hook_registered:
        atexit.register(shutdown)
        _hook_registered = True
    return loop


def _run(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        asyncio.set_event_loop(None)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    with _mu:
        batch = list(_pending)
        _pending.clear()
    starter = _starter
    assert starter is not None, "configure() was not called"
    for item in batch:
        starter(loop, item)


async def _cancel_all() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=_EXIT_GRACE)
        for t in stuck:
            # Abandoned, as Go abandons goroutines at exit: no "destroyed but
            # pending" report for a task that was given its chance to end.
            t._log_destroy_pending = False  # type: ignore[attr-defined]
    await asyncio.get_running_loop().shutdown_asyncgens()


def shutdown(*, final: bool = True) -> None:
    """Stop the runtime loop: cancel its tasks (bounded in time), then close it.

    ``final`` (the exit hook) refuses later submissions; ``final=False`` lets
    the next submission start a fresh loop.  Items never started are passed to
    the dropper given to :func:`configure`.
    """
    global _loop, _thread, _closed
    with _mu:
        loop, t = _loop, _thread
        _loop = _thread = None
        _closed = _closed or final
        dropped = list(_pending)
        _pending.clear()
    for item in dropped:
        if _dropper is not None:
            _dropper(item)
    if loop is None or t is None:
        return
    if t.is_alive():
        try:
            fut = asyncio.run_coroutine_threadsafe(_cancel_all(), loop)
            fut.result(timeout=_EXIT_GRACE + 1.0)
        except BaseException:  # the loop is wedged in blocking code: abandon it
            return
        loop.call_soon_threadsafe(loop.stop)
        t.join(timeout=_EXIT_GRACE)
    if not t.is_alive() and not loop.is_closed():
        loop.close()


def _after_fork_in_child() -> None:
    # The loop's thread does not exist in a forked child: start afresh there.
    global _mu, _loop, _thread
    _mu = threading.Lock()
    _loop = _thread = None
    _pending.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
