"""goconc bench: the harness runs each case in a worker, compares, judges and reports."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from goconc.bench import _registry, _report
from goconc.bench._registry import WORKLOADS, Target, Workload
from goconc.bench._runner import Result, main

# A benchmarks directory of its own: one workload with a case that works, one that
# fails, one whose peer library is missing, a Go case, and targets of every kind.
_MODULE = """
from goconc.bench import Target, case, go_case, workload

workload(
    "toy",
    "us/op",
    description="A toy workload.",
    targets=(
        Target("peer", 1.0, "at least equal to peer", source="issue 0"),
        Target("", 0, "at most 2 KiB", metric="bytes", absolute=2048.0, lower_is_better=True),
        Target("missing peer", 1.0, "at least equal to a missing peer"),
    ),
    quick_reps=1,
)


@case("toy", "goconc")
def _goconc(scale: float) -> dict[str, float]:
    return {"us/op": 1.0, "bytes": 1000.0, "scale": scale}


@case("toy", "peer")
def _peer(scale: float) -> dict[str, float]:
    return {"us/op": 2.0}


@case("toy", "broken")
def _broken(scale: float) -> dict[str, float]:
    raise RuntimeError("this case is broken")


@case("toy", "missing peer", requires=("goconc_no_such_module",))
def _missing(scale: float) -> dict[str, float]:
    return {"us/op": 1.0}


