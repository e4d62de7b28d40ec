"""All tasks of a meta-batch adapted in one pass: parameters stacked on a task dimension,
[T, *p.shape], and the backbone run over them with `torch.func.vmap(functional_call)`.

Why: the per-task loop issues the same small kernels T times from Python; stacked, each layer
runs once for the whole meta-batch (vmap turns per-task convolutions into one grouped
convolution and per-task batch norm into one batch norm over T·C channels). The gradient of
the *sum* of the task losses with respect to the stacked φ is every task's own gradient, so
plain autograd (create_graph for MAML) differentiates the vectorized steps exactly as it does
the loop. Used only for plain SGD steps (see `vectorizable`); anything else keeps the loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from models.step_batchnorm import StepBatchNorm
from optimizers import SGD
from problems.checkpointing import checkpointed_step

Params = dict[str, torch.Tensor]


def vectorizable(optimizer, backbone: nn.Module) -> bool:
    """Plain SGD steps with no per-step clipping or early stop (both couple a task's step to a
    global norm or a data-dependent branch), and a backbone with no state updated in place
    (running batch-norm statistics cannot be written from inside vmap)."""
    if type(optimizer) is not SGD or optimizer.grad_clip > 0 or optimizer.grad_tol > 0:
        return False
    return not any(isinstance(m, StepBatchNorm) and m.track_running_stats
                   for m in backbone.modules())


def prefers_vectorized(backbone: nn.Module) -> bool:
    """`vectorize: auto`. On CUDA the loop is launch-bound, so stacking wins. On CPU, oneDNN's
    grouped convolutions (what vmap makes of per-task convolutions) are no faster than T
    separate ones, and vmap's batch-norm rule adds copies: benchmarks/speed.py measured the
    vectorized CNN4 slower than the loop on CPU, so convolutional backbones keep the loop there."""
    if next(backbone.parameters()).is_cuda:
        return True
    return not any(isinstance(m, nn.Conv2d) for m in backbone.modules())


#: `inner.vectorize`: "auto" (where measured faster), "always" (whenever possible), "never".
SETTINGS = ("auto", "always", "never")


def check_setting(setting: str) -> str:
    if setting not in SETTINGS:
        raise ValueError(f"inner.vectorize must be one of {', '.join(SETTINGS)}, got {setting!r}")
    return setting


def use_vectorized(setting: str, optimizer, backbone: nn.Module) -> bool:
    """A lower level's `vectorize` setting resolved for this call."""
    if setting == "never" or not vectorizable(optimizer, backbone):
        return False
    return setting == "always" or prefers_vectorized(backbone)


def stack(params: Params, tasks: int) -> Params:
    """θ broadcast to every task (a view: gradients flow back to θ summed over tasks)."""
    return {k: v.unsqueeze(0).expand(tasks, *v.shape) for k, v in params.items()}


def task(params: Params, t: int) -> Params:
    return {k: v[t] for k, v in params.items()}


def forward(backbone: nn.Module, params: Params, x: torch.Tensor, step: int | None = None):
    """Outputs of every task's learner on its own inputs: [T, n, ...]."""
    def one(p, xi):
        return functional_call(backbone, p, (xi,), {"step": step})
    return vmap(one)(params, x)


def task_losses(outputs: torch.Tensor, y: torch.Tensor, task_kind: str) -> torch.Tensor:
    """Per-task mean loss, [T]: the same reductions as Learner.task_loss, task by task."""
    if task_kind == "classification":
        flat = F.cross_entropy(outputs.flatten(0, 1), y.flatten(), reduction="none")
        return flat.view(y.shape[0], -1).mean(1)
    return ((outputs - y) ** 2).flatten(1).mean(1)


def proximal(params: Params, anchor: Params, prox: float) -> torch.Tensor:
    """Per-task λ/2‖φ_t−θ‖², [T] (θ unstacked, broadcast over tasks)."""
    total = 0.0
    for k, a in anchor.items():
        total = total + ((params[k] - a.unsqueeze(0)) ** 2).flatten(1).sum(1)
    return 0.5 * prox * total


def losses(backbone, params: Params, x, y, task_kind: str, step: int | None = None,
           anchor: Params | None = None, prox: float = 0.0) -> torch.Tensor:
    """The inner objective of every task, [T]."""
    out = task_losses(forward(backbone, params, x, step), y, task_kind)
    if anchor and prox:
        out = out + proximal(params, anchor, prox)
    return out


def evaluate(backbone, params: Params, x, y, task_kind: str):
    """(per-task loss [T], per-task accuracy [T] or None), as Learner.evaluate for each task."""
    outputs = forward(backbone, params, x)
    loss = task_losses(outputs, y, task_kind)
    if task_kind != "classification":
        return loss, None
    return loss, (outputs.argmax(-1) == y).float().mean(1)


def sgd_adapt(backbone, theta: Params, x, y, task_kind: str, steps: int, lr: float, *,
              first_order: bool, anchor: Params | None = None, prox: float = 0.0,
              checkpoint: bool = False) -> Params:
    """`steps` SGD steps on every task at once, from θ stacked T times. Second order keeps the
    graph (MAML); first order differentiates detached copies, so φ links to θ only through the
    update sums (FOMAML, iMAML's inner solve, evaluation). `checkpoint` keeps only φ between
    steps and recomputes each step's graph during the backward pass."""
    names = list(theta)
    phi = list(stack(theta, x.shape[0]).values())

    def gradients(current: list[torch.Tensor], step: int, create_graph: bool):
        objective = losses(backbone, dict(zip(names, current)), x, y, task_kind, step,
                           anchor, prox).sum()
        return torch.autograd.grad(objective, current, create_graph=create_graph)

    def descend(current: list[torch.Tensor], create_graph: bool, step: int) -> list[torch.Tensor]:
        return [p - lr * g for p, g in zip(current, gradients(current, step, create_graph))]

    second_order = not first_order and torch.is_grad_enabled()
    for step in range(steps):
        if second_order and checkpoint:
            phi = checkpointed_step(lambda current, create_graph, step=step:
                                    descend(current, create_graph, step), phi)
        elif second_order:
            phi = descend(phi, True, step)
        else:  # the gradient at detached φ: the graph keeps only the update sums
            with torch.enable_grad():
                grads = gradients([p.detach().requires_grad_() for p in phi], step, False)
            phi = [p - lr * g for p, g in zip(phi, grads)]
    return dict(zip(names, phi))
