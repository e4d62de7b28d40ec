"""What every lower-level problem shares: one Betty step adapts a learner to each task of the
current meta-batch with the inner-loop optimizer, and the same code adapts at evaluation.

Betty's own `IterativeProblem` fails on current torch (docs/DESIGN.md), so the lower level is an
`ImplicitProblem` whose single step runs the whole inner loop; Betty still orders the levels,
calls the outer problem after the inner one and routes implicit hypergradients. The inner loop
itself is the optimizer's, on all tasks at once (a TaskStack); evaluation runs the same loop.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from betty.problems import ImplicitProblem
from torch import nn

from optimizers import InnerLoopOptimizer, Learner
from optimizers.base import adapts_task_stacks, takes
from optimizers.executor import VMAP, choose_executor
from optimizers.learner import TaskStack
from problems.distributed import ExplicitSync


class TaskAdaptation(ExplicitSync, ImplicitProblem):
    def __init__(self, name, config, backbone: nn.Module, inner_optimizer: InnerLoopOptimizer,
                 task_kind: str, steps: int, module: nn.Module | None = None,
                 vectorize: str = "auto"):
        super().__init__(name, config, module=module if module is not None else nn.Module())
        self.vectorize = vectorize  # one of optimizers.executor.SETTINGS (checked in InnerOptions)
        self.backbone = backbone
        self.inner_optimizer = inner_optimizer
        self.task_kind = task_kind
        self.steps = steps
        self.adapted: list[Learner] = []   # each task's adapted learner (views of `stack`)
        self.stack: TaskStack | None = None  # all tasks' φ, when the optimizer adapts stacks
        self.meta_iteration = 0  # meta-iterations done before this one (schedules read it)

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
    def executor(self):
        """How the task axis runs for this call (`inner.vectorize`, the backbone, the device)."""
        return choose_executor(self.vectorize, self.backbone)

    def vectorized(self) -> bool:
        """Whether tasks run through one vmapped call (else one after another)."""
        return self.executor() is VMAP

    def initial_learner(self, detach: bool) -> Learner:
        """θ as a one-task learner: live parameters (gradients reach θ) or detached copies."""
        return Learner.of(self.backbone, self.task_kind, detach=detach)

    def initial_stack(self, tasks: int, detach: bool) -> TaskStack:
        """θ for `tasks` tasks; only what the optimizer adapts gets a task axis."""
        names = self.inner_optimizer.adapted_names(self.initial_learner(detach=True))
        return TaskStack.of_theta(self.backbone, self.task_kind, tasks, self.executor(), names,
                                  detach=detach)

    @contextlib.contextmanager
    def as_attributes(self, **values):
        """For an optimizer whose `adapt` or `query_objective` was written without the keyword
        arguments: what they would say, as attributes of the optimizer for one call."""
        previous = {k: getattr(self.inner_optimizer, k, None) for k in values}
        for k, v in values.items():
            setattr(self.inner_optimizer, k, v)
        try:
            yield
        finally:
            for k, v in previous.items():
                setattr(self.inner_optimizer, k, v)

    def call_adapt(self, model, x, y, steps: int, first_order: bool, checkpoint: bool):
        adapt = self.inner_optimizer.adapt
        if takes(adapt, "first_order"):
            kwargs = {"first_order": first_order, "iteration": self.meta_iteration}
            if checkpoint:
                kwargs["checkpoint"] = True
            return adapt(model, x, y, steps, **kwargs)
        with self.as_attributes(first_order=first_order, iteration=self.meta_iteration):
            return adapt(model, x, y, steps)

    def adapt_tasks(self, start: TaskStack, x, y, steps: int, one_task_start, *,
                    first_order: bool, checkpoint: bool = False) -> None:
        """The inner loop for every task of a meta-batch: all at once through the optimizer's
        stack-aware `adapt`, or, for an optimizer written for one task, task by task from
        `one_task_start()`. Sets `self.stack` (None task by task) and `self.adapted`."""
        if checkpoint and not takes(self.inner_optimizer.adapt, "checkpoint"):
            raise ValueError(f"inner.checkpoint_steps needs an adapt that runs the shared inner "
                             f"loop; {type(self.inner_optimizer).__name__} writes its own")
        if adapts_task_stacks(self.inner_optimizer):
            self.stack = self.call_adapt(start, x, y, steps, first_order, checkpoint)
            self.adapted = [self.stack.view(t) for t in range(len(start))]
        else:
            self.stack = None
            self.adapted = [self.call_adapt(one_task_start(), x[t], y[t], steps, first_order,
                                            checkpoint) for t in range(len(start))]

    def adapt_meta_batch(self, episode):
        """Training-time adaptation; sets `self.adapted`. Variants decide differentiability."""
        raise NotImplementedError

    def meta_objective(self, episode) -> dict:
        """The outer loss for this kind of lower level, with query accuracy for logging."""
        objective = getattr(self.inner_optimizer, "query_objective", None)
        written_without = objective is not None and not takes(objective, "iteration")
        if objective is None:  # a user's optimizer that does not subclass InnerLoopOptimizer
            objective = lambda learner, x, y: learner.evaluate(x, y)  # noqa: E731
        elif not written_without:
            objective = functools.partial(objective, iteration=self.meta_iteration)
        attributes = (self.as_attributes(iteration=self.meta_iteration) if written_without
                      else contextlib.nullcontext())
        with attributes:
            if self.stack is not None:
                loss, acc = objective(self.stack, episode.query_x, episode.query_y)
                return mean_stats(loss, [None] if acc is None else acc)
            losses, accs = zip(*(objective(learner, episode.query_x[t], episode.query_y[t])
                                 for t, learner in enumerate(self.adapted)))
        return mean_stats(losses, accs)

    def evaluation_start(self, tasks: int) -> tuple[TaskStack, object]:
        """Where test-time adaptation starts: θ, detached (no meta-gradient)."""
        return self.initial_stack(tasks, detach=True), lambda: self.initial_learner(detach=True)

    def evaluate(self, episode, steps: int) -> list[tuple[float, float | None]]:
        """Per-task (query loss, query accuracy) after `steps` adaptation steps: the same inner
        loop as training, first order, on all tasks of the episode at once."""
        start, one_task = self.evaluation_start(len(episode))
        saved = self.stack, self.adapted
        try:
            self.adapt_tasks(start, episode.support_x, episode.support_y, steps, one_task,
                             first_order=True)
            with torch.no_grad():
                if self.stack is not None:
                    loss, acc = self.stack.detached().evaluate(episode.query_x, episode.query_y)
                    accs = [None] * len(loss) if acc is None else [float(a) for a in acc]
                    return [(float(v), a) for v, a in zip(loss, accs)]
                results = []
                for t, learner in enumerate(self.adapted):
                    v, a = learner.detached().evaluate(episode.query_x[t], episode.query_y[t])
                    results.append((float(v), None if a is None else float(a)))
                return results
        finally:
            self.stack, self.adapted = saved

    def training_step(self, batch):  # pragma: no cover - Betty requires it; unused here
        raise NotImplementedError


def mean_stats(losses, accs) -> dict:
    """Mean over tasks of per-task losses (a [T] tensor or a list of scalars) and accuracies."""
    stats = {"loss": torch.stack(list(losses)).mean()}
    if accs[0] is not None:
        stats["acc"] = torch.stack(list(accs)).mean().detach()
    return stats
