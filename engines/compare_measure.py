"""One method's meta-gradient at a fixed θ on a fixed meta-batch, with its wall time and peak
memory. Every method is built from its own config exactly as training builds it and computed
by `problems.meta_gradient.compute_meta_gradient` (the Betty path training uses), so the
comparison measures the code that trains, not a re-implementation."""
from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from dataclasses import dataclass

import torch
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.envs import Env

from engines.meta_engine import engine_strategy
from problems import build_problems
from problems.meta_gradient import compute_meta_gradient

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class StaticEnv(Env):
    """Betty wants an Env; the meta-batch is handed to compute_meta_gradient directly."""

    def step(self):
        return self.batch


@dataclass
class TaskShape:
    """What build_problems needs to know about the data (taken from the real env)."""
    input_shape: tuple
    task_kind: str
    output_dim: int


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """Models are built in the default dtype; float64 makes references (and tests) exact."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def cast_episode(episode, dtype: torch.dtype, device):
    """Floating tensors (inputs, regression targets) to `dtype`; labels keep theirs."""
    return episode._map(lambda t: (t.to(dtype) if t.is_floating_point() else t).to(device))


def build_at(cfg: dict, theta: dict | None, shape: TaskShape):
    """(outer, inner) for `cfg`, initialised by a Betty Engine, with the backbone set to θ."""
    torch.manual_seed(cfg["seed"])
    problems, deps = build_problems(cfg, shape.input_shape, shape.task_kind, shape.output_dim)
    Engine(problems=problems, config=EngineConfig(train_iters=1, strategy=engine_strategy(cfg["device"])),
           dependencies=deps, env=StaticEnv())
    outer, inner = problems
    if theta is not None:  # None: keep the initialisation drawn from cfg["seed"]
        inner.backbone.load_state_dict(theta)
    return outer, inner


def backbone_gradient(outer, inner, episode) -> torch.Tensor:
    """The meta-gradient restricted to the backbone (θ), flattened, in float64 on the CPU:
    optimizer meta-parameters (e.g. learned step sizes) exist only for some methods."""
    grads = compute_meta_gradient(outer, inner, episode)[:len(list(inner.backbone.parameters()))]
    return torch.cat([g.reshape(-1) for g in grads]).detach().to("cpu", torch.float64)


@contextlib.contextmanager
def quiet_stderr():
    """The profiler's C++ side (kineto) prints start/stop lines to fd 2; hide them."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_cpu_bytes(fn) -> int:
    """Peak bytes held by torch's CPU allocator during fn(), above the level at its start:
    the running sum of the allocation (+) and free (−) events that torch.profiler records
    with profile_memory=True. Python objects outside tensors are not counted."""
    from torch.profiler import ProfilerActivity, profile
    # Python's cycle collector would otherwise free earlier calls' tensors inside the window
    # (their frees count as negative and can hide the whole peak); collect first, then hold it.
    gc.collect()
    gc.disable()
    try:
        with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    finally:
        gc.enable()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
              and str(e.device_type()).endswith("CPU")]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return peak


def peak_cuda_bytes(fn) -> int:
    """torch.cuda.max_memory_allocated during fn(), above the level at its start."""
    torch.cuda.synchronize()
    start = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated() - start)


MEMORY_METHODS = {
    "cpu": "torch.profiler(profile_memory=True): peak of the running sum of CPU allocator "
           "allocations minus frees during one call, above the level at its start",
    "cuda": "torch.cuda.max_memory_allocated() during one call minus memory_allocated() at its start",
}


@dataclass
class Measurement:
    gradient: torch.Tensor     # flattened backbone meta-gradient, float64, CPU
    seconds: list[float]       # one per timed repeat
    peak_bytes: int | None

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)


def measure(outer, inner, episode, repeats: int, memory: bool = True) -> Measurement:
    """A warm-up call (its gradient is kept), `repeats` timed calls, one memory-profiled call."""
    cuda = episode.support_x.is_cuda
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gradient = backbone_gradient(outer, inner, episode)
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        compute_meta_gradient(outer, inner, episode)
        sync()
        seconds.append(time.perf_counter() - start)
    peak = None
    if memory:
        call = lambda: compute_meta_gradient(outer, inner, episode)  # noqa: E731
        peak = peak_cuda_bytes(call) if cuda else peak_cpu_bytes(call)
    return Measurement(gradient, seconds, peak)
