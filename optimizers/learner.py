"""A backbone evaluated at explicit parameter tensors.

Adaptation never copies modules or round-trips state dicts: a `Learner` pairs the one shared
backbone with a dict of tensors (θ itself, or an adapted φ that may carry an autograd graph
back to θ) and calls the backbone through `torch.func.functional_call`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class Learner(nn.Module):
    def __init__(self, backbone: nn.Module, params: dict[str, torch.Tensor], task: str,
                 anchor: dict[str, torch.Tensor] | None = None, prox: float = 0.0,
                 step: int | None = None):
        super().__init__()
        # Not registered as a submodule: a Learner is a view of the backbone, not its owner.
        object.__setattr__(self, "backbone", backbone)
        self.params = dict(params)
        self.task = task  # "classification" or "regression"
        self.anchor = anchor  # iMAML's proximal centre θ (None: no proximal term)
        self.prox = prox
        # The inner step that produced these parameters: per-step layers (MAML++'s batch norm)
        # use it when a call gives no step, so a query is judged with the layers of its step.
        self.step = step
        # The learners after every inner step, when the optimizer records them (MAML++'s
        # multi-step loss scores the query set along the whole trajectory).
        self.trajectory: list[Learner] = []

    @classmethod
    def of(cls, backbone: nn.Module, task: str, detach: bool = False) -> "Learner":
        params = dict(backbone.named_parameters())
        if detach:
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
        return cls(backbone, params, task)

    def with_params(self, params: dict[str, torch.Tensor]) -> "Learner":
        """Same backbone, proximal term and kind, new parameter values (missing keys kept)."""
        return type(self)(self.backbone, {**self.params, **params}, self.task, self.anchor,
                          self.prox, self.step)

    def at_step(self, step: int | None) -> "Learner":
        learner = self.with_params({})
        learner.step = step
        return learner

    def forward(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        step = self.step if step is None else step
        return functional_call(self.backbone, self.params, (x,), {"step": step})

    def features(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The backbone's body (`backbone.features`) at these parameters, for optimizers that
        adapt only the head on features computed once (ANIL)."""
        step = self.step if step is None else step
        body = _Method(self.backbone, "features")
        return functional_call(body, {f"module.{k}": v for k, v in self.params.items()}, (x,),
                               {"step": step})

    def task_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return F.cross_entropy(outputs, y)
        return F.mse_loss(outputs, y)

    def proximal_term(self) -> torch.Tensor | float:
        if not self.anchor or self.prox == 0.0:
            return 0.0
        return 0.5 * self.prox * sum(((self.params[k] - a) ** 2).sum()
                                     for k, a in self.anchor.items())

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The inner objective: task loss, plus λ/2‖φ−θ‖² when an anchor is set."""
        return self.task_loss(self(x, step), y) + self.proximal_term()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, step: int | None = None):
        """(loss, accuracy) on a batch; accuracy is None for regression."""
        outputs = self(x, step)
        loss = self.task_loss(outputs, y)
        if self.task != "classification":
            return loss, None
        return loss, (outputs.argmax(-1) == y).float().mean()

    def detached(self) -> "Learner":
        return self.with_params({k: v.detach() for k, v in self.params.items()})


class _Method(nn.Module):
    """Runs one method of a module as `forward`, so functional_call can call it."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args, **kwargs):
        return getattr(self.module, self.method)(*args, **kwargs)
