"""A run's settings as typed options: `load_options` merges the YAML layers (configs.loader) and
builds one `RunOptions`, checked once, field by field (configs.typed).

Why here: this is the lowest layer that sees every registry a setting must name (datasets,
backbones, inner optimizers, lower levels, implicit solvers, task executors, outer optimizers),
so each closed set is the registry itself and none is written twice. Everything above (engines,
compare, benchmarks, run.py) reads attributes: `options.inner.lr`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from configs.loader import merge_config, merge_more, with_defaults
from configs.typed import ConfigError, Options, option
from envs.options import DataOptions
from models import activations, factory as backbones
from optimizers import executor
from optimizers.mamlpp import MamlppOptions
from optimizers.registry import resolve_optimizer


def _lower_levels():
    from problems.factory import LOWER_LEVELS  # the factory builds from these options
    return LOWER_LEVELS


def _solvers():
    from problems.implicit import SOLVERS
    return SOLVERS


def _outer_optimizers():
    from problems.factory import OUTER_OPTIMIZERS
    return OUTER_OPTIMIZERS


def _schedules():
    from problems.factory import SCHEDULES
    return SCHEDULES


def _devices():
    from problems.system import DEVICES
    return DEVICES


@dataclass(frozen=True)
class ModelOptions(Options):
    section = "model"
    backbone: str = option(choices=lambda: backbones.BACKBONES)
    hidden: int = option(at_least=1)
    activation: str = option(choices=lambda: activations.ACTIVATIONS)


@dataclass(frozen=True)
class InnerOptions(Options):
    """The lower level: which one (`kind`), the optimizer that moves φ, and each kind's settings
    (documented in configs/defaults.yaml)."""
    section = "inner"
    kind: str = option(choices=_lower_levels)
    optimizer: str = option()
    lr: float = option(above=0)
    steps: int = option(at_least=1)
    first_order: bool = option()
    grad_clip: float = option(at_least=0)
    grad_tol: float = option(at_least=0)
    checkpoint_steps: bool = option()
    vectorize: str = option(choices=lambda: executor.SETTINGS)
    task_threads: int = option(at_least=0)
    lam: float = option(above=0)
    solver: str = option(choices=_solvers)
    solver_iters: int = option(at_least=1)
    solver_tol: float = option(at_least=0)
    damping: float = option(at_least=0)
    power_iters: int = option(at_least=1)
    neumann_alpha: float = option(at_least=0)
    mamlpp: MamlppOptions = option()

    def __post_init__(self) -> None:
        super().__post_init__()
        resolve_optimizer(self.optimizer)  # a registered name or an importable module:Class


@dataclass(frozen=True)
class OuterOptions(Options):
    section = "outer"
    optimizer: str = option(choices=_outer_optimizers)
    lr: float = option(above=0)
    schedule: str = option(choices=_schedules)
    min_lr_ratio: float = option(at_least=0)
    decay: float = option(above=0)
    decay_every: int = option(at_least=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_lr_ratio > 1:
            raise ConfigError(f"outer.min_lr_ratio={self.min_lr_ratio} must be at most 1 (the final lr "
                              "as a fraction of outer.lr)")
        if self.schedule == "step" and self.decay_every < 1:
            raise ConfigError("outer.schedule=step needs outer.decay_every >= 1 (iterations between "
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
    device: str = option(choices=_devices)
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
            raise ConfigError(f"data.ways={self.data.ways}, but sinusoid is regression (one output); "
                              "drop data.ways or set it to 1")


def load_options(problem: str | None, dataset: str | None, overrides: list[str] | None = None,
                 values: dict[str, Any] | None = None, config_file: str | None = None) -> RunOptions:
    """The checked options for `problem` on `dataset` with the user's layers on top (see
    configs.loader.merge_config for the order of the layers)."""
    return RunOptions.parse(merge_config(problem, dataset, overrides, values, config_file))


def saved_options(recorded: dict) -> RunOptions:
    """The options a checkpoint or results.json recorded (keys added since take their
    defaults: configs.loader.with_defaults)."""
    return RunOptions.parse(with_defaults(recorded))


def override_options(options: RunOptions, values: dict[str, Any] | None = None,
                     overrides: list[str] | None = None, config_file: str | None = None) -> RunOptions:
    """`options` with more layers on top (settings changed on --resume or evaluate), checked again."""
    return RunOptions.parse(merge_more(options.to_dict(), values, overrides, config_file))
