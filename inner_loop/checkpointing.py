"""Gradient checkpointing of unrolled inner steps (`inner.checkpoint_steps`).

Why: second-order MAML keeps every step's forward *and* create_graph backward graph alive until
the meta-gradient is taken, so memory grows with K times the activations. Here a step keeps only
its input φ_k; the backward pass rebuilds that one step's graph, takes the vector-Jacobian
product v − α H_k v through it, and frees it. Memory: K copies of φ plus one step's graph; time:
one extra forward+backward per step. torch.utils.checkpoint is not used: its reentrant variant
does not support `torch.autograd.grad` (which Betty calls), and its non-reentrant variant would
intercept the inner `autograd.grad` that each step itself makes.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

#: descend(φ_k, create_graph) -> φ_{k+1}; differentiable in φ_k (and any meta-parameters it
#: reads) when create_graph is True.
Descend = Callable[[list[torch.Tensor], bool], list[torch.Tensor]]


class _CheckpointedStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, descend: Descend, n_phi: int, *inputs):
        ctx.descend, ctx.n_phi = descend, n_phi
        ctx.extra = inputs[n_phi:]  # the very tensors `descend` reads, not saved copies
        ctx.save_for_backward(*inputs[:n_phi])
        with torch.enable_grad():
            probe = [p.detach().requires_grad_() for p in inputs[:n_phi]]
            out = descend(probe, False)
        return tuple(o.detach() for o in out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_out):
        phi, extra = ctx.saved_tensors, ctx.extra
        with torch.enable_grad():
            probe = [p.detach().requires_grad_() for p in phi]
            out = ctx.descend(probe, True)
            wrt = probe + [e for e in extra if e.requires_grad]
            grads = iter(torch.autograd.grad(out, wrt, grad_out, allow_unused=True))
        phi_grads = [next(grads) for _ in probe]
        extra_grads = [next(grads) if e.requires_grad else None for e in extra]
        return (None, None, *phi_grads, *extra_grads)


def checkpointed_step(descend: Descend, phi: Sequence[torch.Tensor],
                      meta_parameters: Sequence[torch.Tensor] = ()) -> list[torch.Tensor]:
    """φ_{k+1} = descend(φ_k), storing only φ_k. `meta_parameters` are tensors `descend` reads
    directly (e.g. learned step sizes); passing them routes their gradients through the step."""
    return list(_CheckpointedStep.apply(descend, len(phi), *phi, *meta_parameters))
