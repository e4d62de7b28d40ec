"""The largest eigenvalue of a symmetric PSD A by power iteration: the Neumann series' step
size. The start vector comes from the solver's own seeded generator, never from torch's global
one, so the same A (the same θ and batch) always gives the same estimate."""
from __future__ import annotations

import torch

from hypergradient.utils import MatVec, Vector, dot, scale

SEED = 0  # the start vector's seed when no generator is passed


def power_iteration(matvec: MatVec, like: Vector, iters: int = 20, batch_dims: int = 0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Largest eigenvalue of a symmetric PSD A per system (a Rayleigh quotient, from below).
    The start vector is drawn from `generator`, by default a fresh CPU generator seeded with
    `SEED` at every call (torch's global random state is neither read nor advanced)."""
    if generator is None:
        generator = torch.Generator().manual_seed(SEED)
    v = [torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in like]
    eig = None
    for _ in range(iters):
        norm = dot(v, v, batch_dims).sqrt().clamp_min(1e-30)
        v = [scale(1.0 / norm, t) for t in v]
        Av = matvec(v)
        eig = dot(v, Av, batch_dims)
        v = Av
    return eig
