"""A run's settings as typed options, every section in this one module except `data`, which
the envs own (envs.DataOptions: envs run on their own). `load_options` merges the YAML layers
(configs.loader) and builds one `RunOptions`, checked once, field by field (configs.typed).

Why here: the lowest layer that sees every registry a setting names (datasets, backbones,
inner optimizers, lower levels, solvers, task executors, outer optimizers), so each closed set
is the registry itself. Everything above reads attributes: `options.inner.lr`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hypergradient
from configs.loader import merge_config, merge_more, with_defaults
from configs.typed import ConfigError, Options, option
from envs.options import DataOptions
from inner_loop import executor
from models import activations, factory as backbones
from optimizers import resolve_optimizer
from problems import factory, system


@dataclass(frozen=True)
class ModelOptions(Options):
    section = "model"
    backbone: str = option(choices=lambda: backbones.BACKBONES)
    hidden: int = option(at_least=1)
    activation: str = option(choices=lambda: activations.ACTIVATIONS)


@dataclass(frozen=True)
class MamlppOptions(Options):
    """`inner.mamlpp`: each piece of MAML++ switchable (see configs/defaults.yaml)."""
    section = "inner.mamlpp"
    learned_lrs: bool = option()
    min_lr: float = option(at_least=0)
    multi_step_loss: bool = option()
    msl_iters: int = option(at_least=0)
    per_step_bn: bool = option()
    first_order_iters: int = option(at_least=0)


@dataclass(frozen=True)
class ImplicitOptions(Options):
    """`inner.implicit`: iMAML's proximal strength and its linear solver; each solver reads
    what it needs (hypergradient.SOLVERS)."""
    section = "inner.implicit"
    lam: float = option(above=0, default=1.0)
    solver: str = option(choices=lambda: hypergradient.SOLVERS, default="cg")
    iters: int = option(at_least=1, default=5)
    tol: float = option(at_least=0, default=0.0)
    damping: float = option(at_least=0, default=0.0)
    power_iters: int = option(at_least=1, default=20)
    neumann_alpha: float = option(at_least=0, default=0.0)


@dataclass(frozen=True)
class ReptileOptions(Options):
    """`inner.reptile`: what a meta-training task's inner loop trains on."""
    section = "inner.reptile"
    adapt_on: str = option(choices=lambda: ("support", "episode"))


@dataclass(frozen=True)
class InnerOptions(Options):
    """The lower level: which one (`kind`), the optimizer that moves φ, and each kind's settings
    (documented in configs/defaults.yaml)."""
    section = "inner"
    kind: str = option(choices=lambda: factory.LOWER_LEVELS)
    optimizer: str = option()
    lr: float = option(above=0)
    steps: int = option(at_least=1)
    first_order: bool = option()
    grad_clip: float = option(at_least=0)
    grad_tol: float = option(at_least=0)
    checkpoint_steps: bool = option()
    vectorize: str = option(choices=lambda: executor.SETTINGS)
    task_threads: int = option(at_least=0)
    implicit: ImplicitOptions = option()
    mamlpp: MamlppOptions = option()
    reptile: ReptileOptions = option()

    def __post_init__(self) -> None:
        super().__post_init__()
        resolve_optimizer(self.optimizer)  # a registered name or an importable module:Class


@dataclass(frozen=True)
class OuterOptions(Options):
    section = "outer"
    optimizer: str = option(choices=lambda: factory.OUTER_OPTIMIZERS)
    lr: float = option(above=0)
    schedule: str = option(choices=lambda: factory.SCHEDULES)
    min_lr_ratio: float = option(at_least=0)
    decay: float = option(above=0)
    decay_every: int = option(at_least=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_lr_ratio > 1:
            raise ConfigError(f"outer.min_lr_ratio={self.min_lr_ratio} must be at most 1 "
                              "(the final lr "
                              "as a fraction of outer.lr)")
        if self.schedule == "step" and self.decay_every < 1:
            raise ConfigError("outer.schedule=step needs outer.decay_every >= 1 "
                              "(iterations between "
                              "decays), e.g. --set outer.decay_every=10000")


@dataclass(frozen=True)
class EvalOptions(Options):
    section = "eval"
    steps: int = option(at_least=0)
    episodes: int = option(at_least=1, at_most=100_000)  # the standard test is 600
    val_every: int = option(at_least=0)
    val_episodes: int = option(at_least=1, at_most=100_000)
    patience: int = option(at_least=0)
    log_every: int = option(at_least=1)


@dataclass(frozen=True)
class RunOptions(Options):
    """Everything one run is: the presets it came from, its budget, and each section."""
    problem: str = option()
    dataset: str = option()
    seed: int = option(at_least=0, at_most=2 ** 32 - 1)  # numpy's seeds are 32-bit
    iterations: int = option(at_least=1)
    minutes: float = option(at_least=0)
    checkpoint_every: int = option(at_least=0)
    device: str = option(choices=lambda: system.DEVICES)
    out: str | None = option()
    data_root: str | None = option()
    data: DataOptions = option()
    model: ModelOptions = option()
    inner: InnerOptions = option()
    outer: OuterOptions = option()
    eval: EvalOptions = option()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data.name == "sinusoid" and self.data.ways != 1:
            raise ConfigError(f"data.ways={self.data.ways}, but sinusoid is regression "
                              "(one output); "
                              "drop data.ways or set it to 1")


def load_options(problem: str | None, dataset: str | None, overrides: list[str] | None = None,
                 values: dict[str, Any] | None = None,
                 config_file: str | None = None) -> RunOptions:
    """The checked options for `problem` on `dataset` with the user's layers on top (see
    configs.loader.merge_config for the order of the layers)."""
    return RunOptions.parse(merge_config(problem, dataset, overrides, values, config_file))


def saved_options(recorded: dict) -> RunOptions:
    """The options a checkpoint or results.json recorded (keys added since take their
    defaults: configs.loader.with_defaults)."""
    return RunOptions.parse(with_defaults(recorded))


def override_options(options: RunOptions, values: dict[str, Any] | None = None,
                     overrides: list[str] | None = None,
                     config_file: str | None = None) -> RunOptions:
    """`options` with more layers on top (settings changed on --resume or evaluate), checked
    again."""
    return RunOptions.parse(merge_more(options.to_dict(), values, overrides, config_file))
