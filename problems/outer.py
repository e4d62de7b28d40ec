"""The upper level: meta-parameters θ (the backbone's initialisation) plus whatever the
inner-loop optimizer learns (e.g. Meta-SGD's step sizes). Its loss is whatever the lower level
says the meta-objective is (query loss of the adapted learners, or Reptile's surrogate)."""
from __future__ import annotations

import math

from betty.problems import ImplicitProblem
from torch import nn

from problems.distributed import ExplicitSync, average_gradients


class MetaModel(nn.Module):
    """Everything the outer level learns, in one module so one state_dict holds it."""

    def __init__(self, backbone: nn.Module, inner_optimizer: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.inner_optimizer = inner_optimizer


class NonFiniteLoss(RuntimeError):
    """The meta-loss became NaN or inf; raised before θ is updated with it."""


class Outer(ExplicitSync, ImplicitProblem):
    def __init__(self, name, config, meta_model: MetaModel, optimizer, scheduler=None):
        super().__init__(name, config, module=meta_model, optimizer=optimizer, scheduler=scheduler)
        self.last_stats: dict[str, float] = {}

    def trainable_parameters(self):
        return list(self.module.backbone.parameters()) + list(
            self.module.inner_optimizer.meta_parameters())

    def get_batch(self):
        return self.env.batch

    def training_step(self, batch):
        stats = self.inner.meta_objective(batch)
        loss = stats["loss"]
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"meta-loss is {value}")
        self.last_stats = {k: float(v.detach()) for k, v in stats.items()}
        return stats

    def grad_callback(self):
        """Betty calls this between backward and the optimizer step."""
        if self._world_size and self._world_size > 1:
            average_gradients(self.trainable_parameters(), len(self.env.batch))
