"""A sampling profiler of every thread, rendered three ways.

:func:`sample` looks at the stack of every thread of the process (except its
own) every ``interval`` seconds for ``seconds`` seconds, and counts identical
stacks.  It is a wall-clock profile, like ``py-spy --idle``: a thread parked on
a lock is sampled where it waits, which is what one wants to see when a
service is slow but not busy.  The result renders as:

* collapsed stacks (``thread;outer;...;inner count`` per line), the input of
  Brendan Gregg's ``flamegraph.pl`` and of speedscope;
* speedscope's JSON file format (one sampled profile per thread);
* a self-contained flame graph SVG (hover a frame for its name and share).

Threads::

    prof = sample(5.0)              # blocks for five seconds
    print(prof.collapsed())

asyncio (sampling runs on a thread of its own; the loop keeps serving)::

    prof = await asyncio.to_thread(sample, 5.0)
    svg = prof.svg()

Guarantees: the sampler never stops or slows the sampled threads beyond
reading their frames; a profile of N seconds returns after about N seconds,
or as soon as ``ctx`` ends (raising ``ctx.err()``).

Not on free-threaded builds: there, reading the frames of a thread while it
runs can crash the interpreter (python/cpython#118680), and :func:`sample`
raises ``RuntimeError`` instead (use an external sampler such as py-spy).
"""

from __future__ import annotations

import html
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from .._park import FRAMES_UNSAFE, Ctx, raise_if_done

__all__ = ["MAX_SECONDS", "UNAVAILABLE", "Profile", "sample"]

#: The longest profile :func:`sample` accepts, in seconds.
MAX_SECONDS = 300.0

#: Why :func:`sample` is unavailable here, or None where it works.
UNAVAILABLE: str | None = (
    "sampling other threads' stacks is not available on free-threaded CPython: reading "
    "a running thread's frames can crash the interpreter there (python/cpython#118680)"
    if FRAMES_UNSAFE
    else None
)

_MAX_DEPTH = 256  # frames kept per stack, from the innermost; deeper ones are cut


@dataclass(frozen=True)
class Profile:
    """Stack samples of all threads, with how often each stack was seen.

    ``stacks`` maps a stack (the thread's name first, then frames from the
    outermost to the innermost, each ``"function (file:line)"``) to the number
    of samples that saw it; ``interval`` is the time between samples and
    ``duration`` how long sampling lasted, both in seconds.
    """

    stacks: Mapping[tuple[str, ...], int]
    interval: float
    duration: float
    samples: int = field(default=0)

    def collapsed(self) -> str:
        """The collapsed-stack text: ``frame;frame;...;frame count`` per line, sorted."""
        lines = [f"{';'.join(stack)} {n}" for stack, n in sorted(self.stacks.items())]
        return "\n".join(lines) + ("\n" if lines else "")

    def speedscope(self, name: str = "goconc profile") -> dict[str, Any]:
        """The profile in speedscope's file format (https://www.speedscope.app)."""
        frames: list[dict[str, Any]] = []
        index: dict[str, int] = {}
        by_thread: dict[str, list[tuple[list[int], int]]] = {}
        for stack, n in sorted(self.stacks.items()):
            ids = []
            for label in stack[1:]:
                if label not in index:
                    index[label] = len(frames)
                    frames.append(_speedscope_frame(label))
                ids.append(index[label])
            by_thread.setdefault(stack[0], []).append((ids, n))
        unit_ms = self.interval * 1000.0
        profiles = []
        for thread, rows in by_thread.items():
            total = sum(n for _, n in rows) * unit_ms
            profiles.append(
                {
                    "type": "sampled",
                    "name": thread,
                    "unit": "milliseconds",
                    "startValue": 0,
                    "endValue": total,
                    "samples": [ids for ids, _ in rows],
                    "weights": [n * unit_ms for _, n in rows],
                }
            )
        return {
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "name": name,
            "exporter": "goconc",
            "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": profiles,
        }

    def svg(self, title: str = "goconc profile", width: int = 1200) -> str:
        """A flame graph of the profile as a standalone SVG document."""
        return _flamegraph(self.stacks, title, width)


