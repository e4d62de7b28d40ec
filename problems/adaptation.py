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

from hypergradient.utils import sum_present
from optimizers import InnerLoopOptimizer, Learner
from optimizers.base import OptimizerSpecError, adapts_task_stacks, takes
from optimizers.executor import VMAP, TaskThreads, choose_executor, task_thread_count, thread_safe
from optimizers.learner import TaskStack
from problems.distributed import ExplicitSync


class TaskAdaptation(ExplicitSync, ImplicitProblem):
    def __init__(self, name, config, backbone: nn.Module, inner_optimizer: InnerLoopOptimizer,
                 task_kind: str, steps: int, module: nn.Module | None = None,
                 vectorize: str = "auto", task_threads: int = 1):
        super().__init__(name, config, module=module if module is not None else nn.Module())
        self.vectorize = vectorize  # one of optimizers.executor.SETTINGS (checked in InnerOptions)
        self.backbone = backbone
        self.inner_optimizer = inner_optimizer
        self.task_kind = task_kind
        self.steps = steps
        self.adapted: list[Learner] = []   # each task's adapted learner (views of `stack`)
        self.stack: TaskStack | None = None  # all tasks' φ, when the optimizer adapts stacks
        # `inner.task_threads`: groups of tasks on worker threads (see TaskThreads); `groups`
        # holds (tasks, their own stack) when the last adaptation ran that way, else None.
        self.task_threads = task_threads
        self.threads: TaskThreads | None = None
        self.groups: list[tuple[slice, TaskStack]] | None = None
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

    def task_groups(self, tasks: int) -> list[slice] | None:
        """Contiguous groups of tasks to adapt on worker threads, or None: adapt them together
        (one thread, the optimizer not stack-aware, a backbone that keeps running statistics, or
        CUDA)."""
        count = task_thread_count(self.task_threads, self.backbone)
        if count <= 1 or tasks <= 1 or not adapts_task_stacks(self.inner_optimizer) \
                or not thread_safe(self.backbone):
            return None
        if self.threads is None or self.threads.threads != count:
            self.threads = TaskThreads(count)
        return self.threads.groups(tasks)

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
            adapted = adapt(model, x, y, steps, **kwargs)
        else:
            with self.as_attributes(first_order=first_order, iteration=self.meta_iteration):
                adapted = adapt(model, x, y, steps)
        if adapted is None:
            name = type(self.inner_optimizer).__name__
            raise OptimizerSpecError(f"{name}.adapt returned None; it must return the adapted model "
                                     "(e.g. `return model` after updating it)")
        return adapted

    def adapt_tasks(self, start: TaskStack, x, y, steps: int, one_task_start, *,
                    first_order: bool, checkpoint: bool = False) -> None:
        """The inner loop for every task of a meta-batch: all at once through the optimizer's
        stack-aware `adapt`, or, for an optimizer written for one task, task by task from
        `one_task_start()`. Sets `self.stack` (None task by task) and `self.adapted`."""
        if checkpoint and not takes(self.inner_optimizer.adapt, "checkpoint"):
            raise ValueError(f"inner.checkpoint_steps needs an adapt that runs the shared inner "
                             f"loop; {type(self.inner_optimizer).__name__} writes its own")
        groups = self.task_groups(len(start))
        self.groups = None
        if groups is not None:
            def adapt_group(g, part):
                mine = start.select(part, self.threads.replica(self.backbone, g))
                return self.call_adapt(mine, x[part], y[part], steps, first_order, checkpoint)
            stacks = self.threads.map(adapt_group, groups)
            self.groups = list(zip(groups, stacks))
            self.stack = TaskStack.joined(stacks, self.backbone)
            self.adapted = [s.view(t) for s in stacks for t in range(len(s))]
        elif adapts_task_stacks(self.inner_optimizer):
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
            if self.groups is not None:
                return self.objective_by_groups(objective, episode)
            if self.stack is not None:
                loss, acc = objective(self.stack, episode.query_x, episode.query_y)
                return mean_stats(loss, [None] if acc is None else acc)
            losses, accs = zip(*(objective(learner, episode.query_x[t], episode.query_y[t])
                                 for t, learner in enumerate(self.adapted)))
        return mean_stats(losses, accs)

    def loss_inputs(self) -> list[torch.Tensor]:
        """What the outer loss is differentiated by: the meta-parameters (Outer.trainable_
        parameters) that need a gradient; the implicit level says φ instead."""
        params = list(self.backbone.parameters()) + list(self.inner_optimizer.meta_parameters())
        return [p for p in params if p.requires_grad]

    def objective_by_groups(self, objective, episode) -> dict:
        """The outer loss of groups adapted on worker threads: each group's share of the mean
        and its gradient with respect to the meta-parameters are computed on its own thread, and
        the loss handed to Betty carries their sum as its gradient (with_gradient)."""
        tasks, params = len(episode), self.loss_inputs()
        differentiate = torch.is_grad_enabled()

        def share(g, group):
            part, stack = group
            loss, acc = objective(stack, episode.query_x[part], episode.query_y[part])
            value = loss.sum() / tasks
            grads = (torch.autograd.grad(value, params, allow_unused=True) if differentiate
                     else None)
            return value.detach(), grads, acc
        results = self.threads.map(share, self.groups)
        value = torch.stack([r[0] for r in results]).sum()
        stats = {"loss": value}
        if differentiate:
            grads = [sum_present(parts) for parts in zip(*(r[1] for r in results))]
            stats["loss"] = with_gradient(value, params, grads)
        if results[0][2] is not None:
            stats["acc"] = torch.cat([r[2].detach() for r in results]).mean()
        return stats

    def evaluation_start(self, tasks: int) -> tuple[TaskStack, object]:
        """Where test-time adaptation starts: θ, detached (no meta-gradient)."""
        return self.initial_stack(tasks, detach=True), lambda: self.initial_learner(detach=True)

    def evaluate(self, episode, steps: int) -> list[tuple[float, float | None]]:
        """Per-task (query loss, query accuracy) after `steps` adaptation steps: the same inner
        loop as training, first order, on all tasks of the episode at once."""
        start, one_task = self.evaluation_start(len(episode))
        saved = self.stack, self.adapted, self.groups
        try:
            self.adapt_tasks(start, episode.support_x, episode.support_y, steps, one_task,
                             first_order=True)
            with torch.no_grad():
                if self.groups is not None:
                    def score(g, group):
                        part, stack = group
                        return stack.detached().evaluate(episode.query_x[part], episode.query_y[part])
                    parts = self.threads.map(score, self.groups)
                    loss = torch.cat([p[0] for p in parts])
                    acc = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
                    accs = [None] * len(loss) if acc is None else [float(a) for a in acc]
                    return [(float(v), a) for v, a in zip(loss, accs)]
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
            self.stack, self.adapted, self.groups = saved

    def training_step(self, batch):  # pragma: no cover - Betty requires it; unused here
        raise NotImplementedError


class _WithGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, grads, *inputs):
        ctx.grads = grads
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad_output):
        return (None, None, *[None if g is None else grad_output * g for g in ctx.grads])


def with_gradient(value: torch.Tensor, inputs: list[torch.Tensor], grads: list) -> torch.Tensor:
    """A scalar equal to `value` whose gradient with respect to `inputs` is `grads` (already
    computed), so Betty's backward applies gradients taken on worker threads."""
    return _WithGradient.apply(value, tuple(grads), *inputs)


def mean_stats(losses, accs) -> dict:
    """Mean over tasks of per-task losses (a [T] tensor or a list of scalars) and accuracies."""
    stats = {"loss": torch.stack(list(losses)).mean()}
    if accs[0] is not None:
        stats["acc"] = torch.stack(list(accs)).mean().detach()
    return stats
