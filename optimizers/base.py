"""The inner-loop optimizer interface users write against, and the one inner loop the
registered variants share.

    class InnerLoopOptimizer:
        def __init__(self, model, inner_lr): ...
        def adapt(self, model, support_x, support_y, n_steps) -> Learner
        def meta_parameters(self) -> list[Tensor]        # [] for plain SGD

What the problem decides about an adaptation (first or second order, the meta-iteration,
checkpointed steps) is `self.context`, set by the task runner before it calls `adapt`; the
shared steps read it, so an `adapt` built from them needs no arguments beyond the four.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from inner_loop import Learner, TaskStack, checkpointed_step


@dataclass(frozen=True)
class AdaptContext:
    """What the problem asks of one adaptation."""
    first_order: bool = False   # do not differentiate through the steps (FOMAML, iMAML, tests)
    iteration: int = 0          # meta-iterations done (schedules such as MAML++'s)
    checkpoint: bool = False    # second order: recompute each step's graph in the backward pass


def declares(optimizer, flag: str) -> bool:
    """Whether the class that writes this optimizer's `adapt` sets `flag` (`adapts_stacks`,
    `checkpointable`): a subclass that writes its own `adapt` declares for itself."""
    for cls in type(optimizer).__mro__:
        if "adapt" in cls.__dict__:
            return bool(cls.__dict__.get(flag, False))
    return False


class OptimizerSpecError(ValueError):
    """A named optimizer that does not exist, a class without the interface, or an optimizer
    that cannot work with the backbone it is given."""


#: Registered optimizers by name (`inner.optimizer: <name>`): every subclass that sets `name`.
REGISTRY: dict[str, type] = {}


class InnerLoopOptimizer(nn.Module):
    #: Set it to register the class under this name (one file: the optimizer's own module).
    name: str | None = None
    #: Can this optimizer's result be used with implicit (iMAML) hypergradients? Implicit
    #: differentiation assumes φ minimises the inner objective over all parameters, so it
    #: cannot see how φ got there; a variant that says no gives the reason below.
    supports_implicit = True
    implicit_reason = ""
    #: Set on the class that writes `adapt`: True when `adapt` works unchanged on a TaskStack
    #: (all tasks at once, elementwise rules do); else it is called one task at a time.
    adapts_stacks = False
    #: Set on the class that writes `adapt`: True when it honours `context.checkpoint`.
    checkpointable = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name:
            other = REGISTRY.get(name)
            where = (cls.__module__, cls.__qualname__)
            if other is not None and (other.__module__, other.__qualname__) != where:
                raise OptimizerSpecError(f"inner optimizer name {name!r} is taken by "
                                         f"{other.__module__}.{other.__qualname__}; pick another")
            REGISTRY[name] = cls

    def __init__(self, model: nn.Module, inner_lr: float):
        super().__init__()
        self.inner_lr = float(inner_lr)
        self.grad_clip = 0.0      # per-step global-norm clipping (0: off)
        self.grad_tol = 0.0       # stop when the gradient norm falls below (0: run all steps)
        self.context = AdaptContext()

    @classmethod
    def from_config(cls, model: nn.Module, options) -> "InnerLoopOptimizer":
        """Built from a run's options (problems.RunOptions); variants with their own settings
        read them here (`options.inner.lr`, ...)."""
        return cls(model, options.inner.lr)

    @classmethod
    def backbone_options(cls, options) -> dict:
        """Extra arguments for models.build_backbone (e.g. per-step batch norm)."""
        return {}

    def adapt(self, model: Learner, support_x, support_y, n_steps: int) -> Learner:
        """φ after `n_steps` inner steps from `model` (differentiable unless
        `self.context.first_order`)."""
        raise NotImplementedError

    def query_objective(self, learner: Learner, query_x, query_y):
        """(outer loss, accuracy) from the adapted learner (per task on a TaskStack); variants
        whose outer loss looks at the whole trajectory (MAML++'s multi-step loss) override it."""
        return learner.evaluate(query_x, query_y)

    def meta_parameters(self) -> list[torch.Tensor]:
        return [p for p in self.parameters() if p.requires_grad]

    def adapted_names(self, model: Learner) -> list[str]:
        """Which parameters the inner loop moves (all of them, unless a variant says less)."""
        return list(model.params)

    # ---- shared steps -------------------------------------------------------------------
    def gradients(self, model: Learner, x, y, step: int | None = None,
                  names: list[str] | None = None, first_order: bool | None = None
                  ) -> dict[str, torch.Tensor]:
        """∇φ of the inner objective (per task: on a TaskStack, the gradient of the summed task
        losses). Second order keeps the graph (create_graph); first order differentiates a
        detached copy, so φ stays linked to θ only through the update sums. `first_order`
        None: the context's."""
        names = names if names is not None else self.adapted_names(model)
        first_order = self.context.first_order if first_order is None else first_order
        if first_order or not torch.is_grad_enabled():
            probe = model.with_params({k: model.params[k].detach().requires_grad_() for k in names})
            with torch.enable_grad():
                loss = probe.loss(x, y, step)
                grads = torch.autograd.grad(loss, [probe.params[k] for k in names])
        else:
            loss = model.loss(x, y, step)
            grads = torch.autograd.grad(loss, [model.params[k] for k in names], create_graph=True)
        grads = dict(zip(names, grads))
        if self.grad_clip > 0:
            grads = clip_by_global_norm(grads, self.grad_clip, task_axis(model))
        return grads

    def step_size(self, name: str, step: int):
        """The learning rate for one parameter at one inner step (a float or a tensor)."""
        return self.inner_lr

    def descend(self, model: Learner, grads: dict[str, torch.Tensor], step: int) -> Learner:
        return model.with_params({k: model.params[k] - self.step_size(k, step) * g
                                  for k, g in grads.items()})

    def still_moving(self, grads: dict[str, torch.Tensor], model: Learner) -> torch.Tensor | None:
        """With `grad_tol`: which tasks' gradient norm is still at or above it (bool, [T] on a
        TaskStack); None without it."""
        if self.grad_tol <= 0:
            return None
        return global_norm(grads, task_axis(model)) >= self.grad_tol

    def descend_steps(self, model: Learner, x, y, n_steps: int, record: bool = False, *,
                      first_order: bool | None = None) -> Learner:
        """The inner loop: up to `n_steps` gradient steps (a task whose gradient norm falls
        below `grad_tol` stops there). The result knows the step that produced it (for per-step
        layers) and, with `record`, keeps the learner after every step. With
        `context.checkpoint` (second order only) each step keeps just its input φ and rebuilds
        its graph in the backward pass. `first_order` None: the context's."""
        trajectory, moving = [], None
        first_order = self.context.first_order if first_order is None else first_order
        checkpoint = self.context.checkpoint and not first_order and torch.is_grad_enabled()
        if checkpoint and self.grad_tol > 0:
            raise ValueError("inner.checkpoint_steps cannot be combined with inner.grad_tol")
        for step in range(n_steps):
            if checkpoint:
                model = self.checkpointed_step(model, x, y, step)
            else:
                grads = self.gradients(model, x, y, step, first_order=first_order)
                still = self.still_moving(grads, model)
                if still is not None:
                    moving = still if moving is None else moving & still
                    if not bool(moving.any()):
                        break
                    if not bool(moving.all()):  # stopped tasks keep their φ
                        grads = {k: g * per_task(moving.to(g.dtype), g) for k, g in grads.items()}
                model = self.descend(model, grads, step).at_step(step)
            if record:
                trajectory.append(model)
        model.trajectory = trajectory
        return model

    def checkpointed_step(self, model: Learner, x, y, step: int) -> Learner:
        names = self.adapted_names(model)

        def descend(current, create_graph):
            at = model.with_params(dict(zip(names, current)))
            grads = self.gradients(at, x, y, step, names, first_order=not create_graph)
            return [self.descend(at, grads, step).params[k] for k in names]

        phi = checkpointed_step(descend, [model.params[k] for k in names], self.meta_parameters())
        return model.with_params(dict(zip(names, phi))).at_step(step)


def task_axis(model) -> bool:
    return isinstance(model, TaskStack)


def per_task(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[T] values shaped to broadcast against a stacked tensor [T, ...]."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def param_key(name: str) -> str:
    """A parameter name usable as an nn.ParameterDict key (which may not contain dots)."""
    return name.replace(".", "__")


def rate_table(model: nn.Module, value: float, shape) -> nn.ParameterDict:
    """Learned step sizes, one tensor `shape(p)` per backbone parameter p, all set to `value`."""
    # pairs, not a dict: ParameterDict sorts a dict's keys, and the order should be the model's
    return nn.ParameterDict([(param_key(k), nn.Parameter(torch.full(shape(p), float(value))))
                             for k, p in model.named_parameters()])


def global_norm(tensors: dict[str, torch.Tensor], stacked: bool = False) -> torch.Tensor:
    """‖g‖ over all parameters together (per task, [T], when the tensors are stacked)."""
    if stacked:
        return torch.sqrt(sum((g.detach() ** 2).flatten(1).sum(1) for g in tensors.values()))
    return torch.sqrt(sum((g.detach() ** 2).sum() for g in tensors.values()))


def clip_by_global_norm(grads: dict[str, torch.Tensor], max_norm: float,
                        stacked: bool = False) -> dict[str, torch.Tensor]:
    """Each task's gradients scaled to a global norm of at most `max_norm`."""
    if stacked:
        norm = torch.sqrt(sum((g ** 2).flatten(1).sum(1) for g in grads.values()))
        scale = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
        return {k: g * per_task(scale, g) for k, g in grads.items()}
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values()))
    scale = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
    return {k: g * scale for k, g in grads.items()}
