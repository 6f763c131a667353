"""The happens-before engine: vector clocks, shadow state, FastTrack checks.

Each goroutine (an OS thread or an asyncio task; two tasks on one loop are two
goroutines) has a vector clock: ``vc[tid]`` is its own epoch, ``vc[u]`` the
last epoch of goroutine ``u`` known to happen before its present.  Every goconc
synchronising operation moves clocks through ``goconc._racehooks`` (see there
for the edges).  Every watched location keeps, as in FastTrack (Flanagan and
Freund, PLDI 2009), the epoch of its last write and either the epoch of its
last read or, only while reads are concurrent, a read clock.  An access that
is not ordered after a conflicting previous access is a data race.

Clock ownership: a goroutine's own ``vc`` is read and changed only by that
goroutine (a parked goroutine's clock travels as a copy in its waiter), so it
needs no lock; the clocks of synchronisation objects and the shadow state are
shared and guarded by ``_lock``.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from asyncio import current_task, events
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from . import _report

Clock = dict[int, int]
#: A stack as taken at an access: (code, line) pairs, innermost first.
RawStack = tuple[tuple[CodeType, int], ...]

__all__ = ["G", "Clock", "install", "uninstall"]

_lock = threading.Lock()
_tids = itertools.count(1)
_cur: ContextVar[G | None] = ContextVar("goconc_race_goroutine", default=None)

# Guarded by _lock:
_sync: dict[int, Clock] = {}  # id(sync object) -> its clock
_slots: dict[tuple[int, int], Clock] = {}  # (id(channel), buffer slot) -> clock
_chan_counts: dict[int, list[int]] = {}  # id(channel) -> [values sent into buffer, received]
_closed: dict[int, Clock] = {}  # id(channel) -> clock at close
_shadow: dict[Any, _Shadow] = {}  # location key -> shadow state
_keys_of: dict[int, set[Any]] = {}  # id(watched object) -> its location keys in _shadow
# Ids of watched objects that died, appended by their finalizers (which may run
# inside a locked section, during a garbage collection) and forgotten under
# _lock before the next access: a new object that reuses the id starts clean.
_dead: deque[int] = deque()

_MAX_FRAMES = 16


@dataclass(eq=False)
class G:
    """The race state of one goroutine."""

    tid: int
    vc: Clock
    owner: int
    label: str
    created_at: RawStack = ()
    finished: bool = field(default=False)
    #: The OS thread it runs on (a task: its loop's thread).
    thread: int = field(default_factory=threading.get_ident)
    #: Plain asyncio tasks it created on its thread, not yet known to be done
    #: (only touched on that thread).
    children: list[tuple[Any, G]] | None = None

    def epoch(self) -> int:
        return self.vc[self.tid]

    def tick(self) -> None:
        self.vc[self.tid] += 1


@dataclass(eq=False)
class _Access:
    g: G
    write: bool
    stack: RawStack


@dataclass(eq=False)
class _Shadow:
    desc: str
    w_tid: int = 0
    w_clk: int = 0
    w_acc: _Access | None = None
    # Either one read epoch (r_clock is None) or a read clock while
    # concurrent reads are live.
    r_tid: int = 0
    r_clk: int = 0
    r_acc: _Access | None = None
    r_clock: dict[int, tuple[int, _Access]] | None = None


def _task() -> Any:
    loop = events._get_running_loop()
    return current_task(loop) if loop is not None else None


def _owner() -> int:
    task = _task()
    return id(task) if task is not None else threading.get_ident()


def current() -> G:
    """The race state of the running goroutine, created on first use."""
    g = _cur.get()
    task = _task()
    owner = id(task) if task is not None else threading.get_ident()
    if g is None or g.owner != owner:
        g = _adopt(g, task, owner)
    elif g.children:
        _collect(g)
    return g


def _adopt(parent: G | None, task: Any, owner: int) -> G:
    """The race state of a thread or task that goconc did not start.

    It inherits what its context carried (an asyncio task inherits its
    creator's state as of now), so nothing it does is falsely reported
    against its creator.  A plain asyncio task (``asyncio.run``'s main task,
    ``create_task``, ``gather``'s) whose creator runs on the same thread is
    also noted as its creator's child: once it is done, its end happens
    before what its creator does next (see :func:`_collect`).
    """
    thread = threading.get_ident()
    if parent is not None and parent.children and parent.thread == thread:
        _collect(parent)
    tid = next(_tids)
    vc = dict(parent.vc) if parent is not None else {}
    vc[tid] = 1
    if task is None:
        t = threading.current_thread()
        label = "main thread" if t is threading.main_thread() else f"thread {t.name}"
    else:
        label = f"task {task.get_name()}"
    g = G(tid, vc, owner, label, thread=thread)
    _cur.set(g)
    if task is not None and parent is not None and parent.thread == thread:
        if parent.children is None:
            parent.children = []
        parent.children.append((task, g))
    return g


def _collect(g: G) -> None:
    """Join the clocks of ``g``'s plain asyncio tasks that are done into ``g``'s.

    asyncio's own waits (``await task``, ``gather``, ``TaskGroup``,
    ``run_until_complete``) are how a creator learns that its tasks ended,
    and the detector cannot see them; so a creator acquires the end of each
    of its tasks that is done by the time it next does anything the detector
    sees (whether or not it awaited it: a missed race is possible there, a
    false one is not).  Only for tasks on the creator's own thread: neither
    side is running now, so no lock is needed.  A done task's own tasks are
    collected with it; those still running are handed to ``g``.
    """
    children = g.children
    g.children = None
    live: list[tuple[Any, G]] = []
    for task, child in children or ():
        if not task.done():
            live.append((task, child))
            continue
        if child.children:
            _collect(child)
            if child.children:
                live.extend(child.children)
                child.children = None
        child.finished = True
        _join(g.vc, child.vc)
    g.children = live or None


def _join(into: Clock, other: Clock) -> None:
    for tid, clk in other.items():
        if into.get(tid, 0) < clk:
            into[tid] = clk


# -- synchronisation edges ------------------------------------------------------------


def park_clock() -> Clock:
    g = current()
    snapshot = dict(g.vc)
    g.tick()
    return snapshot


def acquire(obj: object) -> None:
    g = current()
    with _lock:
        clock = _sync.get(id(obj))
        if clock is not None:
            _join(g.vc, clock)


def release(obj: object) -> None:
    g = current()
    with _lock:
        clock = _sync.setdefault(id(obj), {})
        _join(clock, g.vc)
    g.tick()


def release_acquire(obj: object) -> None:
    g = current()
    with _lock:
        clock = _sync.setdefault(id(obj), {})
        _join(g.vc, clock)
        _join(clock, g.vc)
    g.tick()


def acquire_clock(clock: Clock | None) -> None:
    if clock:
        _join(current().vc, clock)


def handoff(w: Any) -> None:
    g = current()
    w.race_hb = dict(g.vc)
    g.tick()


def absorb(w: Any) -> None:
    if w.race_vc:
        _join(current().vc, w.race_vc)


def fork() -> tuple[Clock, RawStack]:
    g = current()
    token = (dict(g.vc), _stack(2))
    g.tick()
    return token


def start(token: Any, gid: int = 0, name: str = "", created_at: str = "") -> None:
    tid = next(_tids)
    vc: Clock = dict(token[0]) if token else {}
    vc[tid] = 1
    label = f"goroutine {gid}" + (f" ({name})" if name else "")
    _cur.set(G(tid, vc, _owner(), label, token[1] if token else ()))


def finish() -> Clock:
    g = current()
    g.finished = True
    final = dict(g.vc)
    g.tick()
    return final


def chan_send(ch: object, cap: int, w: Any = None) -> None:
    """A value enters the buffer of ``ch`` (from the current goroutine or parked ``w``)."""
    if cap <= 0:
        return
    with _lock:
        counts = _chan_counts.setdefault(id(ch), [0, 0])
        slot = _slots.setdefault((id(ch), counts[0] % cap), {})
        counts[0] += 1
        if w is None:
            g = current()
            _join(g.vc, slot)
            _join(slot, g.vc)
        elif w.race_vc:
            # The parked sender acquires the slot through the waker's hand-off.
            _join(slot, w.race_vc)
    if w is None:
        current().tick()


def chan_recv(ch: object, cap: int, w: Any = None) -> None:
    """A value leaves the buffer of ``ch`` (to the current goroutine or parked ``w``)."""
    if cap <= 0:
        return
    with _lock:
        counts = _chan_counts.setdefault(id(ch), [0, 0])
        slot = _slots.setdefault((id(ch), counts[1] % cap), {})
        counts[1] += 1
        if w is None:
            g = current()
            _join(g.vc, slot)
            _join(slot, g.vc)
        elif w.race_vc:
            # The parked receiver acquires the slot through the waker's hand-off.
            _join(slot, w.race_vc)
    if w is None:
        current().tick()


def chan_close(ch: object) -> None:
    g = current()
    with _lock:
        _closed[id(ch)] = dict(g.vc)
    g.tick()


def chan_recv_closed(ch: object) -> None:
    g = current()
    with _lock:
        clock = _closed.get(id(ch))
        if clock is not None:
            _join(g.vc, clock)


# -- accesses ---------------------------------------------------------------------


def _stack(skip: int) -> RawStack:
    """The caller's stack (innermost first, goconc's own frames left out), unresolved.

    Taken at every access that may be reported later, so it is kept cheap:
    code objects and line numbers only, each code object's verdict cached;
    :func:`goconc.race._report.resolve` turns it into file, line and function
    names when a report is made.
    """
    frames: list[tuple[CodeType, int]] = []
    hidden = _hidden
    f: FrameType | None = sys._getframe(skip)
    while f is not None:
        code = f.f_code
        skip_it = hidden.get(code)
        if skip_it is None:
            skip_it = hidden[code] = _is_internal(code.co_filename)
        if not skip_it:
            frames.append((code, f.f_lineno))
            if len(frames) == _MAX_FRAMES:
                break
        f = f.f_back
    return tuple(frames)


# Whether frames of a code object are left out of stacks (goconc's own, and the
# machinery of threads and asyncio); a cache of _is_internal.
_hidden: dict[CodeType, bool] = {}
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_INTERNAL = (
    "/threading.py",
    "/asyncio/",
    "/concurrent/futures/",
)


def _is_internal(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or any(
        part in filename.replace("\\", "/") for part in _INTERNAL
    )


def _shadow_of(key: Any, desc: str) -> _Shadow:
    """The shadow state of ``key`` (under _lock); keys are (id(object), ...)."""
    while _dead:
        for k in _keys_of.pop(_dead.popleft(), ()):
            _shadow.pop(k, None)
    sh = _shadow.get(key)
    if sh is None:
        sh = _shadow[key] = _Shadow(desc)
        if isinstance(key, tuple) and key and isinstance(key[0], int):
            _keys_of.setdefault(key[0], set()).add(key)
    return sh


def object_died(oid: int) -> None:
    """Finalizer of a watched object: forget its locations (lock-free)."""
    _dead.append(oid)


def read(key: Any, desc: str) -> None:
    g = current()
    tid, clk = g.tid, g.vc[g.tid]
    vc = g.vc
    with _lock:
        sh = _shadow_of(key, desc)
        if sh.r_clock is None and sh.r_tid == tid and sh.r_clk == clk:
            return  # same epoch: nothing new to learn
        acc = _Access(g, False, _stack(3))
        if sh.w_acc is not None and sh.w_tid != tid and sh.w_clk > vc.get(sh.w_tid, 0):
            _report.found(sh.desc, acc, sh.w_acc)
        if sh.r_clock is not None:
            sh.r_clock[tid] = (clk, acc)
        elif sh.r_acc is None or sh.r_tid == tid or sh.r_clk <= vc.get(sh.r_tid, 0):
            sh.r_tid, sh.r_clk, sh.r_acc = tid, clk, acc
        else:
            sh.r_clock = {sh.r_tid: (sh.r_clk, sh.r_acc), tid: (clk, acc)}  # concurrent reads


def write(key: Any, desc: str) -> None:
    g = current()
    tid, clk = g.tid, g.vc[g.tid]
    vc = g.vc
    with _lock:
        sh = _shadow_of(key, desc)
        if sh.w_tid == tid and sh.w_clk == clk and sh.r_clock is None and sh.r_acc is None:
            return
        acc = _Access(g, True, _stack(3))
        if sh.w_acc is not None and sh.w_tid != tid and sh.w_clk > vc.get(sh.w_tid, 0):
            _report.found(sh.desc, acc, sh.w_acc)
        if sh.r_clock is not None:
            for rtid, (rclk, racc) in sh.r_clock.items():
                if rtid != tid and rclk > vc.get(rtid, 0):
                    _report.found(sh.desc, acc, racc)
                    break
        elif sh.r_acc is not None and sh.r_tid != tid and sh.r_clk > vc.get(sh.r_tid, 0):
            _report.found(sh.desc, acc, sh.r_acc)
        sh.w_tid, sh.w_clk, sh.w_acc = tid, clk, acc
        sh.r_clock, sh.r_acc, sh.r_tid, sh.r_clk = None, None, 0, 0


def forget(key: Any) -> None:
    """Drop the shadow state of a location (its object is gone)."""
    with _lock:
        _shadow.pop(key, None)


def reset() -> None:
    with _lock:
        _sync.clear()
        _slots.clear()
        _chan_counts.clear()
        _closed.clear()
        _shadow.clear()
        _keys_of.clear()


_HOOKS = (
    "current",
    "park_clock",
    "acquire",
    "release",
    "release_acquire",
    "acquire_clock",
    "handoff",
    "absorb",
    "fork",
    "start",
    "finish",
    "chan_send",
    "chan_recv",
    "chan_close",
    "chan_recv_closed",
    "read",
    "write",
)
_saved: dict[str, Any] = {}


def install() -> None:
    """Route goconc's hooks to this detector."""
    from .. import _racehooks

    if _racehooks.enabled:
        return
    for name in _HOOKS:
        _saved[name] = getattr(_racehooks, name)
        setattr(_racehooks, name, globals()[name])
    _racehooks.enabled = True


def uninstall() -> None:
    from .. import _racehooks

    if not _racehooks.enabled:
        return
    _racehooks.enabled = False
    for name, fn in _saved.items():
        setattr(_racehooks, name, fn)
