"""Neumann series for x ≈ A⁻¹ b, with a step size that keeps it convergent. Betty 0.2.1's own
`neumann` takes a fixed step and diverges when αλ_max(A) > 2 (docs/DESIGN.md)."""
from __future__ import annotations

import torch

from hypergradient.power import power_iteration
from hypergradient.solver import LinearSolver
from hypergradient.utils import MatVec, Vector, dot, scale


def neumann_series(matvec: MatVec, b: Vector, terms: int, alpha: torch.Tensor | float,
                   batch_dims: int = 0) -> Vector:
    """x = α Σ_{j<terms} (I − αA)^j b, which tends to A⁻¹ b when 0 < αλ(A) < 2 for every
    eigenvalue λ. Pick α = 1/λ_max (see `safe_neumann_alpha`) to make that hold."""
    return _series(matvec, b, terms, alpha)[0]


def _series(matvec: MatVec, b: Vector, terms: int, alpha) -> tuple[Vector, Vector]:
    """(the series' sum, its last term (I − αA)^(terms−1) b)."""
    alpha = torch.as_tensor(alpha, dtype=b[0].dtype, device=b[0].device)
    term = [t.clone() for t in b]
    total = [t.clone() for t in b]
    for _ in range(terms - 1):
        A_term = matvec(term)
        term = [t - scale(alpha, a) if alpha.dim() else t - alpha * a for t, a in zip(term, A_term)]
        total = [s + t for s, t in zip(total, term)]
    return [scale(alpha, s) if alpha.dim() else alpha * s for s in total], term


def safe_neumann_alpha(matvec: MatVec, like: Vector, iters: int = 20, batch_dims: int = 0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """α = 1/λ̂_max from power iteration: the series then contracts by (1 − λ_min/λ_max).
    Deterministic in A: power iteration starts from its own seeded generator."""
    return 1.0 / power_iteration(matvec, like, iters, batch_dims, generator).clamp_min(1e-12)


class NeumannSeries(LinearSolver):
    """`inner.implicit.solver: neumann`: `iters` terms of the series, step size
    `neumann_alpha`, or 1/λ_max from `power_iters` power iterations when it is 0. A task whose
    terms grew instead of shrinking (αλ_max(A) > 2, or A indefinite) is reported: its answer is
    not an approximation of A⁻¹v."""
    sweep_flag, sweep_label = "--neumann-terms", "terms"

    def solve(self, hvp: MatVec, vector: Vector) -> Vector:
        s = self.settings
        alpha = s.neumann_alpha or safe_neumann_alpha(hvp, vector, s.power_iters, batch_dims=1)
        x, last = _series(hvp, vector, self.iters, alpha)
        grew = int((dot(last, last, 1) > dot(vector, vector, 1)).sum())
        if grew:
            step = (f"the fixed step inner.implicit.neumann_alpha={s.neumann_alpha}"
                    if s.neumann_alpha else f"1/λ_max from {s.power_iters} power iterations")
            self.warning = (f"iMAML: the Neumann series grew instead of converging on {grew} of "
                            f"{len(vector[0])} tasks with {step}; lower neumann_alpha, raise "
                            "inner.implicit.power_iters, or use inner.implicit.solver=cg.")
        return x
