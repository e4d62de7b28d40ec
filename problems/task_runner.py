"""The one owner of the task axis: how the tasks of a meta-batch run, for adaptation, the outer
objective and evaluation alike. The lower-level problems hand it whole meta-batches and never
branch on how it runs them.

Three ways, chosen per call:
* task threads: contiguous groups of tasks, each a TaskStack of its own, on worker threads
  (`inner.task_threads`, for optimizers that adapt stacks, backbones without in-place state);
* one stack: all tasks at once through the optimizer's `adapt` (`adapts_stacks`);
* one by one: an optimizer written for one task gets each task's Learner in turn.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from hypergradient.utils import sum_present
from inner_loop import (VMAP, Learner, TaskStack, TaskThreads, choose_executor, task_thread_count,
                        thread_safe)
from optimizers import AdaptContext, OptimizerSpecError, declares

#: (loss, accuracy or None) of adapted learners on query data: per task on a TaskStack.
Objective = Callable[[Learner, torch.Tensor, torch.Tensor], tuple]


class TaskRunner:
    def __init__(self, backbone: nn.Module, optimizer: nn.Module, vectorize: str = "auto",
                 task_threads: int = 1):
        self.backbone, self.optimizer = backbone, optimizer
        self.vectorize = vectorize        # one of inner_loop.executor.SETTINGS
        self.task_threads = task_threads  # 0: one per core (inner_loop.threads)
        self.threads: TaskThreads | None = None
        # What the last adaptation left: every task's φ as one stack (None one by one), each
        # task's learner, and the thread groups with their own stacks (None without threads).
        self.stack: TaskStack | None = None
        self.adapted: list[Learner] = []
        self.groups: list[tuple[slice, TaskStack]] | None = None

    # ---- how the task axis runs ---------------------------------------------------------
    def executor(self):
        """How a stack's task axis runs (`inner.vectorize`, the backbone, the device)."""
        return choose_executor(self.vectorize, self.backbone)

    def vectorized(self) -> bool:
        return self.executor() is VMAP

    def stacks(self) -> bool:
        """Whether the optimizer is handed all tasks at once."""
        return declares(self.optimizer, "adapts_stacks")

    def thread_groups(self, tasks: int) -> list[slice] | None:
        count = task_thread_count(self.task_threads, self.backbone)
        if count <= 1 or tasks <= 1 or not self.stacks() or not thread_safe(self.backbone):
            return None
        if self.threads is None or self.threads.threads != count:
            self.threads = TaskThreads(count)
        return self.threads.groups(tasks)

    def map(self, job, items: list) -> list:
        """[job(index, item)]: on the worker threads when there are several items."""
        if len(items) == 1 or self.threads is None:
            return [job(i, item) for i, item in enumerate(items)]
        return self.threads.map(job, items)

    # ---- adaptation ---------------------------------------------------------------------
    def adapted_model(self, model, x, y, steps: int):
        """The optimizer's `adapt`, with a one-line error for one that returns nothing."""
        adapted = self.optimizer.adapt(model, x, y, steps)
        if adapted is None:
            name = type(self.optimizer).__name__
            raise OptimizerSpecError(f"{name}.adapt returned None; it must return the adapted "
                                     "model (e.g. `return model` after updating it)")
        return adapted

    def adapt(self, start: TaskStack, one_task_start: Callable[[], Learner], x, y, steps: int,
              context: AdaptContext) -> None:
        """The inner loop for every task from `start` (θ on a task axis), or task by task from
        `one_task_start()` for an optimizer written for one task."""
        if context.checkpoint and not declares(self.optimizer, "checkpointable"):
            raise ValueError(f"inner.checkpoint_steps needs an adapt that runs the shared inner "
                             f"loop; {type(self.optimizer).__name__} writes its own")
        self.optimizer.context = context
        groups = self.thread_groups(len(start))
        self.groups = None
        if groups is not None:
            def adapt_group(g, part):
                mine = start.select(part, self.threads.replica(self.backbone, g))
                return self.adapted_model(mine, x[part], y[part], steps)
            stacks = self.threads.map(adapt_group, groups)
            self.groups = list(zip(groups, stacks))
            self.stack = TaskStack.joined(stacks, self.backbone)
            self.adapted = [s.view(t) for s in stacks for t in range(len(s))]
        elif self.stacks():
            self.stack = self.adapted_model(start, x, y, steps)
            self.adapted = [self.stack.view(t) for t in range(len(start))]
        else:
            self.stack = None
            self.adapted = [self.adapted_model(one_task_start(), x[t], y[t], steps)
                            for t in range(len(start))]

    def stacked_params(self) -> dict[str, torch.Tensor]:
        """Every task's adapted φ on a task axis, however the tasks ran."""
        if self.stack is not None:
            return self.stack.params
        return {k: torch.stack([a.params[k] for a in self.adapted]) for k in self.adapted[0].params}

    def replace(self, stack: TaskStack) -> None:
        """Continue from other tensors for the adapted φ (iMAML's leaves), keeping the groups."""
        self.stack = stack
        if self.stacks():
            if self.groups is not None:
                self.groups = [(part, stack.select(part, self.threads.replica(self.backbone, g)))
                               for g, (part, _) in enumerate(self.groups)]
        self.adapted = [stack.view(t) for t in range(len(stack))]

    def detach(self) -> None:
        """The adapted φ without their graphs (Reptile's direction is not differentiated)."""
        if self.stack is not None:
            self.stack = self.stack.detached()
            self.adapted = [self.stack.view(t) for t in range(len(self.adapted))]
        else:
            self.adapted = [learner.detached() for learner in self.adapted]

    def parts(self) -> list[tuple[slice | None, TaskStack]]:
        """The adapted tasks as they ran: (tasks, their stack) per thread group, or (None, all);
        one by one, after `replace` only."""
        return self.groups if self.groups is not None else [(None, self.stack)]

    # ---- the outer objective and evaluation ---------------------------------------------
    def objective(self, objective: Objective, query_x, query_y, inputs: list[torch.Tensor]) -> dict:
        """Mean over tasks of `objective` (loss, and accuracy when there is one). On thread
        groups each group's share and its gradient by `inputs` are taken on its own thread."""
        if self.groups is not None:
            return self.objective_by_groups(objective, query_x, query_y, inputs)
        if self.stack is not None and self.stacks():
            loss, acc = objective(self.stack, query_x, query_y)
            return mean_stats(loss, [None] if acc is None else acc)
        losses, accs = zip(*(objective(learner, query_x[t], query_y[t])
                             for t, learner in enumerate(self.adapted)))
        return mean_stats(losses, accs)

    def objective_by_groups(self, objective: Objective, query_x, query_y, inputs) -> dict:
        tasks = len(query_x)
        differentiate = torch.is_grad_enabled()

        def share(g, group):
            part, stack = group
            loss, acc = objective(stack, query_x[part], query_y[part])
            value = loss.sum() / tasks
            grads = torch.autograd.grad(value, inputs, allow_unused=True) if differentiate else None
            return value.detach(), grads, acc
        results = self.threads.map(share, self.groups)
        value = torch.stack([r[0] for r in results]).sum()
        stats = {"loss": value}
        if differentiate:
            grads = [sum_present(parts) for parts in zip(*(r[1] for r in results))]
            stats["loss"] = with_gradient(value, inputs, grads)
        if results[0][2] is not None:
            stats["acc"] = torch.cat([r[2].detach() for r in results]).mean()
        return stats

    def evaluate(self, start: TaskStack, one_task_start, episode, steps: int, iteration: int
                 ) -> list[tuple[float, float | None]]:
        """Per-task (query loss, query accuracy) after `steps` first-order adaptation steps;
        what the last training adaptation left is kept."""
        saved = (self.stack, self.adapted, self.groups,
                 getattr(self.optimizer, "context", AdaptContext()))
        try:
            self.adapt(start, one_task_start, episode.support_x, episode.support_y, steps,
                       AdaptContext(first_order=True, iteration=iteration))
            with torch.no_grad():
                if self.stack is not None:
                    def score(g, group):
                        part, stack = group
                        qx = episode.query_x if part is None else episode.query_x[part]
                        qy = episode.query_y if part is None else episode.query_y[part]
                        return stack.detached().evaluate(qx, qy)
                    parts = self.map(score, self.parts())
                    loss = torch.cat([p[0] for p in parts])
                    acc = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
                    accs = [None] * len(loss) if acc is None else [float(a) for a in acc]
                    return [(float(v), a) for v, a in zip(loss, accs)]
                results = []
                for t, learner in enumerate(self.adapted):
                    v, a = learner.detached().evaluate(episode.query_x[t], episode.query_y[t])
                    results.append((float(v), None if a is None else float(a)))
                return results
        finally:
            self.stack, self.adapted, self.groups, self.optimizer.context = saved


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
