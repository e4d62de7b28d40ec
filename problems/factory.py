"""Builds the two levels from a run's options: swapping the lower level is one value,
`inner.kind`, and the inner-loop optimizer is `inner.optimizer` (a name or module:Class)."""
from __future__ import annotations

import torch
from betty.configs import Config

import hypergradient
from models import build_backbone
from inner_loop import Learner
from optimizers import resolve_optimizer
from problems.implicit import ImplicitInner
from problems.outer import MetaModel, Outer
from problems.reptile import ReptileInner, reptile_conflict
from problems.unrolled import UnrolledInner

#: `inner.kind`: the lower-level problems, by name.
LOWER_LEVELS = {"unrolled": UnrolledInner, "implicit": ImplicitInner, "reptile": ReptileInner}
#: `outer.optimizer` and `outer.schedule`.
OUTER_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
def _cosine(optimizer, options):
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(options.iterations, 1),
        eta_min=options.outer.lr * options.outer.min_lr_ratio)


def _linear(optimizer, options):
    # Reptile's outer step size: annealed linearly to min_lr_ratio·lr over the run
    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0,
                                             end_factor=options.outer.min_lr_ratio,
                                             total_iters=max(options.iterations, 1))


def _step(optimizer, options):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=options.outer.decay_every,
                                           gamma=options.outer.decay)


#: `outer.schedule`: the outer learning rate over the meta-iterations, stepped once per outer step
#: (a schedule in iterations, so a wall-clock budget that stops early leaves it unfinished).
SCHEDULES = {"constant": None, "cosine": _cosine, "linear": _linear, "step": _step}


class ProblemConfigError(ValueError):
    """A combination of settings that cannot work, with the reason."""


def build_inner_optimizer(options, backbone, cls: type | None = None):
    inner = options.inner
    cls = cls or resolve_optimizer(inner.optimizer)
    # from_config: variants with settings of their own; a user's class may only take (model, lr)
    make = getattr(cls, "from_config", None)
    optimizer = make(backbone, options) if make else cls(backbone, inner.lr)
    optimizer.grad_clip = inner.grad_clip
    optimizer.grad_tol = inner.grad_tol
    return optimizer


def build_outer_optimizer(options, meta_model: MetaModel):
    outer = options.outer
    optimizer = OUTER_OPTIMIZERS[outer.optimizer](meta_model.parameters(), lr=outer.lr)
    schedule = SCHEDULES[outer.schedule]
    return optimizer, (schedule(optimizer, options) if schedule else None)


def build_problems(options, input_shape: tuple, task_kind: str, out_features: int):
    """Returns (problems, dependencies) ready for a Betty Engine. `options`: problems.RunOptions."""
    # Betty routes the implicit lower level's hypergradient (Config(type="imaml")) through its
    # jvp_fn_mapping; add the project's entry there before any Betty problem exists.
    hypergradient.register()
    model, inner = options.model, options.inner
    cls = resolve_optimizer(inner.optimizer)
    extra = cls.backbone_options(options) if hasattr(cls, "backbone_options") else {}
    backbone = build_backbone(model.backbone, input_shape, out_features, model.hidden,
                              activation=model.activation, **extra)
    inner_optimizer = build_inner_optimizer(options, backbone, cls)
    meta_model = MetaModel(backbone, inner_optimizer)
    optimizer, scheduler = build_outer_optimizer(options, meta_model)
    # retain_graph: the implicit path differentiates the outer loss a second time (w.r.t. φ).
    outer = Outer("outer", Config(retain_graph=True), meta_model, optimizer, scheduler)

    common = dict(backbone=backbone, inner_optimizer=inner_optimizer, task_kind=task_kind,
                  steps=inner.steps, vectorize=inner.vectorize,
                  task_threads=inner.task_threads)
    if inner.kind == "unrolled":
        lower = UnrolledInner("inner", Config(), first_order=inner.first_order,
                              checkpoint_steps=inner.checkpoint_steps, **common)
        u2l = {}  # the hypergradient flows through the unrolled graph itself
    elif inner.kind == "implicit":
        if not getattr(inner_optimizer, "supports_implicit", True):
            reason = getattr(inner_optimizer, "implicit_reason", "") or (
                "implicit gradients assume φ minimises the inner objective, which its meta-"
                "parameters do not change, so they would get no meta-gradient")
            raise ProblemConfigError(
                f"inner optimizer {inner.optimizer!r} cannot be used with inner.kind=implicit: "
                f"{reason}; use inner.kind=unrolled")
        lower = ImplicitInner("inner", Config(type="imaml"), implicit=inner.implicit, **common)
        u2l = {outer: [lower]}
    else:  # reptile
        reason = reptile_conflict(inner_optimizer, Learner.of(backbone, task_kind))
        if reason:
            raise ProblemConfigError(f"inner optimizer {inner.optimizer!r} cannot be used with "
                                     f"inner.kind=reptile: {reason}; use inner.kind=unrolled")
        lower = ReptileInner("inner", Config(), adapt_on=inner.reptile.adapt_on, **common)
        u2l = {}  # the outer loss is Reptile's surrogate, a direct function of θ
    return [outer, lower], {"u2l": u2l, "l2u": {lower: [outer]}}
