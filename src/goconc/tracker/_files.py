"""Small file helpers shared by the sinks, the spool and the dead-letter file."""

from __future__ import annotations

import os

__all__ = ["write_all"]


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    n = os.write(fd, data)
    if n == len(data):  # the usual case: one call
        return
    view = memoryview(data)[n:]
    while view:
        n = os.write(fd, view)
        view = view[n:]
