"""The ``goconc`` command line: ``demo``, ``bench`` and ``race``."""

from __future__ import annotations

import importlib
import sys

__all__ = ["main"]

# Each subcommand lives with the concept it belongs to and is imported only
# when asked for; each entry point takes the remaining arguments and returns
# the exit status.
_COMMANDS = {
    "demo": (
        "goconc.app.demo",
        "Run the lessons' service: app and debug servers, tracker, hot config.",
    ),
    "bench": ("goconc.bench", "Run the benchmarks against Python peers (and Go with --go)."),
    "race": ("goconc.race.cli", "Run a Python script with the data race detector on."),
}


def _usage() -> str:
    lines = ["usage: goconc <command> [args...]", "", "commands:"]
    lines += [f"  {name:<8}{help_}" for name, (_, help_) in _COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in _COMMANDS:
        print(f"goconc: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(_COMMANDS[name][0])
    status: int = module.main(rest)
    return status


if __name__ == "__main__":
    sys.exit(main())
