"""goconc: Go's concurrency model for Python threads and asyncio tasks alike.

The public surface::

    from goconc import go, Chan, ChanClosed, select, aselect, Send, Recv, Selected
    from goconc import context, errgroup, sync, atomic, runtime, time
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

__all__ = [
    "Chan",
    "ChanClosed",
    "Recv",
    "Selected",
    "Send",
    "aselect",
    "atomic",
    "context",
    "errgroup",
    "go",
    "runtime",
    "select",
    "sync",
    "time",
]

if TYPE_CHECKING:
    from . import atomic, context, errgroup, runtime, sync, time
    from .chan import Chan, ChanClosed, Recv, Selected, Send, aselect, select
    from .runtime import go

_FROM_CHAN = {"Chan", "ChanClosed", "Recv", "Selected", "Send", "aselect", "select"}
_SUBMODULES = {"atomic", "context", "errgroup", "runtime", "sync", "time"}


def __getattr__(name: str) -> Any:
    # Loaded on first use so that `import goconc` stays cheap and a program
    # that only needs channels never imports the rest.
    if name in _FROM_CHAN:
        value = getattr(importlib.import_module(".chan", __name__), name)
    elif name == "go":
        value = importlib.import_module(".runtime", __name__).go
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'goconc' has no attribute {name!r}")
    globals()[name] = value
    return value


# GOCONC_RACE=1 turns the data race detector on for the whole program, the way
# `go run -race` builds it in (see goconc.race).
if os.environ.get("GOCONC_RACE", "") not in ("", "0"):
    from .race import enable as _enable_race

    _enable_race()
