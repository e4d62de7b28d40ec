"""What every lower-level problem shares: one Betty step adapts each task of the current
meta-batch with the inner-loop optimizer, and evaluation adapts the same way.

Betty's own `IterativeProblem` fails on current torch (docs/DESIGN.md), so the lower level is an
`ImplicitProblem` whose single step runs the whole inner loop; Betty still orders the levels,
calls the outer problem after the inner one and routes implicit hypergradients. How the tasks
run (threads, one stack, one by one) is the task runner's business, not the problem's.
"""
from __future__ import annotations

import torch
from betty.problems import ImplicitProblem
from torch import nn

from inner_loop import Learner, TaskStack
from optimizers import AdaptContext
from problems.distributed import ExplicitSync
from problems.task_runner import TaskRunner


class TaskAdaptation(ExplicitSync, ImplicitProblem):
    def __init__(self, name, config, backbone: nn.Module, inner_optimizer: nn.Module,
                 task_kind: str, steps: int, module: nn.Module | None = None,
                 vectorize: str = "auto", task_threads: int = 1):
        super().__init__(name, config, module=module if module is not None else nn.Module())
        self.backbone = backbone
        self.inner_optimizer = inner_optimizer
        self.task_kind = task_kind
        self.steps = steps
        self.runner = TaskRunner(backbone, inner_optimizer, vectorize, task_threads)
        self.meta_iteration = 0  # meta-iterations done before this one (schedules read it)

    @property
    def adapted(self) -> list[Learner]:
        """Each task's adapted learner from the last adaptation."""
        return self.runner.adapted

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
        self.meta_iteration = max(self._count - 1, 0)
        self.adapt_meta_batch(batch)
        return {}

    # ---- adaptation ---------------------------------------------------------------------
    def initial_learner(self, detach: bool) -> Learner:
        """θ as a one-task learner: live parameters (gradients reach θ) or detached copies."""
        return Learner.of(self.backbone, self.task_kind, detach=detach)

    def initial_stack(self, tasks: int, detach: bool) -> TaskStack:
        """θ for `tasks` tasks; only what the optimizer adapts gets a task axis."""
        adapted_names = getattr(self.inner_optimizer, "adapted_names", None)
        names = adapted_names(self.initial_learner(detach=True)) if adapted_names else None
        return TaskStack.of_theta(self.backbone, self.task_kind, tasks, self.runner.executor(),
                                  names, detach=detach)

    def adapt_tasks(self, episode, detach: bool, first_order: bool, checkpoint: bool = False):
        """The inner loop for every task of `episode`, from θ (live or detached)."""
        self.runner.adapt(self.initial_stack(len(episode), detach),
                          lambda: self.initial_learner(detach), episode.support_x,
                          episode.support_y, self.steps,
                          AdaptContext(first_order, self.meta_iteration, checkpoint))

    def adapt_meta_batch(self, episode):
        """Training-time adaptation. Variants decide differentiability."""
        raise NotImplementedError

    def meta_objective(self, episode) -> dict:
        """The outer loss for this kind of lower level, with query accuracy for logging."""
        objective = getattr(self.inner_optimizer, "query_objective", None)
        if objective is None:  # a user's optimizer that does not subclass InnerLoopOptimizer
            objective = lambda learner, x, y: learner.evaluate(x, y)  # noqa: E731
        return self.runner.objective(objective, episode.query_x, episode.query_y,
                                     self.loss_inputs())

    def loss_inputs(self) -> list[torch.Tensor]:
        """What the outer loss is differentiated by: the meta-parameters that need a gradient;
        the implicit level says φ instead."""
        params = list(self.backbone.parameters()) + list(self.inner_optimizer.meta_parameters())
        return [p for p in params if p.requires_grad]

    def evaluate(self, episode, steps: int) -> list[tuple[float, float | None]]:
        """Per-task (query loss, query accuracy) after `steps` adaptation steps from θ: the
        same inner loop as training, first order."""
        return self.runner.evaluate(self.initial_stack(len(episode), detach=True),
                                    lambda: self.initial_learner(detach=True), episode, steps,
                                    self.meta_iteration)

    def training_step(self, batch):  # pragma: no cover - Betty requires it; unused here
        raise NotImplementedError
