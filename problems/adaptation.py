"""What every lower-level problem shares: one Betty step adapts a learner to each task of the
current meta-batch with the inner-loop optimizer, and the same code adapts at evaluation.

Betty's own `IterativeProblem` fails on current torch (docs/DESIGN.md), so the lower level is an
`ImplicitProblem` whose single step runs the whole inner loop; Betty still orders the levels,
calls the outer problem after the inner one and routes implicit hypergradients.
"""
from __future__ import annotations

import contextlib

import torch
from betty.problems import ImplicitProblem
from torch import nn

from optimizers import InnerLoopOptimizer, Learner
from problems import vectorized
from problems.distributed import ExplicitSync


class TaskAdaptation(ExplicitSync, ImplicitProblem):
    def __init__(self, name, config, backbone: nn.Module, inner_optimizer: InnerLoopOptimizer,
                 task_kind: str, steps: int, module: nn.Module | None = None,
                 vectorize: str = "auto"):
        super().__init__(name, config, module=module if module is not None else nn.Module())
        self.vectorize = vectorized.check_setting(vectorize)
        self.backbone = backbone
        self.inner_optimizer = inner_optimizer
        self.task_kind = task_kind
        self.steps = steps
        self.adapted: list[Learner] = []

    # ---- Betty plumbing -----------------------------------------------------------------
    def patch_optimizer(self):
        """The inner loop is run by the InnerLoopOptimizer, not by a torch optimizer."""
        if self.optimizer is not None:
            super().patch_optimizer()

    def get_batch(self):
        return self.env.batch

    def one_step_descent(self, batch=None):
        self.cur_batch = batch = self.get_batch() if batch is None else batch
        # Betty counts this step before calling; schedules (MAML++) read the iterations done.
        self.inner_optimizer.iteration = max(self._count - 1, 0)
        self.adapt_meta_batch(batch)
        return {}

    # ---- adaptation ---------------------------------------------------------------------
    def initial_learner(self, detach: bool) -> Learner:
        """θ as a learner: live parameters (gradients reach θ) or detached copies."""
        return Learner.of(self.backbone, self.task_kind, detach=detach)

    @contextlib.contextmanager
    def first_order(self, value: bool):
        previous = self.inner_optimizer.first_order
        self.inner_optimizer.first_order = value
        try:
            yield
        finally:
            self.inner_optimizer.first_order = previous

    def adapt_meta_batch(self, episode):
        """Training-time adaptation; sets `self.adapted`. Variants decide differentiability."""
        raise NotImplementedError

    def vectorized(self) -> bool:
        """Whether this meta-batch adapts all tasks at once (decided per call: the optimizer's
        settings and the device may change after construction)."""
        return vectorized.use_vectorized(self.vectorize, self.inner_optimizer, self.backbone)

    def stacked_phi(self):
        """φ of every task stacked on a task dimension when this meta-batch was adapted
        vectorized, else None (then each task's learner in `self.adapted` is evaluated)."""
        return None

    def meta_objective(self, episode) -> dict:
        """The outer loss for this kind of lower level, with query accuracy for logging."""
        stacked = self.stacked_phi()
        if stacked is not None:
            loss, acc = vectorized.evaluate(self.backbone, stacked, episode.query_x,
                                            episode.query_y, self.task_kind)
            return mean_stats(loss, [None] if acc is None else list(acc))
        objective = getattr(self.inner_optimizer, "query_objective", None)
        if objective is None:  # a user's optimizer that does not subclass InnerLoopOptimizer
            objective = lambda learner, x, y: learner.evaluate(x, y)  # noqa: E731
        losses, accs = zip(*(objective(learner, episode.query_x[t], episode.query_y[t])
                             for t, learner in enumerate(self.adapted)))
        return mean_stats(losses, accs)

    def adapt_for_evaluation(self, episode, t: int, steps: int) -> Learner:
        """Test-time adaptation of task t: the same inner objective, no meta-gradient."""
        with self.first_order(True):
            learner = self.inner_optimizer.adapt(self.initial_learner(detach=True),
                                                 episode.support_x[t], episode.support_y[t], steps)
        return learner.detached()

    def evaluate(self, episode, steps: int) -> list[tuple[float, float | None]]:
        """Per-task (query loss, query accuracy) after `steps` adaptation steps."""
        results = []
        for t in range(len(episode)):
            learner = self.adapt_for_evaluation(episode, t, steps)
            with torch.no_grad():
                loss, acc = learner.evaluate(episode.query_x[t], episode.query_y[t])
            results.append((float(loss), None if acc is None else float(acc)))
        return results

    def training_step(self, batch):  # pragma: no cover - Betty requires it; unused here
        raise NotImplementedError


def mean_stats(losses, accs) -> dict:
    stats = {"loss": torch.stack(list(losses)).mean()}
    if accs[0] is not None:
        stats["acc"] = torch.stack(list(accs)).mean().detach()
    return stats
