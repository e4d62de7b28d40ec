"""The task executor: how the task axis of a meta-batch runs. Every inner step works on φ
stacked over tasks ([T, *p.shape], see TaskStack); the executor evaluates a module for all T
tasks at their own parameters and inputs, and it is the only place that decides how.

* `VMAP`: one `torch.func.vmap(functional_call)` over the task axis. Each layer runs once for the
  whole meta-batch (per-task convolutions become one grouped convolution). Wins where kernel
  launches dominate (CUDA) and for small dense backbones.
* `LOOP`: the tasks one after another, each a plain `functional_call`. Needed when a module
  updates state in place (MAML++'s running batch-norm statistics cannot be written from inside
  vmap), and faster on CPU for CNN4, where oneDNN's grouped convolutions are no faster than T
  separate ones (benchmarks/speed.py).

Both compute the same values; the gradient of the summed task losses with respect to the
stacked φ is every task's own gradient either way (tests/test_speedups.py: 1e-10 in float64)."""
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
        """module(x[t], **kwargs) at parameters {**shared, **stacked[t]} for every task t: [T, ...]."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"TaskExecutor({self.name})"


class _Loop(TaskExecutor):
    name = "loop"

    def __call__(self, module, stacked, shared, x, kwargs):
        # unbind, not v[t]: its backward is one stack per parameter, not T scatters into zeros
        per_task = {k: v.unbind(0) for k, v in stacked.items()}
        return torch.stack([functional_call(module, {**shared, **{k: v[t] for k, v in per_task.items()}},
                                            (xt,), kwargs)
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


class TaskThreads:
    """Runs the tasks of a meta-batch in contiguous groups, one group per worker thread, each
    thread with one intra-op thread. Why: the convolutions of one few-shot task are too small to
    use two cores well (oneDNN splits a 5-image batch poorly), but two tasks on two cores run
    side by side at full speed, forward and backward alike, since each group is its own graph and
    is differentiated by its own `autograd.grad` call (benchmarks/speed.py: `task_threads`).

    `functional_call` swaps a module's attributes while it runs, so two threads must never call
    the same module: each group gets its own replica of the backbone (its parameters are never
    read; every call passes φ explicitly)."""

    def __init__(self, threads: int):
        self.threads = threads
        self._pool = None
        self._replicas: list[nn.Module] = []

    def groups(self, tasks: int) -> list[slice]:
        """`tasks` split into at most `threads` contiguous, near-equal groups."""
        count = min(self.threads, tasks)
        bounds = [round(i * tasks / count) for i in range(count + 1)]
        return [slice(a, b) for a, b in zip(bounds, bounds[1:])]

    def replica(self, backbone: nn.Module, group: int) -> nn.Module:
        while len(self._replicas) <= group:
            self._replicas.append(None)
        copy = self._replicas[group]
        if copy is None or next(copy.parameters()).device != next(backbone.parameters()).device:
            copy = self._replicas[group] = _replica(backbone)
        return copy

    def map(self, job, items: list) -> list:
        """[job(group, item) for each item], the items on the worker threads, in order; the
        caller's grad mode holds in the workers too."""
        if self._pool is None:
            import concurrent.futures
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.threads, thread_name_prefix="task", initializer=torch.set_num_threads,
                initargs=(1,))
        grad = torch.is_grad_enabled()

        def run(group_item):
            with torch.set_grad_enabled(grad):
                return job(*group_item)
        return list(self._pool.map(run, enumerate(items)))

    def __getstate__(self):  # a pool cannot be pickled or deep-copied; it is rebuilt on use
        return {"threads": self.threads, "_pool": None, "_replicas": []}


def _replica(backbone: nn.Module) -> nn.Module:
    import copy
    return copy.deepcopy(backbone).requires_grad_(False)


def thread_safe(backbone: nn.Module) -> bool:
    """Groups of tasks may run at once on replicas: no state is written in place (running
    batch-norm statistics would be written to a replica and lost), and the backbone is on CPU
    (on CUDA one stream already runs the tasks back to back)."""
    return vmappable(backbone) and not next(backbone.parameters()).is_cuda


def task_thread_count(setting: int, backbone: nn.Module) -> int:
    """`inner.task_threads`: 0 is auto: one per CPU core this process may use, for
    convolutional backbones on CPU (measured faster there; a small MLP task is too short to
    be worth a thread hand-off); any other value is taken as given (1: off)."""
    if setting:
        return setting
    if not thread_safe(backbone) or not any(isinstance(m, nn.Conv2d) for m in backbone.modules()):
        return 1
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
