"""learn2learn's MAML as its documentation uses it: per task `clone()`, `adapt()` K times on
the support loss, backward of the query loss / T; then one Adam step on θ."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F


class L2LMAML:
    def __init__(self, backbone: torch.nn.Module, lr: float, steps: int, outer_lr: float,
                 first_order: bool = False):
        import learn2learn as l2l  # imports gym at import time (docs/DESIGN.md)
        self.backbone = copy.deepcopy(backbone)
        self.maml = l2l.algorithms.MAML(self.backbone, lr=lr, first_order=first_order)
        self.optimizer = torch.optim.Adam(self.maml.parameters(), lr=outer_lr)
        self.steps = steps

    def accumulate(self, episode) -> None:
        tasks = len(episode)
        for t in range(tasks):
            learner = self.maml.clone()
            for _ in range(self.steps):
                learner.adapt(F.cross_entropy(learner(episode.support_x[t]), episode.support_y[t]))
            (F.cross_entropy(learner(episode.query_x[t]), episode.query_y[t]) / tasks).backward()

    def step(self, episode) -> None:
        self.optimizer.zero_grad()
        self.accumulate(episode)
        self.optimizer.step()

    def meta_gradient(self, episode) -> list[torch.Tensor]:
        self.optimizer.zero_grad()
        self.accumulate(episode)
        grads = [p.grad.detach().clone() for p in self.backbone.parameters()]
        self.optimizer.zero_grad()
        return grads
