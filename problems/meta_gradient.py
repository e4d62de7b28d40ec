"""The meta-gradient of one meta-batch, computed by the same Betty code path that training
uses (inner adaptation, outer loss, direct gradient and best-response paths), without
updating θ. Tests check it against exact answers; `compare` measures it across methods."""
from __future__ import annotations

import torch


def compute_meta_gradient(outer, inner, episode,
                          iteration: int | None = None) -> list[torch.Tensor]:
    """∂(outer loss)/∂(outer trainable parameters) for `episode`, as training computes it after
    `iteration` meta-iterations (what schedules read: MAML++'s first-order annealing and
    multi-step weights; None: the lower problem's own step count); leaves θ untouched."""
    outer.zero_grad()
    count = inner._count
    if iteration is not None:
        inner._count = iteration + 1  # Betty counts a step before running it, as training does
    try:
        inner.one_step_descent(episode)
    finally:
        inner._count = count
    loss, _ = outer.get_loss(episode)
    params = outer.trainable_parameters()
    outer.backward(loss=loss, params=params, paths=outer.paths,
                   create_graph=False, retain_graph=outer.config.retain_graph, allow_unused=True)
    if outer.is_implemented("grad_callback"):
        outer.grad_callback()  # data-parallel averaging, as in training
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
    outer.zero_grad()
    return grads
