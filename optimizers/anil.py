"""ANIL (Raghu et al. 2020, "Almost No Inner Loop"): only the classification head adapts;
the body is shared across tasks and meta-learned through the head's adaptation.

The body's features of the support set are computed once per task (at θ, with the graph to θ
unless first order), then plain SGD steps run on the head alone over those features. The
returned learner holds the body at θ and the head at φ, so it predicts query data as usual.
A backbone qualifies when it has a `head` module and a `features(x, step)` method.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from optimizers.base import OptimizerSpecError
from inner_loop import Learner, TaskStack
from optimizers.sgd import SGD

HEAD = "head"


def _head_params(params: dict, prefix: str = HEAD + ".") -> dict:
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


class HeadLearner(Learner):
    """A learner whose inputs are already features: only the head's parameters act."""

    def forward(self, features: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return functional_call(getattr(self.backbone, HEAD), _head_params(self.params), (features,))


class HeadStack(TaskStack):
    """HeadLearner for all tasks at once: stacked features in, the stacked head acts."""

    def forward(self, features: torch.Tensor, step: int | None = None) -> torch.Tensor:
        stacked, shared = self.split()
        return self.executor(getattr(self.backbone, HEAD), _head_params(stacked),
                             _head_params(shared), features, {})


def head_of(model: Learner) -> Learner:
    """The same parameters, read as a learner of features (one task or a stack)."""
    if isinstance(model, TaskStack):
        return HeadStack(model.backbone, model.params, model.task, model.stacked, model.tasks,
                         model.executor, model.anchor, model.prox)
    return HeadLearner(model.backbone, model.params, model.task, model.anchor, model.prox)


class ANIL(SGD):
    """SGD on the head alone, over body features computed once per task.

    Arguments:
        model: a backbone with a `head` module and a `features(x, step)` method (CNN4, MLP).
        inner_lr: the head's step size.

    Reference: Raghu et al. 2020, "Rapid Learning or Feature Reuse? Towards Understanding the
    Effectiveness of MAML".

    Example:
        python run.py --problem anil --dataset omniglot5w1s
    """
    name = "anil"
    adapts_stacks = True
    checkpointable = True
    supports_implicit = False
    implicit_reason = ("the implicit solver adapts every parameter; ANIL's head-only proximal "
                       "problem would need a solve over the head alone")

    def __init__(self, model: nn.Module, inner_lr: float):
        super().__init__(model, inner_lr)
        if not isinstance(getattr(model, HEAD, None), nn.Module) or not callable(
                getattr(model, "features", None)):
            raise OptimizerSpecError(
                f"anil needs a backbone with a `{HEAD}` module and a `features(x, step)` method; "
                f"{type(model).__name__} lacks them")

    def adapted_names(self, model: Learner) -> list[str]:
        return [k for k in model.params if k.startswith(HEAD + ".")]

    def adapt(self, model: Learner, support_x, support_y, n_steps: int) -> Learner:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.context.first_order):
            features = model.features(support_x)
        head = super().adapt(head_of(model), features, support_y, n_steps)
        return model.with_params({k: head.params[k] for k in self.adapted_names(model)})
