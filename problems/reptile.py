"""Reptile (Nichol et al. 2018): adapt each task with K plain gradient steps from θ and move θ
toward the adapted φ; no second derivatives and no gradient through the inner loop.

In Betty's terms the outer loss is a surrogate whose gradient with respect to θ is exactly
the Reptile direction, mean over tasks of (θ − φ_t):  ½‖θ − stopgrad(φ_t)‖² averaged. Its
reported value is the query loss of the adapted learners, so logs read like every other method.
"""
from __future__ import annotations

import torch

from envs import Episode
from problems.adaptation import TaskAdaptation


class ReptileInner(TaskAdaptation):
    """Reptile's lower level: K first-order steps from detached θ; the outer loss is a
    surrogate whose gradient is mean over tasks of (θ − φ).

    Reference: Nichol et al. 2018, "On First-Order Meta-Learning Algorithms".

    Example:
        python run.py --problem reptile --dataset omniglot5w1s
    """

    def __init__(self, *args, adapt_on: str, **kwargs):
        """`adapt_on`: `inner.reptile.adapt_on`, "episode" to adapt a training task on its
        support and query examples together."""
        super().__init__(*args, **kwargs)
        self.adapt_on = adapt_on

    def adapt_meta_batch(self, episode):
        if self.adapt_on == "episode":  # Reptile's inner loop sees every example of the task
            episode = Episode(torch.cat([episode.support_x, episode.query_x], 1),
                              torch.cat([episode.support_y, episode.query_y], 1),
                              episode.query_x, episode.query_y)
        self.adapt_tasks(episode, detach=True, first_order=True)
        self.runner.detach()

    def meta_objective(self, episode) -> dict:
        with torch.no_grad():
            stats = super().meta_objective(episode)
        theta = dict(self.backbone.named_parameters())
        surrogate = torch.stack([
            0.5 * sum(((theta[k] - phi.params[k]) ** 2).sum() for k in theta)
            for phi in self.adapted]).mean()
        # gradient of the surrogate, value of the query loss
        stats["loss"] = surrogate - surrogate.detach() + stats["loss"]
        return stats


def reptile_conflict(inner_optimizer, learner) -> str:
    """Why this inner optimizer cannot drive Reptile ('' if it can)."""
    if list(inner_optimizer.meta_parameters()):
        return ("its meta-parameters would get no gradient: Reptile's direction θ−φ is not "
                "differentiated through the inner loop")
    adapted = getattr(inner_optimizer, "adapted_names", None)
    if adapted is not None and set(adapted(learner)) != set(learner.params):
        return "it adapts only some parameters, so θ−φ is zero for the rest and they never learn"
    return ""
