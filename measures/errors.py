"""How far apart two meta-gradients are, over all parameters together. Imports only torch."""
from __future__ import annotations

import torch


def flat(values) -> torch.Tensor:
    """A tensor, or a list of tensors (one per parameter), as one detached float64 CPU vector."""
    if isinstance(values, torch.Tensor):
        values = [values]
    return torch.cat([v.detach().reshape(-1).to("cpu", torch.float64) for v in values])


def rel_err(a, b) -> float:
    """‖a−b‖/‖b‖ over all parameters together (tensors or lists of tensors). Per tensor it
    would mislead: conv biases feed batch norm, so their true gradient is 0 and only rounding
    is left there."""
    a, b = flat(a), flat(b)
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))
