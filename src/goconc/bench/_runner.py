"""Running the cases (each in a fresh worker process) and reporting them."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ._registry import WORKLOADS, Workload, missing

__all__ = ["Result", "main"]

_CASE_TIMEOUT = 600.0  # seconds for all repetitions of one case


@dataclass
class Result:
    interpreter: str
    workload: str
    impl: str
    status: str  # "ok", "skipped" or "failed"
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)  # medians
    samples: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the case (its worker process, warm-up included)


def benchmarks_dir() -> Path:
    env = os.environ.get("GOCONC_BENCHMARKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "benchmarks"


def load_modules(directory: Path) -> list[Path]:
    """Import every ``bench_*.py`` of ``directory``, registering its workloads."""
    from . import _registry

    paths = sorted(directory.glob("bench_*.py"))
    for path in paths:
        _load(path, _registry)
    return paths


def _load(path: Path, registry: Any) -> None:
    registry._current_module[0] = str(path)
    spec = importlib.util.spec_from_file_location(f"goconc_benchmarks.{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


# -- the worker side ---------------------------------------------------------------------


def _worker(module: str, workload_name: str, impl: str, scale: float, reps: int) -> int:
    from . import _registry

    _load(Path(module), _registry)
    w = WORKLOADS[workload_name]
    fn = w.cases[impl].fn
    assert fn is not None
    if w.warmup:
        fn(scale * 0.1)  # warm-up: imports, caches, the runtime's threads
    samples = [fn(scale) for _ in range(reps)]
    print(json.dumps(samples))
    return 0


# -- the parent side ---------------------------------------------------------------------


def _run_case(python: str, w: Workload, impl: str, scale: float, reps: int) -> Result:
    label = _interp_label(python)
    c = w.cases[impl]
    lacking = missing(c.requires) if python == sys.executable else []
    if lacking:
        return Result(label, w.name, impl, "skipped", f"not installed: {', '.join(lacking)}")
    cmd = [python, "-m", "goconc.bench", "--worker", w.module, w.name, impl]
    cmd += ["--scale", str(scale), "--reps", str(reps)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_CASE_TIMEOUT, env=_worker_env()
        )
    except subprocess.TimeoutExpired:
        return Result(label, w.name, impl, "failed", f"timed out after {_CASE_TIMEOUT:.0f}s")
    except OSError as e:
        return Result(label, w.name, impl, "failed", f"cannot run {python}: {e}")
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        status = "skipped" if "ModuleNotFoundError" in proc.stderr else "failed"
        return Result(label, w.name, impl, status, tail, seconds=seconds)
    return _result(label, w.name, impl, proc.stdout, seconds)


def _result(label: str, workload: str, impl: str, stdout: str, seconds: float) -> Result:
    """The medians of the samples a worker printed (a JSON list, its last line)."""
    lines = stdout.strip().splitlines()
    try:
        samples: list[dict[str, float]] = json.loads(lines[-1]) if lines else []
    except ValueError:
        samples = []
    if not samples:
        return Result(label, workload, impl, "failed", "no figures printed", seconds=seconds)
    keys = samples[0].keys()
    medians = {k: statistics.median(s[k] for s in samples if k in s) for k in keys}
    return Result(label, workload, impl, "ok", "", medians, samples, seconds)


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


_labels: dict[str, str] = {}


def _interp_label(python: str) -> str:
    """``CPython 3.13.5t``: implementation, version, ``t`` for a free-threaded build.

    Two interpreters of the same version are told apart by their path (their
    figures must not be mixed up in the table).
    """
    if python not in _labels:
        if python == sys.executable:
            label = _this_interpreter()
        else:
            try:
                label = subprocess.run(
                    [python, "-c", _LABEL_CODE], capture_output=True, text=True, timeout=60
                ).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                label = ""
            label = label or python
            if label in _labels.values():
                label = f"{label} ({python})"
        _labels[python] = label
    return _labels[python]


_LABEL_CODE = (
    "import sys, platform; ft = not getattr(sys, '_is_gil_enabled', lambda: True)(); "
    "print(platform.python_implementation(), platform.python_version() + ('t' if ft else ''))"
)


def _this_interpreter() -> str:
    ft = not getattr(sys, "_is_gil_enabled", lambda: True)()
    return f"{platform.python_implementation()} {platform.python_version()}{'t' if ft else ''}"


# -- Go ----------------------------------------------------------------------------------


def _build_go(directory: Path) -> tuple[str | None, str]:
    go = shutil.which("go")
    if go is None:
        return None, "no Go toolchain (install Debian's golang-go)"
    out = Path(tempfile.mkdtemp(prefix="goconc-gobench-")) / "gobench"
    env = dict(os.environ, GOFLAGS="-mod=mod", GOCACHE=str(out.parent / "cache"))
    env.setdefault("HOME", str(out.parent))
    proc = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=directory,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        return None, f"go build failed: {proc.stderr.strip()[-300:]}"
    version = subprocess.run([go, "version"], capture_output=True, text=True).stdout.split()
    return str(out), (version[2] if len(version) > 2 else "go")


def _run_go(binary: str, w: Workload, impl: str, scale: float, reps: int, label: str) -> Result:
    c = w.cases[impl]
    cmd = [binary, "-workload", c.go_name, "-scale", str(scale), "-reps", str(reps)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_CASE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return Result(label, w.name, impl, "failed", f"timed out after {_CASE_TIMEOUT:.0f}s")
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        reason = proc.stderr.strip()[-200:] or f"exit status {proc.returncode}"
        return Result(label, w.name, impl, "failed", reason, seconds=seconds)
    return _result(label, w.name, impl, proc.stdout, seconds)


# -- main --------------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="goconc bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller runs: the suite in minutes")
    p.add_argument("--only", action="append", default=[], help="workloads whose name contains this")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write PNG charts (matplotlib) into DIR; with --markdown they are linked "
        "relative to the Markdown file, so DIR should be committed with it (docs/bench)",
    )
    p.add_argument(
        "--markdown",
        metavar="PATH",
        help="regenerate the part of this file between its markers (BENCHMARKS.md)",
    )
    p.add_argument("--go", action="store_true", help="also build and run benchmarks/go")
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="PATH",
        help="also run the Python cases with this interpreter (repeatable); it must be "
        "able to import goconc's dependencies (the source tree is put on its path)",
    )
    p.add_argument("--reps", type=int, default=0, help="repetitions per case (median taken)")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="run nothing: report the run saved in PATH by --json (with --markdown, --plot)",
    )
    p.add_argument(
        "--worker", nargs=3, metavar=("MODULE", "WORKLOAD", "IMPL"), help=argparse.SUPPRESS
    )
    p.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.reps < 0:
        p.error("--reps must be >= 0")
    return args


#: The size of a ``--quick`` run, as each case's ``scale``; and the repetitions.
QUICK_SCALE: Final = 0.25
QUICK_REPS: Final = 3
FULL_REPS: Final = 5


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.worker:
        module, name, impl = args.worker
        return _worker(module, name, impl, args.scale, args.reps or 1)
    directory = benchmarks_dir()
    if not directory.is_dir():
        print(
            f"goconc bench: no benchmarks directory at {directory} "
            "(run from a source checkout, or set GOCONC_BENCHMARKS)",
            file=sys.stderr,
        )
        return 2
    load_modules(directory)
    selected = [
        w for w in WORKLOADS.values() if not args.only or any(o in w.name for o in args.only)
    ]
    if args.list:
        for w in selected:
            print(f"{w.name:<44} {w.metric:<18} {', '.join(w.cases)}")
        return 0
    if not selected:
        print(f"goconc bench: no workload matches {args.only}", file=sys.stderr)
        return 2
    if args.from_json:
        results, info = _load_run(Path(args.from_json), selected)
    else:
        ran = _run(args, directory, selected)
        if isinstance(ran, int):
            return ran
        results, info = ran
    from . import _report

    print(_report.render(results, selected))
    print(
        f"\n{len(results)} cases in {info.get('seconds', '?')} s "
        f"(scale {info.get('scale', '?')}, {info.get('reps', '?')} repetitions)"
    )
    if args.json and not args.from_json:
        payload = {"machine": info, "results": [r.__dict__ for r in results]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2))
    charts: list[Path] = []
    if args.plot:
        charts = _report.plot(results, selected, Path(args.plot))
    if args.markdown:
        _report.update_markdown(Path(args.markdown), results, selected, info, charts)
    return 0 if all(r.status != "failed" for r in results) else 1


def _run(
    args: argparse.Namespace, directory: Path, selected: list[Workload]
) -> tuple[list[Result], dict[str, str]] | int:
    """Run the selected workloads; their results and the run's details (or an exit status)."""
    scale = QUICK_SCALE if args.quick else 1.0
    reps = args.reps or (QUICK_REPS if args.quick else FULL_REPS)
    pythons = list(dict.fromkeys([sys.executable, *args.python]))
    _interp_label(sys.executable)  # first: the others are told apart from it
    for python in pythons[1:]:
        if shutil.which(python) is None:
            print(f"goconc bench: --python {python}: not an executable", file=sys.stderr)
            return 2
    go_binary, go_version = (None, "")
    if args.go:
        go_binary, go_version = _build_go(directory / "go")
    started = time.perf_counter()
    plan = _Plan(pythons, go_binary, go_version, args.go, scale, reps, args.quick and not args.reps)
    results = _run_all(selected, plan)
    elapsed = time.perf_counter() - started
    fewer = " or fewer" if plan.quick_reps and any(w.quick_reps for w in selected) else ""
    info = _machine_info(go_version if go_binary else "", pythons)
    info |= {"scale": f"{scale:g}", "reps": f"{reps}{fewer}", "seconds": f"{elapsed:.0f}"}
    return results, info


