"""iMAML's best-response product for Betty's hypergradient path (the `imaml` entry that
`hypergradient.register` adds to `betty.hypergradient.jvp_fn_mapping`).

`curr` is the lower problem (problems.ImplicitInner): it provides the inner objective in parts
(`inner_parts`: one per group of tasks on a worker thread, or one for all tasks; each with its
φ and `loss()`), `map_parts` to run a job on every part, `damping`, and `solve`, which runs the
solver `inner.implicit.solver` names (`SOLVERS`). Each part's Hessian-vector products are its
own graph, so the parts run side by side; the system is block-diagonal over tasks, so the solve
sees the same [T, ...] vectors either way."""
from __future__ import annotations

import torch

from hypergradient.utils import join_systems, sum_present


def implicit_best_response(vector, curr, prev, sync: bool):
    """Betty jvp hook: −(∂²L_in/∂θ∂φ)ᵀ (∂²L_in/∂φ²)⁻¹ v, which for the proximal objective
    equals (I + H/λ)⁻¹ v summed over tasks."""
    parts = curr.inner_parts()
    grads = curr.map_parts(
        lambda i, part: torch.autograd.grad(part.loss(), part.phi, create_graph=True), parts)

    def hvp(u):
        def one(i, part):
            piece = part.take(u)
            hu = torch.autograd.grad(grads[i], part.phi, grad_outputs=piece, retain_graph=True)
            return [h + curr.damping * ui for h, ui in zip(hu, piece)] if curr.damping else list(hu)
        return join_systems(curr.map_parts(one, parts))

    x = curr.solve(hvp, [v.detach() for v in vector])
    theta = prev.trainable_parameters()
    implicit = curr.map_parts(lambda i, part: torch.autograd.grad(
        grads[i], theta, grad_outputs=part.take(x), allow_unused=True), parts)
    total = [sum_present(g) for g in zip(*implicit)]
    if sync:  # accumulate into .grad, as torch.autograd.backward(grads, inputs=theta) would
        for p, g in zip(theta, total):
            if g is not None:
                p.grad = -g if p.grad is None else p.grad - g
        return None
    return [None if g is None else -g for g in total]
