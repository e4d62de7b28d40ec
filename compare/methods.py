"""Which meta-gradients `compare` computes: each named problem config, swept over the knobs
that change its answer (inner steps for every method; CG iterations or Neumann terms too for
implicit ones). A method is a problem name plus config values, so any problem file in
configs/problems/ (including ones added later, e.g. Reptile) is compared the same way."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

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
    solver: str | None = None  # implicit: cg or neumann
    solver_iters: int | None = None

    @property
    def label(self) -> str:
        text = f"{self.problem} K={self.steps}"
        if self.solver is not None:
            text += f" {'cg' if self.solver == 'cg' else 'terms'}={self.solver_iters}"
        return text

    def values(self) -> dict:
        """Config values this method sets on top of its problem's config."""
        values = {"inner.steps": self.steps}
        if self.solver is not None:
            values["inner.solver_iters"] = self.solver_iters
        return values


def expand(problem: str, cfg, inner_steps: list[int], cg_iters: list[int],
           neumann_terms: list[int]) -> list[Method]:
    """The sweep for one problem, given its loaded config."""
    kind = cfg.inner.kind
    if kind != "implicit":
        return [Method(problem, kind, k) for k in inner_steps]
    solver = cfg.inner.solver
    iters = cg_iters if solver == "cg" else neumann_terms
    return [Method(problem, kind, k, solver, n) for k in inner_steps for n in iters]


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