def _load_run(path: Path, selected: list[Workload]) -> tuple[list[Result], dict[str, str]]:
    """The results and details of a run saved with ``--json``, for the selected workloads."""
    payload = json.loads(path.read_text())
    names = {w.name for w in selected}
    results = [Result(**r) for r in payload["results"] if r["workload"] in names]
    info = {k: str(v) for k, v in payload["machine"].items()}
    for key in ("scale", "reps", "seconds"):  # top-level in files written before 0.1
        if key not in info and key in payload:
            value = payload[key]
            info[key] = f"{value:.0f}" if key == "seconds" else f"{value:g}"
    return results, info


@dataclass(frozen=True)
class _Plan:
    pythons: list[str]
    go_binary: str | None
    go_version: str  # the version, or why there is no binary
    want_go: bool
    scale: float
    reps: int
    quick_reps: bool  # whether a workload's quick_reps may lower ``reps``

    def reps_for(self, w: Workload) -> int:
        if self.quick_reps and w.quick_reps:
            return min(self.reps, w.quick_reps)
        return self.reps


def _run_all(selected: list[Workload], plan: _Plan) -> list[Result]:
    jobs: list[tuple[str, Workload, str]] = []
    for w in selected:
        for impl, c in w.cases.items():
            if c.is_go:
                jobs.append(("go", w, impl))
            else:
                jobs.extend((py, w, impl) for py in plan.pythons)
    results: list[Result] = []
    with _progress(len(jobs)) as advance:
        for python, w, impl in jobs:
            advance(f"{w.name} [{impl}]")
            reps = plan.reps_for(w)
            if python != "go":
                results.append(_run_case(python, w, impl, plan.scale, reps))
            elif plan.go_binary is not None:
                results.append(_run_go(plan.go_binary, w, impl, plan.scale, reps, plan.go_version))
            else:
                reason = plan.go_version or (
                    "needs --go" if not plan.want_go else "no Go toolchain"
                )
                results.append(Result("go", w.name, impl, "skipped", reason))
    return results


class _progress:
    """A progress display on standard error (rich when installed)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self._rich: Any = None

    def __enter__(self) -> Any:
        try:
            from rich.console import Console
            from rich.progress import Progress

            # On standard error: standard output carries the table alone.
            self._rich = Progress(console=Console(stderr=True), transient=True)
            self._rich.__enter__()
            self._task = self._rich.add_task("benchmarks", total=self.total)
        except ImportError:
            self._rich = None
        return self.advance

    def advance(self, what: str) -> None:
        if self._rich is not None:
            if self.done:
                self._rich.advance(self._task)
            self._rich.update(self._task, description=what)
        else:
            print(f"[{self.done + 1}/{self.total}] {what}", file=sys.stderr, flush=True)
        self.done += 1

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)


def _machine_info(go_version: str, pythons: list[str]) -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": ", ".join(_interp_label(p) for p in pythons),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "go": go_version,
        "date": time.strftime("%Y-%m-%d"),
    }
