"""What a benchmark is: workloads, the implementations measured on them, targets."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Case", "Target", "Workload", "case", "go_case", "missing", "workload", "WORKLOADS"]

#: One measurement of one implementation: ``fn(scale)`` returns metrics by name;
#: ``scale`` is 1.0 for the full suite and smaller for ``--quick``.
CaseFn = Callable[[float], dict[str, float]]


@dataclass(frozen=True)
class Target:
    """A promise: goconc's figure against ``peer``'s, as a ratio bound.

    For a lower-is-better metric the target is met when goconc/peer <= ratio;
    for a higher-is-better one when goconc/peer >= ratio.  ``metric`` selects a
    figure other than the workload's primary one; ``impl`` one other than
    ``goconc``.
    """

    peer: str
    ratio: float
    text: str
    metric: str = ""
    impl: str = "goconc"
    absolute: float | None = None  # a bound on the figure itself, when peer == ""
    lower_is_better: bool | None = None  # for ``metric``; None: as the workload's metric
    source: str = ""  # where the promise was made ("issue 2"), shown in the targets table
    #: Judged only on free-threaded interpreters; "not applicable" on those with a GIL.
    free_threaded_only: bool = False


@dataclass(frozen=True)
class Case:
    workload: str
    impl: str
    fn: CaseFn | None  # None for a Go case (run by the Go binary)
    requires: tuple[str, ...] = ()
    go_name: str = ""

    @property
    def is_go(self) -> bool:
        """Whether the case is a workload of ``benchmarks/go`` (run with ``--go``)."""
        return self.fn is None


@dataclass
class Workload:
    name: str
    metric: str
    lower_is_better: bool
    description: str
    module: str
    targets: tuple[Target, ...] = ()
    cases: dict[str, Case] = field(default_factory=dict)
    #: Repetitions in ``--quick`` mode when fewer than the harness's (0: the harness's).
    quick_reps: int = 0
    #: Whether the worker first runs the case once, small, unmeasured.  Off for long
    #: experiments that measure no throughput (a warm-up would only cost time).
    warmup: bool = True


WORKLOADS: dict[str, Workload] = {}
_current_module: list[str] = [""]


def workload(
    name: str,
    metric: str,
    *,
    lower_is_better: bool = True,
    description: str = "",
    targets: tuple[Target, ...] = (),
    quick_reps: int = 0,
    warmup: bool = True,
) -> Workload:
    """Declare a workload: what is measured, in which unit, and what is promised.

    ``quick_reps`` caps the repetitions of a long, time-based experiment in
    ``--quick`` mode; ``warmup=False`` skips the unmeasured first run.
    """
    w = Workload(
        name,
        metric,
        lower_is_better,
        description,
        _current_module[0],
        targets,
        quick_reps=quick_reps,
        warmup=warmup,
    )
    WORKLOADS[name] = w
    return w


def case(
    workload_name: str, impl: str, *, requires: tuple[str, ...] = ()
) -> Callable[[CaseFn], CaseFn]:
    """Register ``fn(scale) -> metrics`` as implementation ``impl`` of a workload.

    ``requires`` names the importable modules the case needs (a peer library);
    when one is missing the case is reported as skipped.
    """

    def register(fn: CaseFn) -> CaseFn:
        WORKLOADS[workload_name].cases[impl] = Case(workload_name, impl, fn, requires)
        return fn

    return register


def go_case(workload_name: str, go_name: str, impl: str = "Go") -> None:
    """The same workload written in Go (``benchmarks/go``, ``-workload go_name``),
    run with ``--go``; ``impl`` names it in the table when a workload has several."""
    WORKLOADS[workload_name].cases[impl] = Case(workload_name, impl, None, (), go_name)


def missing(requires: tuple[str, ...]) -> list[str]:
    return [m for m in requires if importlib.util.find_spec(m) is None]