go_case("toy", "toy-go")
"""


@pytest.fixture
def registry() -> Iterator[None]:
    """Keep the workloads registered by the test apart from the real ones."""
    saved = dict(WORKLOADS)
    WORKLOADS.clear()
    try:
        yield
    finally:
        WORKLOADS.clear()
        WORKLOADS.update(saved)


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: None) -> Path:
    d = tmp_path / "benchmarks"
    d.mkdir()
    (d / "bench_toy.py").write_text(textwrap.dedent(_MODULE))
    monkeypatch.setenv("GOCONC_BENCHMARKS", str(d))
    return d


def test_a_run_reports_ok_failed_and_skipped_cases_and_judges_targets(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "out" / "figures.json"
    status = main(["--quick", "--json", str(out_json)])
    assert status == 1  # the broken case failed
    payload = json.loads(out_json.read_text())
    by_impl = {r["impl"]: r for r in payload["results"]}
    assert by_impl["goconc"]["status"] == "ok"
    assert by_impl["goconc"]["metrics"]["scale"] == 0.25  # the quick scale
    assert len(by_impl["goconc"]["samples"]) == 1  # the workload's quick_reps
    assert by_impl["broken"]["status"] == "failed"
    assert "this case is broken" in by_impl["broken"]["reason"]
    assert by_impl["missing peer"]["status"] == "skipped"
    assert by_impl["Go"]["status"] == "skipped"
    assert by_impl["Go"]["reason"] == "needs --go"
    printed = capsys.readouterr().out
    assert "target [issue 0]" in printed
    assert "at least equal to peer: MET (0.50x (1 vs 2))" in printed
    assert "at most 2 KiB: MET (1,000)" in printed
    assert "at least equal to a missing peer: not measured" in printed


def test_markdown_keeps_the_hand_written_text_and_links_charts_relatively(
    bench_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    md = tmp_path / "BENCHMARKS.md"
    md.write_text(f"# Title\n\nIntro.\n\n{_report.BEGIN}\nold figures\n{_report.END}\n\nOutro.\n")
    charts = tmp_path / "docs" / "bench"
    main(["--quick", "--only", "toy", "--markdown", str(md), "--plot", str(charts)])
    text = md.read_text()
    assert text.startswith("# Title\n\nIntro.\n\n" + _report.BEGIN)
    assert text.endswith(_report.END + "\n\nOutro.\n")
    assert "old figures" not in text
    assert "![toy](docs/bench/toy.png)" in text
    assert (charts / "toy.png").is_file()
    assert "| toy | at least equal to peer | issue 0 |" in text


def _result(impl: str, interp: str, value: float, status: str = "ok") -> Result:
    return Result(interp, "w", impl, status, metrics={"m": value} if status == "ok" else {})


def _workload(lower: bool, *targets: Target) -> Workload:
    w = Workload("w", "m", lower, "", "", targets)
    for impl in ("goconc", "peer"):
        w.cases[impl] = _registry.Case("w", impl, lambda s: {})
    w.cases["Go"] = _registry.Case("w", "Go", None, (), "w-go")
    return w


def test_targets_are_judged_in_the_direction_of_the_metric() -> None:
    results = [_result("goconc", "py", 3.0), _result("peer", "py", 2.0)]
    lower = _report.evaluate(results, _workload(True, Target("peer", 1.0, "t")))
    higher = _report.evaluate(results, _workload(False, Target("peer", 1.0, "t")))
    assert (lower[0].figure, lower[0].met) == (1.5, False)
    assert (higher[0].figure, higher[0].met) == (1.5, True)


def test_targets_are_judged_per_interpreter_and_go_is_compared_with_the_first() -> None:
    w = _workload(True, Target("peer", 1.0, "t"))
    results = [
        _result("goconc", "py", 1.0),
        _result("peer", "py", 2.0),
        _result("goconc", "pyt", 4.0),
        _result("peer", "pyt", 2.0),
        _result("Go", "go1.19", 0.5),
    ]
    verdicts = _report.evaluate(results, w)
    assert [(v.interpreter, v.met) for v in verdicts] == [("py", True), ("pyt", False)]
    rows = {(r[0], r[1]): r[3] for r in _report.rows(results, w)}
    assert rows[("Go", "go1.19")] == "2.00x"  # goconc on "py" over Go
    assert rows[("peer", "pyt")] == "2.00x"


def test_a_missing_figure_leaves_a_target_not_measured() -> None:
    w = _workload(True, Target("peer", 1.0, "t"), Target("", 0, "abs", absolute=1.0))
    results = [_result("goconc", "py", 0, status="failed"), _result("peer", "py", 2.0)]
    assert [v.verdict for v in _report.evaluate(results, w)] == ["not measured"] * 2


def test_list_names_every_workload_without_running_anything(
    bench_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--list"]) == 0
    assert "toy" in capsys.readouterr().out


def test_a_missing_benchmarks_directory_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: None
) -> None:
    monkeypatch.setenv("GOCONC_BENCHMARKS", os.fspath(tmp_path / "nowhere"))
    assert main([]) == 2


def test_a_second_interpreter_runs_every_python_case_under_its_own_label(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "python-again"
    other.symlink_to(sys.executable)
    out_json = tmp_path / "figures.json"
    main(["--quick", "--python", str(other), "--json", str(out_json)])
    results = json.loads(out_json.read_text())["results"]
    labels = {r["interpreter"] for r in results if r["impl"] == "goconc"}
    assert len(labels) == 2
    assert any(str(other) in label for label in labels)
    assert capsys.readouterr().out.count("at least equal to peer: MET") == 2


def test_an_interpreter_that_cannot_run_is_refused(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--python", str(tmp_path / "no-python")]) == 2
    assert "not an executable" in capsys.readouterr().err


def test_a_free_threaded_target_is_not_applicable_on_a_gil_build() -> None:
    t = Target("", 0, "ft", absolute=1.7, lower_is_better=False, free_threaded_only=True)
    w = _workload(False, t)
    results = [_result("goconc", "CPython 3.11.7", 1.0), _result("goconc", "CPython 3.13.5t", 1.9)]
    verdicts = _report.evaluate(results, w)
    assert [v.verdict for v in verdicts] == ["not applicable (GIL build)", "MET"]


def test_a_saved_run_is_reported_again_without_running_anything(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "run.json"
    main(["--quick", "--json", str(saved)])
    first = capsys.readouterr().out
    ran = tmp_path / "ran"
    spy = f"\n@case('toy', 'spy')\ndef _spy(scale):\n    open({str(ran)!r}, 'w').close()\n"
    (bench_dir / "bench_toy.py").write_text(textwrap.dedent(_MODULE) + spy)
    WORKLOADS.clear()
    md = tmp_path / "B.md"
    status = main(["--from-json", str(saved), "--markdown", str(md)])
    assert status == 1  # the saved run had a failed case
    assert not ran.exists()
    assert capsys.readouterr().out == first
    assert "| toy | at least equal to peer | issue 0 |" in md.read_text()