def sample(seconds: float, interval: float = 0.01, *, ctx: Ctx | None = None) -> Profile:
    """Sample every thread's stack for ``seconds`` seconds and return the profile.

    Blocks the calling thread (run it on a thread of its own from asyncio).
    Raises ``ValueError`` for a duration outside (0, MAX_SECONDS] or an
    interval outside (0, seconds]; raises ``ctx.err()`` if ``ctx`` ends first;
    raises ``RuntimeError`` on a free-threaded build (see :data:`UNAVAILABLE`).
    """
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}], got {seconds!r}")
    if not 0 < interval <= seconds:
        raise ValueError(f"interval must be in (0, seconds], got {interval!r}")
    if UNAVAILABLE is not None:
        raise RuntimeError(UNAVAILABLE)
    raise_if_done(ctx)
    me = threading.get_ident()
    counts: Counter[tuple[str, ...]] = Counter()
    labels: dict[CodeType, str] = {}
    start = time.monotonic()
    end = start + seconds
    next_at = start
    taken = 0
    while True:
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident != me:
                counts[_stack(names.get(ident, f"thread-{ident}"), frame, labels)] += 1
        taken += 1
        next_at += interval
        now = time.monotonic()
        if next_at >= end:
            break
        if next_at > now:
            time.sleep(next_at - now)
        else:
            next_at = now  # behind schedule (a loaded machine): skip, do not burst
        raise_if_done(ctx)
    return Profile(dict(counts), interval, time.monotonic() - start, taken)


def _stack(thread: str, frame: FrameType | None, labels: dict[CodeType, str]) -> tuple[str, ...]:
    frames: list[str] = []
    while frame is not None and len(frames) < _MAX_DEPTH:
        code = frame.f_code
        label = labels.get(code)
        if label is None:
            label = labels[code] = _label(code)
        frames.append(label)
        frame = frame.f_back
    frames.append(_clean(thread))
    frames.reverse()
    return tuple(frames)


def _label(code: CodeType) -> str:
    name = getattr(code, "co_qualname", code.co_name)
    return _clean(f"{name} ({code.co_filename}:{code.co_firstlineno})")


def _clean(text: str) -> str:
    # ';' separates frames and a line ends the record in the collapsed format.
    return text.replace(";", ":").replace("\n", " ")


def _speedscope_frame(label: str) -> dict[str, Any]:
    name, _, where = label.rpartition(" (")
    file, _, line = where.rstrip(")").rpartition(":")
    if not name or not line.isdigit():
        return {"name": label}
    return {"name": name, "file": file, "line": int(line)}


# -- flame graph ---------------------------------------------------------------------

_ROW = 17  # pixels per stack level
_PAD_TOP = 40
_CHAR_W = 6.6  # approximate width of one character at font-size 11


class _Node:
    __slots__ = ("children", "count")

    def __init__(self) -> None:
        self.count = 0
        self.children: dict[str, _Node] = {}


def _flamegraph(stacks: Mapping[tuple[str, ...], int], title: str, width: int) -> str:
    root = _Node()
    depth = 0
    for stack, n in stacks.items():
        node = root
        node.count += n
        for label in stack:
            node = node.children.setdefault(label, _Node())
            node.count += n
        depth = max(depth, len(stack))
    height = _PAD_TOP + (depth + 1) * _ROW + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#f8f8f8"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">'
        f"{html.escape(title)}</text>",
        f'<text x="10" y="34" fill="#555">{root.count} samples; hover a frame for details</text>',
    ]
    if root.count:
        scale = (width - 20) / root.count
        y = height - 10 - _ROW
        _rect(out, "all", root.count, root.count, 10.0, y, root.count * scale)
        _draw(out, root, root.count, scale, 10.0, y - _ROW)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _draw(out: list[str], node: _Node, total: int, scale: float, x: float, y: float) -> None:
    for label, child in sorted(node.children.items()):
        w = child.count * scale
        if w >= 0.3:  # narrower frames would not be visible
            _rect(out, label, child.count, total, x, y, w)
            _draw(out, child, total, scale, x, y - _ROW)
        x += w


def _rect(out: list[str], label: str, count: int, total: int, x: float, y: float, w: float) -> None:
    share = 100.0 * count / total
    tip = html.escape(f"{label}: {count} samples ({share:.2f}%)")
    out.append(
        f'<g><title>{tip}</title><rect x="{x:.2f}" y="{y}" width="{w:.2f}" '
        f'height="{_ROW - 1}" rx="2" fill="{_color(label)}"/>'
    )
    chars = int((w - 6) / _CHAR_W)
    if chars >= 3:
        text = label if len(label) <= chars else label[: chars - 2] + ".."
        out.append(f'<text x="{x + 3:.2f}" y="{y + _ROW - 5}">{html.escape(text)}</text>')
    out.append("</g>")


def _color(label: str) -> str:
    # A stable warm colour per function, as flamegraph.pl's "hot" palette.
    h = zlib.crc32(label.encode())
    return f"rgb({205 + h % 50},{(h >> 8) % 190},{(h >> 16) % 55})"
