"""iMAML's best-response product for Betty's hypergradient path (the `imaml` entry that
`hypergradient.register` adds to `betty.hypergradient.jvp_fn_mapping`).

`curr` is the lower problem (problems.ImplicitInner): it provides the inner objective
(`training_step_exec`), φ (`trainable_parameters`), `damping` and `solve`, which picks CG or the
Neumann series of this package with its settings."""
from __future__ import annotations

import torch


def implicit_best_response(vector, curr, prev, sync: bool):
    """Betty jvp hook: −(∂²L_in/∂θ∂φ)ᵀ (∂²L_in/∂φ²)⁻¹ v, which for the proximal objective
    equals (I + H/λ)⁻¹ v summed over tasks."""
    inner_loss = curr.training_step_exec(curr.cur_batch)
    phi = curr.trainable_parameters()
    grads = torch.autograd.grad(inner_loss, phi, create_graph=True)

    def hvp(u):
        hu = torch.autograd.grad(grads, phi, grad_outputs=u, retain_graph=True)
        return [h + curr.damping * ui for h, ui in zip(hu, u)] if curr.damping else list(hu)

    x = curr.solve(hvp, [v.detach() for v in vector])
    theta = prev.trainable_parameters()
    if sync:
        torch.autograd.backward(grads, inputs=theta, grad_tensors=[-xi for xi in x])
        return None
    implicit = torch.autograd.grad(grads, theta, grad_outputs=x, allow_unused=True)
    return [None if g is None else -g for g in implicit]
