"""The table, the targets, the charts and BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._registry import Target, Workload

if TYPE_CHECKING:
    from ._runner import Result

__all__ = ["evaluate", "plot", "render", "update_markdown"]

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


def _goconc_interp(results: list[Result], w: Workload) -> list[str]:
    seen: list[str] = []
    for r in results:
        if r.workload == w.name and r.impl != "go" and r.interpreter not in seen:
            seen.append(r.interpreter)
    return seen


def rows(results: list[Result], w: Workload) -> list[list[str]]:
    """Table rows of one workload: implementation, interpreter, median, ratio, note."""
    index = _by(results)
    out: list[list[str]] = []
    for r in results:
        if r.workload != w.name:
            continue
        base = index.get((r.interpreter, w.name, "goconc"))
        if r.impl == "go":
            interps = _goconc_interp(results, w)
            base = index.get((interps[0], w.name, "goconc")) if interps else None
        value = r.metrics.get(w.metric) if r.status == "ok" else None
        ratio = ""
        if value and base is not None and base.status == "ok" and r.impl != "goconc":
            g = base.metrics.get(w.metric)
            if g:
                ratio = f"{g / value:.2f}x"
        extras = ", ".join(f"{k} {_fmt(v)}" for k, v in r.metrics.items() if k != w.metric)
        note = r.reason if r.status != "ok" else extras
        shown = _fmt(value) if value is not None else r.status
        out.append([r.impl, r.interpreter, shown, ratio, note])
    return out


def evaluate(
    results: list[Result], w: Workload
) -> list[tuple[Target, str, float | None, bool | None]]:
    """Each target of ``w`` per interpreter: (target, interpreter, ratio, met)."""
    index = _by(results)
    out: list[tuple[Target, str, float | None, bool | None]] = []
    for t in w.targets:
        metric = t.metric or w.metric
        lower = w.lower_is_better if t.lower_is_better is None else t.lower_is_better
        for interp in _goconc_interp(results, w):
            mine = index.get((interp, w.name, t.impl))
            g = mine.metrics.get(metric) if mine and mine.status == "ok" else None
            if not t.peer:
                met = (
                    None
                    if g is None or t.absolute is None
                    else (g <= t.absolute if lower else g >= t.absolute)
                )
                out.append((t, interp, g, met))
                continue
            peer = index.get((interp, w.name, t.peer))
            p = peer.metrics.get(metric) if peer and peer.status == "ok" else None
            if g is None or not p:
                out.append((t, interp, None, None))
                continue
            ratio = g / p
            out.append((t, interp, ratio, ratio <= t.ratio if lower else ratio >= t.ratio))
    return out


def _verdict(met: bool | None) -> str:
    return "MET" if met else ("NOT MET" if met is False else "n/a (not measured)")


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
        for t, interp, ratio, met in evaluate(results, w):
            shown = "" if ratio is None else (f" ({ratio:.2f}x)" if t.peer else f" ({_fmt(ratio)})")
            lines.append(f"  target [{interp}]: {t.text}: {_verdict(met)}{shown}")
    return "\n".join(lines)


def markdown(
    results: list[Result], workloads: list[Workload], info: dict[str, str], plot_dir: str | None
) -> str:
    out = [BEGIN, ""]
    out.append("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if v))
    out.append("")
    targets: list[str] = []
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
            out.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
        out.append("")
        for t, interp, ratio, met in evaluate(results, w):
            shown = "" if ratio is None else (f"{ratio:.2f}x" if t.peer else _fmt(ratio))
            targets.append(f"| {w.name} | {interp} | {t.text} | {shown} | {_verdict(met)} |")
    if targets:
        out += [
            "### Targets",
            "",
            "| workload | interpreter | target | figure | verdict |",
            "|---|---|---|---:|---|",
            *targets,
            "",
        ]
    if plot_dir:
        for png in sorted(Path(plot_dir).glob("*.png")):
            out.append(f"![{png.stem}]({png.as_posix()})")
        out.append("")
    out.append(END)
    return "\n".join(out)


def update_markdown(
    path: Path,
    results: list[Result],
    workloads: list[Workload],
    info: dict[str, str],
    plot_dir: str | None,
) -> None:
    """Replace the generated part of ``path``, keeping the hand-written text."""
    generated = markdown(results, workloads, info, plot_dir)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + generated + tail
    else:
        text = text.rstrip("\n") + "\n\n" + generated + "\n"
    path.write_text(text)


def plot(results: list[Result], workloads: list[Workload], directory: Path) -> None:
    """One PNG per workload (the primary figure per implementation) and the
    starvation experiment's acquisitions per worker."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("goconc bench: --plot needs matplotlib (pip install -e '.[bench]')")
        return
    directory.mkdir(parents=True, exist_ok=True)
    for w in workloads:
        ok = [
            r
            for r in results
            if r.workload == w.name and r.status == "ok" and w.metric in r.metrics
        ]
        if not ok:
            continue
        labels = [
            r.impl if len({x.interpreter for x in ok}) == 1 else f"{r.impl}\n{r.interpreter}"
            for r in ok
        ]
        values = [r.metrics[w.metric] for r in ok]
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(ok) + 2), 3.2))
        colors = ["tab:green" if r.impl == "goconc" else "tab:gray" for r in ok]
        ax.bar(range(len(ok)), values, color=colors)
        ax.set_xticks(range(len(ok)), labels, fontsize=7)
        ax.set_ylabel(w.metric)
        ax.set_title(
            f"{w.name} ({'lower' if w.lower_is_better else 'higher'} is better)", fontsize=9
        )
        fig.tight_layout()
        fig.savefig(directory / f"{_slug(w.name)}.png", dpi=110)
        plt.close(fig)
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
            fig.savefig(directory / f"{_slug(w.name)}-workers.png", dpi=110)
            plt.close(fig)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")
