"""Linear solvers for implicit hypergradients: x ≈ A⁻¹ b for a symmetric positive-definite A
given only as a matrix-vector product (a Hessian-vector product in practice).

Vectors are lists of tensors. With `batch_dims=1` the first dimension of every tensor indexes
independent systems (one per task of a meta-batch: the Hessian is block diagonal), and every
scalar of the algorithms (step sizes, residual norms, eigenvalues) is kept per system.
Betty 0.2.1's own `cg` is wrong and its `neumann` diverges when αλ_max(A) > 2 (docs/DESIGN.md);
these are the project's own, tested against dense solves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

Vector = list[torch.Tensor]
MatVec = Callable[[Vector], Vector]


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
    """Inner product per system: a scalar, or a [T] tensor when batch_dims=1."""
    total = 0
    for x, y in zip(a, b):
        total = total + (x * y).reshape(*x.shape[:batch_dims], -1).sum(-1)
    return total


def _per_system(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A per-system scalar (or flag) shaped to broadcast over a stacked tensor."""
    return s.reshape(s.shape + (1,) * (v.dim() - s.dim()))


def _scale(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _per_system(s, v) * v


@dataclass
class SolveInfo:
    iterations: int = 0
    residual_norms: list[float] = field(default_factory=list)  # max over systems, per iteration
    negative_curvature: int = 0  # systems stopped because pᵀAp ≤ 0 (A not positive definite)


def conjugate_gradient(matvec: MatVec, b: Vector, iters: int, tol: float = 0.0,
                       batch_dims: int = 0, fallback_scale: float = 0.0) -> tuple[Vector, SolveInfo]:
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
        x = [xi + _scale(alpha, pi) for xi, pi in zip(x, p)]
        r = [ri - _scale(alpha, api) for ri, api in zip(r, Ap)]
        rr_new = dot(r, r, batch_dims)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)),
                           torch.zeros_like(rr))
        p = [ri + _scale(beta, pi) for ri, pi in zip(r, p)]
        rr = rr_new
        info.iterations += 1
        info.residual_norms.append(float(rr.sqrt().max()))
    info.negative_curvature = int(stopped.sum())
    if info.iterations and fallback_scale and bool(stopped_at_start.any()):
        x = [torch.where(_per_system(stopped_at_start, bi), fallback_scale * bi, xi)
             for xi, bi in zip(x, b)]
    return x, info


def power_iteration(matvec: MatVec, like: Vector, iters: int = 20, batch_dims: int = 0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Largest eigenvalue of a symmetric PSD A per system (a Rayleigh quotient, from below)."""
    v = [torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in like]
    eig = None
    for _ in range(iters):
        norm = dot(v, v, batch_dims).sqrt().clamp_min(1e-30)
        v = [_scale(1.0 / norm, t) for t in v]
        Av = matvec(v)
        eig = dot(v, Av, batch_dims)
        v = Av
    return eig


def neumann_series(matvec: MatVec, b: Vector, terms: int, alpha: torch.Tensor | float,
                   batch_dims: int = 0) -> Vector:
    """x = α Σ_{j<terms} (I − αA)^j b, which tends to A⁻¹ b when 0 < αλ(A) < 2 for every
    eigenvalue λ. Pick α = 1/λ_max (see `safe_neumann_alpha`) to make that hold."""
    alpha = torch.as_tensor(alpha, dtype=b[0].dtype, device=b[0].device)
    term = [t.clone() for t in b]
    total = [t.clone() for t in b]
    for _ in range(terms - 1):
        A_term = matvec(term)
        term = [t - _scale(alpha, a) if alpha.dim() else t - alpha * a for t, a in zip(term, A_term)]
        total = [s + t for s, t in zip(total, term)]
    return [_scale(alpha, s) if alpha.dim() else alpha * s for s in total]


def safe_neumann_alpha(matvec: MatVec, like: Vector, iters: int = 20, batch_dims: int = 0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """α = 1/λ̂_max from power iteration: the series then contracts by (1 − λ_min/λ_max)."""
    return 1.0 / power_iteration(matvec, like, iters, batch_dims, generator).clamp_min(1e-12)
