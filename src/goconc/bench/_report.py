"""The table, the targets, the charts and BENCHMARKS.md."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._registry import Target, Workload

if TYPE_CHECKING:
    from ._runner import Result

__all__ = [
    "BEGIN",
    "END",
    "Verdict",
    "evaluate",
    "markdown",
    "plot",
    "render",
    "rows",
    "update_markdown",
]

BEGIN = "<!-- goconc bench: begin (generated, do not edit by hand) -->"
END = "<!-- goconc bench: end -->"


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f}M"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _by(results: list[Result]) -> dict[tuple[str, str, str], Result]:
    return {(r.interpreter, r.workload, r.impl): r for r in results}


def _is_go(w: Workload, impl: str) -> bool:
    c = w.cases.get(impl)
    return c is not None and c.is_go


def _python_interps(results: list[Result], w: Workload) -> list[str]:
    """The interpreters that ran the Python cases of ``w``, in order of appearance."""
    seen: list[str] = []
    for r in results:
        if r.workload == w.name and not _is_go(w, r.impl) and r.interpreter not in seen:
            seen.append(r.interpreter)
    return seen


def rows(results: list[Result], w: Workload) -> list[list[str]]:
    """Table rows of one workload: implementation, interpreter, median, ratio, note.

    The ratio is goconc's figure over the row's, both from the same
    interpreter; a Go row is compared with goconc on the first interpreter.
    """
    index = _by(results)
    interps = _python_interps(results, w)
    out: list[list[str]] = []
    for r in results:
        if r.workload != w.name:
            continue
        interp = interps[0] if _is_go(w, r.impl) and interps else r.interpreter
        base = index.get((interp, w.name, "goconc"))
        value = r.metrics.get(w.metric) if r.status == "ok" else None
        ratio = ""
        if value and base is not None and base.status == "ok" and r.impl != "goconc":
            g = base.metrics.get(w.metric)
            if g is not None:
                ratio = f"{g / value:.2f}x"
        extras = ", ".join(f"{k} {_fmt(v)}" for k, v in r.metrics.items() if k != w.metric)
        note = r.reason if r.status != "ok" else extras
        shown = _fmt(value) if value is not None else r.status
        out.append([r.impl, r.interpreter, shown, ratio, note])
    return out


@dataclass(frozen=True)
class Verdict:
    """A target evaluated on one interpreter's figures.

    ``figure`` is the ratio impl/peer, or the impl's own figure for an
    absolute bound; ``met`` is None when a figure is missing.
    """

    target: Target
    workload: str
    interpreter: str
    figure: float | None
    met: bool | None
    mine: float | None = None
    peer: float | None = None
    applicable: bool = True  # False: a free-threaded-only target on a GIL build

    @property
    def shown(self) -> str:
        if self.figure is None:
            return ""
        if not self.target.peer:
            return _fmt(self.figure)
        assert self.mine is not None and self.peer is not None
        return f"{self.figure:.2f}x ({_fmt(self.mine)} vs {_fmt(self.peer)})"

    @property
    def verdict(self) -> str:
        if not self.applicable:
            return "not applicable (GIL build)"
        return "MET" if self.met else ("NOT MET" if self.met is False else "not measured")


def _free_threaded(interpreter: str) -> bool:
    """Whether an interpreter label names a free-threaded build ("CPython 3.13.5t")."""
    version = interpreter.split(" (")[0].rsplit(" ", 1)[-1]
    return version.endswith("t")


def evaluate(results: list[Result], w: Workload) -> list[Verdict]:
    """Each target of ``w`` on each interpreter that ran its Python cases."""
    index = _by(results)
    out: list[Verdict] = []
    for t in w.targets:
        metric = t.metric or w.metric
        lower = w.lower_is_better if t.lower_is_better is None else t.lower_is_better
        for interp in _python_interps(results, w):
            if t.free_threaded_only and not _free_threaded(interp):
                out.append(Verdict(t, w.name, interp, None, None, applicable=False))
                continue
            mine = index.get((interp, w.name, t.impl))
            g = mine.metrics.get(metric) if mine and mine.status == "ok" else None
            if not t.peer:
                met = None
                if g is not None and t.absolute is not None:
                    met = g <= t.absolute if lower else g >= t.absolute
                out.append(Verdict(t, w.name, interp, g, met, g))
                continue
            peer = index.get((interp, w.name, t.peer))
            p = peer.metrics.get(metric) if peer and peer.status == "ok" else None
            if g is None or not p:
                out.append(Verdict(t, w.name, interp, None, None))
                continue
            ratio = g / p
            met = ratio <= t.ratio if lower else ratio >= t.ratio
            out.append(Verdict(t, w.name, interp, ratio, met, g, p))
    return out


def render(results: list[Result], workloads: list[Workload]) -> str:
    """The plain-text table printed at the end of a run."""
    lines: list[str] = []
    for w in workloads:
        better = "lower is better" if w.lower_is_better else "higher is better"
        lines.append("")
        lines.append(f"== {w.name}  [{w.metric}, {better}]")
        table = [["impl", "interpreter", w.metric, "goconc/impl", "notes"], *rows(results, w)]
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for r in table:
            lines.append(
                "  "
                + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:4]))
                + ("  " + r[4] if r[4] else "")
            )
        for v in evaluate(results, w):
            shown = f" ({v.shown})" if v.shown else ""
            source = f" [{v.target.source}]" if v.target.source else ""
            lines.append(f"  target{source} [{v.interpreter}]: {v.target.text}: {v.verdict}{shown}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def markdown(
    results: list[Result],
    workloads: list[Workload],
    info: dict[str, str],
    charts: list[Path],
    relative_to: Path,
) -> str:
    """The generated section: run details, the targets, then each workload's table
    and chart (chart paths relative to ``relative_to``, the Markdown file's folder)."""
    out = [BEGIN, "", _run_line(info), ""]
    verdicts = [v for w in workloads for v in evaluate(results, w)]
    if verdicts:
        out += [
            "### Targets",
            "",
            "| workload | target | from | interpreter | figure | verdict |",
            "|---|---|---|---|---:|---|",
        ]
        for v in verdicts:
            cells = [v.workload, v.target.text, v.target.source, v.interpreter, v.shown]
            out.append("| " + " | ".join(_cell(c) for c in [*cells, f"**{v.verdict}**"]) + " |")
        out.append("")
    by_name = {c.stem: c for c in charts}
    for w in workloads:
        better = "lower is better" if w.lower_is_better else "higher is better"
        out.append(f"### {w.name}")
        out.append("")
        if w.description:
            out.append(w.description)
            out.append("")
        out.append(f"| impl | interpreter | {w.metric} ({better}) | goconc/impl | notes |")
        out.append("|---|---|---:|---:|---|")
        for r in rows(results, w):
            out.append("| " + " | ".join(_cell(c) for c in r) + " |")
        out.append("")
        for stem in (_slug(w.name), _slug(w.name) + "-workers"):
            if stem in by_name:
                rel = Path(os.path.relpath(by_name[stem], relative_to)).as_posix()
                out.append(f"![{w.name}]({rel})")
                out.append("")
    out.append(END)
    return "\n".join(out)


_RUN_FIELDS = (
    ("python", "Python"),
    ("go", "Go"),
    ("cpu", "CPU"),
    ("cores", "cores"),
    ("platform", "OS"),
    ("date", "date"),
    ("scale", "scale"),
    ("reps", "repetitions per case"),
    ("seconds", "duration of the whole run (s)"),
)


def _run_line(info: dict[str, str]) -> str:
    """The run's details as a list: interpreters, Go, machine, date, size."""
    return "\n".join(f"- {label}: {info[key]}" for key, label in _RUN_FIELDS if info.get(key))


def update_markdown(
    path: Path,
    results: list[Result],
    workloads: list[Workload],
    info: dict[str, str],
    charts: list[Path],
) -> None:
    """Replace the generated part of ``path`` (between its markers), keeping the
    hand-written text around it; append a generated part if there is none."""
    generated = markdown(results, workloads, info, charts, path.resolve().parent)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + generated + tail
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    path.write_text(text)


def plot(results: list[Result], workloads: list[Workload], directory: Path) -> list[Path]:
    """Write one PNG per workload (its primary figure per implementation and
    interpreter: goconc green, Go blue, Python peers grey) and, for the
    starvation experiments, one of the acquisitions per worker.  Returns the
    files written (none without matplotlib, which is then reported)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("goconc bench: --plot needs matplotlib (pip install -e '.[bench]')", file=sys.stderr)
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for w in workloads:
        ok = [
            r
            for r in results
            if r.workload == w.name and r.status == "ok" and w.metric in r.metrics
        ]
        if not ok:
            continue
        several = len({r.interpreter for r in ok if not _is_go(w, r.impl)}) > 1
        labels = [
            f"{r.impl} ({r.interpreter})" if several and not _is_go(w, r.impl) else r.impl
            for r in ok
        ]
        values = [r.metrics[w.metric] for r in ok]
        colors = [
            "tab:green"
            if r.impl.startswith("goconc")
            else "tab:blue"
            if _is_go(w, r.impl)
            else "tab:gray"
            for r in ok
        ]
        fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.32 * len(ok)))
        ys = list(range(len(ok)))[::-1]
        ax.barh(ys, values, color=colors)
        ax.set_yticks(ys, labels, fontsize=7)
        positive = [v for v in values if v > 0]
        if positive and max(positive) / min(positive) > 50:
            ax.set_xscale("log")
        for y, v in zip(ys, values, strict=True):
            ax.text(v, y, " " + _fmt(v), va="center", fontsize=6)
        ax.set_xlabel(f"{w.metric} ({'lower' if w.lower_is_better else 'higher'} is better)")
        ax.set_title(w.name, fontsize=9)
        ax.margins(x=0.15)
        fig.tight_layout()
        written.append(_save(fig, plt, directory / f"{_slug(w.name)}.png"))
        acq = [r for r in ok if "w1_acq" in r.metrics and "w2_acq" in r.metrics]
        if acq:
            fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(acq) + 2), 3.2))
            xs = range(len(acq))
            ax.bar([x - 0.2 for x in xs], [r.metrics["w1_acq"] for r in acq], 0.4, label="worker 1")
            ax.bar([x + 0.2 for x in xs], [r.metrics["w2_acq"] for r in acq], 0.4, label="worker 2")
            ax.set_xticks(list(xs), [r.impl for r in acq], fontsize=7)
            ax.set_ylabel("acquisitions")
            ax.set_title(f"{w.name}: acquisitions per worker", fontsize=9)
            ax.legend(fontsize=7)
            fig.tight_layout()
            written.append(_save(fig, plt, directory / f"{_slug(w.name)}-workers.png"))
    return written


def _save(fig: Any, plt: Any, path: Path) -> Path:
    # No timestamp in the file, so that an unchanged chart is an unchanged file.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _slug(name: str) -> str:
    """A file name for a workload: "buffered 1->1 threads" -> "buffered-1-1-threads"."""
    return "-".join("".join(c if c.isalnum() else " " for c in name).split())
