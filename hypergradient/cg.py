"""Conjugate gradient for x ≈ A⁻¹ b, A symmetric positive definite and given only as a
matrix-vector product (a Hessian-vector product in practice), truncated at the first direction
of negative curvature. Betty 0.2.1's own `cg` is wrong (docs/DESIGN.md); this one is tested
against dense solves."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hypergradient.solver import LinearSolver
from hypergradient.utils import MatVec, Vector, dot, per_system, scale


@dataclass
class SolveInfo:
    iterations: int = 0
    residual_norms: list[float] = field(default_factory=list)  # max over systems, per iteration
    negative_curvature: int = 0  # systems stopped because pᵀAp ≤ 0 (A not positive definite)


def conjugate_gradient(matvec: MatVec, b: Vector, iters: int, tol: float = 0.0,
                       batch_dims: int = 0, fallback_scale: float = 0.0
                       ) -> tuple[Vector, SolveInfo]:
    """Solve A x = b from x₀ = 0. Stops after `iters` iterations or when every system's
    residual norm is below `tol`·‖b‖. Systems that have converged stop moving, and so do
    systems where a search direction has pᵀAp ≤ 0: CG is only defined for positive-definite A,
    and past that point its iterates grow without bound (truncated CG, as in Newton-CG).
    A system stopped before its first step would return x = 0; it returns `fallback_scale`·b
    instead (for A = H + λI, 1/λ: the answer if the curvature H were zero)."""
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in b]
    rr = dot(r, r, batch_dims)
    b_norm = rr.sqrt()
    info = SolveInfo()
    tiny = torch.finfo(b[0].dtype).tiny
    stopped = torch.zeros_like(rr, dtype=torch.bool)
    for _ in range(iters):
        if tol > 0 and bool((rr.sqrt() <= tol * b_norm).all()):
            break
        Ap = matvec(p)
        pAp = dot(p, Ap, batch_dims)
        stopped = stopped | (pAp <= 0)
        if info.iterations == 0:
            stopped_at_start = stopped.clone()
        active = (rr > tiny) & ~stopped
        alpha = torch.where(active, rr / torch.where(pAp.abs() > tiny, pAp, torch.ones_like(pAp)),
                            torch.zeros_like(rr))
        x = [xi + scale(alpha, pi) for xi, pi in zip(x, p)]
        r = [ri - scale(alpha, api) for ri, api in zip(r, Ap)]
        rr_new = dot(r, r, batch_dims)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)),
                           torch.zeros_like(rr))
        p = [ri + scale(beta, pi) for ri, pi in zip(r, p)]
        rr = rr_new
        info.iterations += 1
        info.residual_norms.append(float(rr.sqrt().max()))
    info.negative_curvature = int(stopped.sum())
    if info.iterations and fallback_scale and bool(stopped_at_start.any()):
        x = [torch.where(per_system(stopped_at_start, bi), fallback_scale * bi, xi)
             for xi, bi in zip(x, b)]
    return x, info


class ConjugateGradient(LinearSolver):
    """`inner.implicit.solver: cg`: `iters` CG iterations (stopping early below `tol`); a task
    where H + λI is indefinite stops at the first negative curvature, with a warning."""
    sweep_flag, sweep_label = "--cg-iters", "cg"

    def solve(self, hvp: MatVec, vector: Vector) -> Vector:
        s = self.settings
        x, info = conjugate_gradient(hvp, vector, self.iters, s.tol, batch_dims=1,
                                     fallback_scale=1.0 / (s.lam + s.damping))
        self.last_solve = info
        if info.negative_curvature:
            self.warning = (f"iMAML: I + H/λ is not positive definite on {info.negative_curvature} "
                            f"of {len(vector[0])} tasks (λ={s.lam}); CG stopped early on them "
                            "(first-order answer where it could not take a step). "
                            "Raise inner.implicit.lam or inner.implicit.damping.")
        return x
