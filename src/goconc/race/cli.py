"""``goconc race script.py [args]``: run a script under the race detector.

Like ``go run -race``: the script runs as ``__main__`` with its mutable
globals instrumented and the detector on; every race is reported as it is
found, a summary is printed at exit, and the exit status is 66 when any race
was found (otherwise the script's own status).
"""

from __future__ import annotations

import os
import sys
import types

from . import _instrument, enable, reports, summary

__all__ = ["main", "EXIT_RACE"]

#: Go's exit status for a program in which the race detector found a race.
EXIT_RACE = 66


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: goconc race path/to/script.py [args...]", file=sys.stderr)
        return 2 if not argv else 0
    path = argv[0]
    if not os.path.isfile(path):
        print(f"goconc race: no such file: {path}", file=sys.stderr)
        return 2
    enable(summary_at_exit=False)
    status = _run(path, argv)
    text = summary()
    if text:
        print(f"==================\n{text}", file=sys.stderr, flush=True)
    return EXIT_RACE if reports() else status


def _run(path: str, argv: list[str]) -> int:
    with open(path, encoding="utf-8") as f:
        source = f.read()
    code = _instrument.compile_instrumented(source, path, "__main__")
    main_module = types.ModuleType("__main__")
    main_module.__file__ = path
    namespace = main_module.__dict__
    namespace["__builtins__"] = __builtins__
    _instrument.install_hooks(namespace)
    saved_argv, saved_main, saved_path0 = sys.argv, sys.modules["__main__"], sys.path[0]
    sys.argv = list(argv)
    sys.modules["__main__"] = main_module
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    try:
        exec(code, namespace)
    except SystemExit as e:
        return _exit_status(e.code)
    finally:
        sys.argv, sys.path[0] = saved_argv, saved_path0
        sys.modules["__main__"] = saved_main
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
