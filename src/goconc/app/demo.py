"""``goconc demo``: the lessons' service, runnable with nothing else installed.

An App named ``demo`` with:

* an app server (HTTP, default 127.0.0.1:8080): ``/hello``, ``/fanout`` (three
  simulated backends called at once by an errgroup under the request's
  deadline; ``?slow=b`` or ``?fail=c`` show the others being cancelled),
  ``/config``;
* a debug server (default 127.0.0.1:8001): goroutine dump, vars, Prometheus
  metrics, profiles, health and readiness;
* registration in the embedded file registry (or etcd with
  ``--registry etcd://host:2379``), removed at shutdown;
* a JSON config file reloaded whenever it changes, into an atomic
  copy-on-write value that every request reads without a lock;
* every request reported to an event tracker (a JSONL file), drained after
  the servers at shutdown.

Ctrl-C or SIGTERM stops it gracefully: requests in flight finish, nothing
reported is lost; it prints what it drained.  A second Ctrl-C forces.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import registry as _registry
from .. import runtime
from ..atomic import CopyOnWrite
from ..context import Context
from ..tracker import JsonlSink, Tracker
from . import App, AppError, DebugServer, ForcedStop, HTTPServer
from ._demo_service import Config, ConfigWatcher, DemoService, load_config

__all__ = ["main"]

_NAME = "demo"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until Ctrl-C/SIGTERM; return the exit status (0: clean stop)."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _setup_logging(args.log_level)
    try:
        demo = _Demo(args)
    except (ValueError, OSError) as e:
        print(f"goconc demo: {e}", file=sys.stderr)
        return 2
    return demo.run()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="goconc demo",
        description="Run the lessons' service: app and debug servers, registry, "
        "hot-reloaded config, event tracker, graceful shutdown.",
    )
    p.add_argument("--app-addr", default="127.0.0.1:8080", help="app server (default %(default)s)")
    p.add_argument(
        "--debug-addr",
        default="127.0.0.1:8001",
        help="debug server (default %(default)s)",
    )
    p.add_argument(
        "--registry",
        metavar="DIR|URL",
        help="a directory (file registry), file:///dir, memory: or etcd://host:2379 "
        "(default: the file registry in the temporary directory)",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        type=Path,
        help="JSON config, reloaded when it changes (default: created in --state-dir)",
    )
    p.add_argument("--events", metavar="PATH", type=Path, help="tracker events (JSON lines)")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        default=Path(tempfile.gettempdir()) / f"goconc-demo-{os.getuid()}",
        help="where the default config and events files live (default %(default)s)",
    )
    p.add_argument(
        "--stop-timeout", type=float, default=10.0, help="graceful stop bound, seconds (10)"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("goconc").setLevel(level.upper())


class _Demo:
    """The demo's parts, wired into one App."""

    def __init__(self, args: argparse.Namespace) -> None:
        state: Path = args.state_dir
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.config_path: Path = args.config or state / "config.json"
        if args.config is None and not self.config_path.exists():
            self.config_path.write_text(json.dumps(Config().to_json(), indent=2) + "\n")
        self.config = CopyOnWrite(load_config(self.config_path))
        self.events_path: Path = args.events or state / "events.jsonl"
        self.registry, self.registry_text = _open_registry(args.registry)
        try:
            self.tracker = Tracker(JsonlSink(self.events_path), name=_NAME)
        except BaseException:
            self.registry.close()
            raise
        try:
            self._wire(args)
        except BaseException:
            self.tracker.shutdown(timeout=0.0)
            self.registry.close()
            raise

    def _wire(self, args: argparse.Namespace) -> None:
        self.tracker_g: runtime.Goroutine[None] | None = None
        self.web = HTTPServer(DemoService(self.config, self.tracker), args.app_addr, name="app")
        self.debug = DebugServer(args.debug_addr, name="debug")
        self.watcher = ConfigWatcher(self.config_path, self.config)
        self.app = App(
            name=_NAME,
            version=_version(),
            metadata={"pid": str(os.getpid())},
            servers=[self.web, self.debug, self.watcher],
            registrar=self.registry,
            stop_timeout=args.stop_timeout,
            before_start=self._start_tracker,
            after_start=self._announce,
            after_stop=self._drain_tracker,
        )

    def run(self) -> int:
        try:
            self.app.run()
            status = 0
        except AppError as e:
            forced = any(isinstance(x, ForcedStop) for x in e.exceptions)
            print(f"goconc demo: {'forced to stop' if forced else 'failed'}:", file=sys.stderr)
            for err in e.exceptions:
                print(f"  {type(err).__name__}: {err}", file=sys.stderr)
            status = 1
        finally:
            if not self.tracker.statistics().closed:  # it never started, or the stop was forced
                self.tracker.shutdown(timeout=1.0)
            self._report_registry()
            self.registry.close()
        return status

    def _start_tracker(self, ctx: Context) -> None:
        self.tracker_g = runtime.go_named("tracker", self.tracker.run)

    def _announce(self, ctx: Context) -> None:
        app = self.app
        print(
            f"goconc demo: service {app.name!r} instance {app.id} is running\n"
            f"  app       {self.web.url}/   try /hello?name=gopher  /fanout  /fanout?slow=b  "
            "/fanout?fail=c  /config\n"
            f"  debug     {self.debug.url}/   /debug/goroutines  /debug/vars  /metrics  "
            "/debug/profile?seconds=5&format=svg  /healthz  /readyz\n"
            f"  registry  {self.registry_text} (service {app.name!r})\n"
            f"  config    {self.config_path} (edit it: changes apply live)\n"
            f"  events    {self.events_path}\n"
            "Ctrl-C or SIGTERM stops it gracefully (a second one forces).",
            flush=True,
        )

    def _drain_tracker(self, ctx: Context) -> None:
        # After the servers: every request that was answered has reported its event.
        result = self.tracker.shutdown(ctx)
        if self.tracker_g is not None and result.in_flight == 0:
            self.tracker_g.join(timeout=1.0)
        web = self.web.statistics()
        lost = f", {result.dead_lettered} dead-lettered to {self.tracker.dead_letter_path}"
        print(
            f"goconc demo: stopped. drained {web.drained} request(s) in flight at the stop "
            f"({web.cancelled} cancelled at the deadline), {web.requests} served in all; "
            f"tracker: {result.accepted} event(s) accepted, {result.delivered} delivered"
            f"{lost if result.dead_lettered else ''}, {result.lost} lost",
            flush=True,
        )

    def _report_registry(self) -> None:
        try:
            left = self.registry.get_service(_NAME, timeout=2.0)
        except Exception as e:
            print(f"goconc demo: registry check failed: {e}", file=sys.stderr)
            return
        if self.app.instance is not None and all(i.id != self.app.id for i in left):
            print(f"goconc demo: instance {self.app.id} deregistered from {self.registry_text}")


def _open_registry(spec: str | None) -> tuple[Any, str]:
    """The registry ``--registry`` names, and how to describe it."""
    if spec is None:
        reg = _registry.FileRegistry()
        return reg, f"file registry {reg.directory}"
    if "://" in spec or spec.startswith(("memory:", "file:")):
        reg2 = _registry.from_url(spec)
        if isinstance(reg2, _registry.FileRegistry):
            return reg2, f"file registry {reg2.directory}"
        return reg2, spec
    reg3 = _registry.FileRegistry(spec)
    return reg3, f"file registry {reg3.directory}"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("goconc")
    except Exception:
        return "dev"
