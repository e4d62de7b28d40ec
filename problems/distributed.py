"""Data parallelism over the meta-batch. Each rank adapts to its share of the tasks; the outer
gradients are then averaged, weighted by each rank's task count, so the update equals the
single-process one. Betty would wrap modules in DistributedDataParallel, whose hooks cannot
follow the functional inner loop; averaging explicitly is simpler and exact."""
from __future__ import annotations

import torch
import torch.distributed as dist


class ExplicitSync:
    """Mixin for Betty problems: no DDP wrapping; all ranks start from rank 0's parameters."""

    def patch_module(self):
        self.module.to(self.device)
        if self._world_size and self._world_size > 1:
            self.synchronize_params(list(self.module.parameters()))


def average_gradients(params, local_tasks: int) -> None:
    """p.grad ← Σ_ranks (tasks_r / tasks_total) · p.grad_r, in place, on every rank."""
    count = torch.tensor([float(local_tasks)], device=params[0].device)
    dist.all_reduce(count)
    weight = local_tasks / float(count)
    for p in params:
        grad = torch.zeros_like(p) if p.grad is None else p.grad.detach() * weight
        dist.all_reduce(grad)
        p.grad = grad
