"""The interface of a linear solver for implicit hypergradients: x ≈ A⁻¹ v where A is the
Hessian of iMAML's inner objective (H + λI, plus `damping`·I), one system per task.

A solver reads its settings from the `inner.implicit` section (lam, iters, tol, damping, ...),
takes A only as a Hessian-vector product, and may leave a one-line `warning` after a solve.
`compare` sweeps `iters` with the solver's own flag (`sweep_flag`)."""
from __future__ import annotations

from typing import ClassVar

from hypergradient.utils import MatVec, Vector


class LinearSolver:
    #: compare's flag that sweeps `iters` (e.g. "--cg-iters"), its label and default values
    sweep_flag: ClassVar[str] = ""
    sweep_label: ClassVar[str] = "iters"
    sweep_default: ClassVar[tuple[int, ...]] = (1, 2, 5, 10, 20)

    def __init__(self, settings):
        self.settings = settings      # the `inner.implicit` section (problems.options)
        self.iters = settings.iters
        self.warning: str | None = None

    def solve(self, hvp: MatVec, vector: Vector) -> Vector:
        raise NotImplementedError
