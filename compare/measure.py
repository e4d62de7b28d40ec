"""One method's meta-gradient at a fixed θ on a fixed meta-batch, with its wall time and peak
memory (measures.memory). Every method is built from its own config exactly as training builds
it and computed by `problems.meta_gradient.compute_meta_gradient` (the Betty path training
uses), so the comparison measures the code that trains, not a re-implementation."""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

import torch

from measures.memory import peak_bytes
from problems.meta_gradient import compute_meta_gradient
from problems.system import TaskShape, build_system, engine_strategy

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    """(outer, inner) for `cfg` as training builds them, with the backbone set to θ (None: the
    initialisation drawn from cfg.seed)."""
    system = build_system(cfg, shape, theta, strategy=engine_strategy(cfg.device))
    return system.outer, system.inner


def backbone_gradient(outer, inner, episode, iteration: int | None = None) -> torch.Tensor:
    """The meta-gradient restricted to the backbone (θ), flattened, in float64 on the CPU:
    optimizer meta-parameters (e.g. learned step sizes) exist only for some methods."""
    grads = compute_meta_gradient(outer, inner, episode, iteration)
    grads = grads[:len(list(inner.backbone.parameters()))]
    return torch.cat([g.reshape(-1) for g in grads]).detach().to("cpu", torch.float64)


@dataclass
class Measurement:
    gradient: torch.Tensor     # flattened backbone meta-gradient, float64, CPU
    seconds: list[float]       # one per timed repeat
    peak_bytes: int | None

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)


def measure(outer, inner, episode, repeats: int, memory: bool = True,
            iteration: int = 0) -> Measurement:
    """A warm-up call (its gradient is kept), `repeats` timed calls, one memory-profiled call;
    each at meta-iteration `iteration` (compute_meta_gradient)."""
    cuda = episode.support_x.is_cuda
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gradient = backbone_gradient(outer, inner, episode, iteration)
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        compute_meta_gradient(outer, inner, episode, iteration)
        sync()
        seconds.append(time.perf_counter() - start)
    peak = None
    if memory:
        peak = peak_bytes(lambda: compute_meta_gradient(outer, inner, episode, iteration), cuda)
    return Measurement(gradient, seconds, peak)
