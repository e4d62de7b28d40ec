"""One way to build a system of problems outside the training loop: the outer and inner Betty
problems for a config, initialised by a Betty Engine exactly as training initialises them, over
a static environment that hands out whatever meta-batch was set last.

Why one: compare, the benchmarks and the tests all need "the problems training would build, at
this θ, on this batch"; written once, each of them measures the code that trains."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.envs import Env

from configs import ConfigError
from problems.factory import build_problems

#: `device`: where a run's problems live ("auto": CUDA when torch sees one).
DEVICES = ("auto", "cpu", "cuda")


def engine_strategy(device: str) -> str:
    """Betty's strategy for `device`: Betty picks CUDA whenever torch sees one, so make the
    choice explicit. Under torchrun (WORLD_SIZE > 1) the run is data-parallel over the
    meta-batch."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "distributed"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA GPU here; use --set device=cpu "
                          "(or device=auto), or run on a machine with a GPU")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return "gpu"
    return "cpu"


class StaticEnv(Env):
    """Betty wants an Env; the caller sets `batch` (or hands the episode over directly)."""

    def __init__(self, batch=None):
        super().__init__()
        self.batch = batch

    def step(self):
        return self.batch


@dataclass(frozen=True)
class TaskShape:
    """What build_problems needs to know about the data (take it from the real env)."""
    input_shape: tuple
    task_kind: str = "classification"
    output_dim: int = 5

    @classmethod
    def of(cls, env) -> "TaskShape":
        return cls(tuple(env.input_shape), env.task_kind, env.output_dim)


@dataclass
class System:
    outer: object
    inner: object
    engine: Engine
    env: StaticEnv


def build_system(options, shape: TaskShape, theta: dict | None = None, *, seed: int | None = None,
                 strategy: str = "cpu", train_iters: int = 1) -> System:
    """The problems `options` (problems.RunOptions) trains, initialised from `seed` (default:
    the config's), with the backbone then set to `theta` when given. `strategy` is Betty's
    ("cpu" or "gpu"); `train_iters` only matters to callers that step the engine themselves."""
    torch.manual_seed(options.seed if seed is None else seed)
    problems, deps = build_problems(options, shape.input_shape, shape.task_kind, shape.output_dim)
    env = StaticEnv()
    engine = Engine(problems=problems,
                    config=EngineConfig(train_iters=train_iters, strategy=strategy),
                    dependencies=deps, env=env)
    outer, inner = problems
    if theta is not None:
        inner.backbone.load_state_dict(theta)
    return System(outer, inner, engine, env)
