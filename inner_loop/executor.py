"""The task executor: how a module runs for every task of a meta-batch at that task's own
parameters and inputs (φ stacked on a task axis, see TaskStack). The only place that decides it.

* `VMAP`: one `torch.func.vmap(functional_call)` over the task axis; wins where kernel launches
  dominate (CUDA) and for small dense backbones.
* `LOOP`: the tasks one after another; needed where a module writes state in place (running
  batch-norm statistics cannot be written inside vmap), and the faster one for CNN4 on CPU
  (docs/benchmarks.md).

Both give the same values and gradients (tests/test_speedups.py, 1e-10 in float64)."""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vmap

Params = dict[str, torch.Tensor]

#: `inner.vectorize`: "auto" (where measured faster), "always" (whenever possible), "never".
SETTINGS = ("auto", "always", "never")


class TaskExecutor:
    name = ""

    def __call__(self, module: nn.Module, stacked: Params, shared: Params, x: torch.Tensor,
                 kwargs: dict) -> torch.Tensor:
        """module(x[t], **kwargs) at parameters {**shared, **stacked[t]} for every task t:
        [T, ...]."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"TaskExecutor({self.name})"


class _Loop(TaskExecutor):
    name = "loop"

    def __call__(self, module, stacked, shared, x, kwargs):
        # unbind, not v[t]: its backward is one stack per parameter, not T scatters into zeros
        per_task = {k: v.unbind(0) for k, v in stacked.items()}
        return torch.stack([
            functional_call(module, {**shared, **{k: v[t] for k, v in per_task.items()}}, (xt,),
                            kwargs)
            for t, xt in enumerate(x.unbind(0))])


class _Vmap(TaskExecutor):
    name = "vmap"

    def __call__(self, module, stacked, shared, x, kwargs):
        def one(params, xt):
            return functional_call(module, {**shared, **params}, (xt,), kwargs)
        return vmap(one)(stacked, x)


LOOP, VMAP = _Loop(), _Vmap()


def vmappable(backbone: nn.Module) -> bool:
    """No state updated in place: running batch-norm statistics (any module that tracks them)
    cannot be written from inside vmap."""
    return not any(getattr(m, "track_running_stats", False) for m in backbone.modules())


def prefers_vmap(backbone: nn.Module) -> bool:
    """`vectorize: auto`. On CUDA the loop is launch-bound, so one vmapped call wins. On CPU,
    oneDNN's grouped convolutions (what vmap makes of per-task convolutions) are no faster than
    T separate ones and vmap's batch-norm rule adds copies: benchmarks/speed.py measured the
    vmapped CNN4 slower than the loop on CPU, so convolutional backbones loop there."""
    if next(backbone.parameters()).is_cuda:
        return True
    return not any(isinstance(m, nn.Conv2d) for m in backbone.modules())


def choose_executor(setting: str, backbone: nn.Module) -> TaskExecutor:
    """The executor for `inner.vectorize` on this backbone and device (decided per call: the
    device may change after construction)."""
    if setting == "never" or not vmappable(backbone):
        return LOOP
    return VMAP if setting == "always" or prefers_vmap(backbone) else LOOP
