"""Which meta-gradients `compare` computes: each named problem config, swept over the knobs
that change its answer (inner steps for every method; the solver's iterations too for implicit
ones, by the solver's own flag: hypergradient.SOLVERS). A method is a problem name plus config
values, so any problem file in configs/problems/ is compared the same way."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import hypergradient
from configs import available_problems

DEFAULT_PROBLEMS = ("maml", "fomaml", "imaml", "imaml-neumann", "reptile")


def default_problems() -> list[str]:
    """The standard set, keeping only those whose config exists (reptile.yaml may not yet)."""
    present = set(available_problems())
    return [p for p in DEFAULT_PROBLEMS if p in present]


@dataclass(frozen=True)
class Method:
    problem: str
    kind: str                 # the config's inner.kind: unrolled, implicit, ...
    steps: int
    solver: str | None = None  # implicit: a name in hypergradient.SOLVERS
    solver_iters: int | None = None

    @property
    def label(self) -> str:
        text = f"{self.problem} K={self.steps}"
        if self.solver is not None:
            text += f" {hypergradient.SOLVERS[self.solver].sweep_label}={self.solver_iters}"
        return text

    def values(self) -> dict:
        """Config values this method sets on top of its problem's config."""
        values = {"inner.steps": self.steps}
        if self.solver is not None:
            values["inner.implicit.iters"] = self.solver_iters
        return values


def expand(problem: str, cfg, inner_steps: list[int], solver_sweeps: dict[str, list[int]]
           ) -> list[Method]:
    """The sweep for one problem, given its loaded config; `solver_sweeps`: iterations to try
    per solver name (a solver missing there is run at its config's iterations)."""
    kind = cfg.inner.kind
    if kind != "implicit":
        return [Method(problem, kind, k) for k in inner_steps]
    solver = cfg.inner.implicit.solver
    iters = solver_sweeps.get(solver) or [cfg.inner.implicit.iters]
    return [Method(problem, kind, k, solver, n) for k in inner_steps for n in iters]


def add_sweep_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per registered solver (its `sweep_flag`), sweeping its iterations."""
    for name, solver in hypergradient.SOLVERS.items():
        if solver.sweep_flag:
            parser.add_argument(solver.sweep_flag, dest=f"sweep_{name}", type=parse_ints,
                                default=list(solver.sweep_default),
                                help=f"{name}: iterations to compare (inner.implicit.iters)")


def solver_sweeps(args) -> dict[str, list[int]]:
    """{solver name: iterations} from the parsed flags of add_sweep_flags."""
    return {name: getattr(args, f"sweep_{name}") for name in hypergradient.SOLVERS
            if hasattr(args, f"sweep_{name}")}


def parse_ints(text: str) -> list[int]:
    """'1,5,10' -> [1, 5, 10] (argparse type; every value >= 1)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers >= 1 (e.g. 1,5,10), got {text!r}")
    return values


def parse_problems(text: str) -> list[str]:
    """'maml,imaml' -> ['maml', 'imaml']; unknown names are rejected by the config loader."""
    return [p.strip() for p in text.split(",") if p.strip()]
