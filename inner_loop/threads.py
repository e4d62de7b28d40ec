"""Groups of tasks adapted side by side on worker threads (`inner.task_threads`).

Why: one few-shot task's convolutions are too small to use two cores well, but two tasks on two
cores run at full speed, each group its own graph differentiated by its own `autograd.grad`.
`functional_call` swaps a module's attributes while it runs, so each group calls its own replica
of the backbone (whose parameters are never read: every call passes φ explicitly)."""
from __future__ import annotations

import concurrent.futures
import copy
import os

import torch
from torch import nn

from inner_loop.executor import vmappable


class TaskThreads:
    """Runs contiguous groups of tasks, one group per worker thread with one intra-op thread."""

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
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
