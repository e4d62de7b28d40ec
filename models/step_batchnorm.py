"""Batch norm with optional per-inner-step affine parameters and running statistics.

With one step (the default) this is transductive batch norm as in the reference MAML:
statistics always come from the current batch, nothing is tracked. MAML++ asks for a separate
scale/shift (and running statistics) per inner step; `steps > 1` gives that, indexed by the
`step` argument that the inner loop passes down.
"""
import torch
import torch.nn.functional as F
from torch import nn


class StepBatchNorm(nn.Module):
    def __init__(self, channels: int, steps: int = 1, track_running_stats: bool = False,
                 momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.steps, self.momentum, self.eps = steps, momentum, eps
        self.track_running_stats = track_running_stats
        self.weight = nn.Parameter(torch.ones(steps, channels))
        self.bias = nn.Parameter(torch.zeros(steps, channels))
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(steps, channels))
            self.register_buffer("running_var", torch.ones(steps, channels))
        self.use_running_stats = False  # evaluation-time switch (MAML++ option)

    def forward(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        s = 0 if step is None else min(step, self.steps - 1)
        if self.use_running_stats and self.track_running_stats:
            return F.batch_norm(x, self.running_mean[s], self.running_var[s],
                                self.weight[s], self.bias[s], False, 0.0, self.eps)
        if self.track_running_stats and self.training:
            with torch.no_grad():
                dims = [d for d in range(x.dim()) if d != 1]
                n = x.numel() / x.shape[1]
                var = x.detach().var(dim=dims, unbiased=False) * n / max(n - 1, 1)
                self.running_mean[s].lerp_(x.detach().mean(dim=dims), self.momentum)
                self.running_var[s].lerp_(var, self.momentum)
        return F.batch_norm(x, None, None, self.weight[s], self.bias[s], True, 0.0, self.eps)
