"""Vectors as lists of tensors, for the solvers of this package.

With `batch_dims=1` the first dimension of every tensor indexes independent systems (one per
task of a meta-batch: the Hessian is block diagonal), and every scalar of the algorithms (step
sizes, residual norms, eigenvalues) is kept per system.
"""
from __future__ import annotations

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


def per_system(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A per-system scalar (or flag) shaped to broadcast over a stacked tensor."""
    return s.reshape(s.shape + (1,) * (v.dim() - s.dim()))


def scale(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return per_system(s, v) * v


def join_systems(pieces: list[Vector]) -> Vector:
    """Vectors of consecutive groups of systems ([T_g, ...] each) as one vector of [T, ...]."""
    return list(pieces[0]) if len(pieces) == 1 else [torch.cat(p) for p in zip(*pieces)]


def sum_present(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    """The sum of the tensors that are not None (None if all are: no gradient reached it)."""
    present = [t for t in tensors if t is not None]
    return sum(present[1:], present[0]) if present else None
