"""The inner-loop optimizer interface users write against, and the steps every variant shares.

    class InnerLoopOptimizer:
        def __init__(self, model, inner_lr): ...
        def adapt(self, model, support_x, support_y, n_steps) -> nn.Module   # differentiable
        def meta_parameters(self) -> list[Tensor]                             # [] for plain SGD

`model` is a `Learner` (a backbone at explicit parameters); `adapt` returns a new `Learner`.
Whether the steps are differentiated through (MAML) or not (FOMAML, evaluation, iMAML's inner
solve) is decided by the problem, which sets `first_order`; variants just call `gradients`.
"""
from __future__ import annotations

import torch
from torch import nn

from optimizers.learner import Learner


class OptimizerSpecError(ValueError):
    """A named optimizer that does not exist, a class without the interface, or an optimizer
    that cannot work with the backbone it is given."""


class InnerLoopOptimizer(nn.Module):
    #: Can this optimizer's result be used with implicit (iMAML) hypergradients? Implicit
    #: differentiation assumes φ minimises the inner objective over all parameters, so it
    #: cannot see how φ got there; a variant that says no gives the reason below.
    supports_implicit = True
    implicit_reason = ""

    def __init__(self, model: nn.Module, inner_lr: float):
        super().__init__()
        self.inner_lr = float(inner_lr)
        self.first_order = False  # set by the problem
        self.grad_clip = 0.0      # per-step global-norm clipping (0: off)
        self.grad_tol = 0.0       # stop when the gradient norm falls below (0: run all steps)
        self.iteration = 0        # meta-iterations done; set by the problem (for schedules)

    @classmethod
    def from_config(cls, model: nn.Module, cfg: dict) -> "InnerLoopOptimizer":
        """Built from a run's config; variants with their own settings read them here."""
        return cls(model, cfg["inner"]["lr"])

    @classmethod
    def backbone_options(cls, cfg: dict) -> dict:
        """Extra arguments for models.build_backbone (e.g. per-step batch norm)."""
        return {}

    def adapt(self, model: Learner, support_x, support_y, n_steps: int) -> Learner:
        raise NotImplementedError

    def query_objective(self, learner: Learner, query_x, query_y):
        """One task's (outer loss, accuracy) from its adapted learner; variants whose outer
        loss looks at the whole trajectory (MAML++'s multi-step loss) override it."""
        return learner.evaluate(query_x, query_y)

    def meta_parameters(self) -> list[torch.Tensor]:
        return [p for p in self.parameters() if p.requires_grad]

    def adapted_names(self, model: Learner) -> list[str]:
        """Which parameters the inner loop moves (all of them, unless a variant says less)."""
        return list(model.params)

    # ---- shared steps -------------------------------------------------------------------
    def gradients(self, model: Learner, x, y, step: int | None = None,
                  names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """∇φ of the inner objective. Second order keeps the graph (create_graph); first order
        differentiates a detached copy, so φ stays linked to θ only through the update sums."""
        names = names if names is not None else self.adapted_names(model)
        if self.first_order or not torch.is_grad_enabled():
            probe = model.with_params({k: model.params[k].detach().requires_grad_() for k in names})
            with torch.enable_grad():
                loss = probe.loss(x, y, step)
                grads = torch.autograd.grad(loss, [probe.params[k] for k in names])
        else:
            loss = model.loss(x, y, step)
            grads = torch.autograd.grad(loss, [model.params[k] for k in names], create_graph=True)
        grads = dict(zip(names, grads))
        if self.grad_clip > 0:
            grads = clip_by_global_norm(grads, self.grad_clip)
        return grads

    def step_size(self, name: str, step: int):
        """The learning rate for one parameter at one inner step (a float or a tensor)."""
        return self.inner_lr

    def descend(self, model: Learner, grads: dict[str, torch.Tensor], step: int) -> Learner:
        return model.with_params({k: model.params[k] - self.step_size(k, step) * g
                                  for k, g in grads.items()})

    def converged(self, grads: dict[str, torch.Tensor]) -> bool:
        return self.grad_tol > 0 and float(global_norm(grads)) < self.grad_tol

    def descend_steps(self, model: Learner, x, y, n_steps: int, record: bool = False) -> Learner:
        """Up to `n_steps` gradient steps. The result knows the step that produced it (for
        per-step layers) and, with `record`, keeps the learner after every step."""
        trajectory = []
        for step in range(n_steps):
            grads = self.gradients(model, x, y, step)
            if self.converged(grads):
                break
            model = self.descend(model, grads, step).at_step(step)
            if record:
                trajectory.append(model)
        model.trajectory = trajectory
        return model


def param_key(name: str) -> str:
    """A parameter name usable as an nn.ParameterDict key (which may not contain dots)."""
    return name.replace(".", "__")


def rate_table(model: nn.Module, value: float, shape) -> nn.ParameterDict:
    """Learned step sizes, one tensor `shape(p)` per backbone parameter p, all set to `value`."""
    # pairs, not a dict: ParameterDict sorts a dict's keys, and the order should be the model's
    return nn.ParameterDict([(param_key(k), nn.Parameter(torch.full(shape(p), float(value))))
                             for k, p in model.named_parameters()])


def global_norm(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(sum((g.detach() ** 2).sum() for g in tensors.values()))


def clip_by_global_norm(grads: dict[str, torch.Tensor], max_norm: float) -> dict[str, torch.Tensor]:
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values()))
    scale = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
    return {k: g * scale for k, g in grads.items()}
