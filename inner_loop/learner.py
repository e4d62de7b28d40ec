"""A backbone evaluated at explicit parameter tensors, for one task (`Learner`) or for all tasks
of a meta-batch at once (`TaskStack`).

Adaptation never copies modules or round-trips state dicts: both pair the one shared backbone
with a dict of tensors (θ itself, or an adapted φ that may carry an autograd graph back to θ)
and call the backbone through `torch.func.functional_call`. A TaskStack holds φ stacked on a
task axis, [T, *p.shape], and runs the backbone through a task executor (inner_loop/executor.py);
`stack.view(t)` is task t's Learner. The inner objective (task loss plus the proximal
term) is written once, `task_losses` and `proximal`, for both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from inner_loop.executor import LOOP, TaskExecutor

Params = dict[str, torch.Tensor]


def task_losses(outputs: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Each task's mean loss, [T], from outputs [T, n, ...] and targets [T, n, ...]:
    cross-entropy for classification, mean squared error for regression."""
    if task == "classification":
        flat = F.cross_entropy(outputs.flatten(0, 1), y.flatten(), reduction="none")
        return flat.view(y.shape[0], -1).mean(1)
    return ((outputs - y) ** 2).flatten(1).mean(1)


def proximal(params: Params, anchor: Params | None, prox: float, tasks: int | None):
    """λ/2‖φ−θ‖² per task ([T]; a scalar when `tasks` is None: one unstacked task). Parameters
    shared by all tasks (not stacked) add the same amount to each."""
    if not anchor or prox == 0.0:
        return 0.0
    total = 0.0
    for k, a in anchor.items():
        square = (params[k] - a) ** 2
        stacked = tasks is not None and square.dim() > a.dim()
        total = total + (square.flatten(1).sum(1) if stacked else square.sum())
    return 0.5 * prox * total


def accuracy(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(-1) == y).float().flatten(1).mean(1)


class Learner(nn.Module):
    def __init__(self, backbone: nn.Module, params: Params, task: str,
                 anchor: Params | None = None, prox: float = 0.0, step: int | None = None):
        super().__init__()
        # Not registered as a submodule: a Learner is a view of the backbone, not its owner.
        object.__setattr__(self, "backbone", backbone)
        self.params = dict(params)
        self.task = task  # "classification" or "regression"
        self.anchor = anchor  # iMAML's proximal centre θ (None: no proximal term)
        self.prox = prox
        # The inner step that produced these parameters: per-step layers (MAML++'s batch norm)
        # use it when a call gives no step, so a query is judged with the layers of its step.
        self.step = step
        # The learners after every inner step, when the optimizer records them (MAML++'s
        # multi-step loss scores the query set along the whole trajectory).
        self.trajectory: list = []

    @classmethod
    def of(cls, backbone: nn.Module, task: str, detach: bool = False) -> "Learner":
        params = dict(backbone.named_parameters())
        if detach:
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
        return cls(backbone, params, task)

    def _copy(self, params: Params) -> "Learner":
        return type(self)(self.backbone, params, self.task, self.anchor, self.prox, self.step)

    def with_params(self, params: Params) -> "Learner":
        """Same backbone, proximal term and kind, new parameter values (missing keys kept)."""
        return self._copy({**self.params, **params})

    def anchored(self, anchor: Params | None, prox: float) -> "Learner":
        """The same φ with the proximal term λ/2‖φ−anchor‖² (iMAML's inner objective)."""
        learner = self.with_params({})
        learner.anchor, learner.prox = anchor, prox
        return learner

    def at_step(self, step: int | None) -> "Learner":
        learner = self.with_params({})
        learner.step = step
        return learner

    def forward(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        step = self.step if step is None else step
        return functional_call(self.backbone, self.params, (x,), {"step": step})

    def features(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The backbone's body (`backbone.features`) at these parameters, for optimizers that
        adapt only the head on features computed once (ANIL)."""
        step = self.step if step is None else step
        return functional_call(_Method(self.backbone, "features"), _prefixed(self.params), (x,),
                               {"step": step})

    def task_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return task_losses(outputs.unsqueeze(0), y.unsqueeze(0), self.task)[0]

    def proximal_term(self) -> torch.Tensor | float:
        return proximal(self.params, self.anchor, self.prox, None)

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The inner objective: task loss, plus λ/2‖φ−θ‖² when an anchor is set."""
        return self.task_loss(self(x, step), y) + self.proximal_term()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, step: int | None = None):
        """(loss, accuracy) on a batch; accuracy is None for regression."""
        outputs = self(x, step)
        loss = self.task_loss(outputs, y)
        if self.task != "classification":
            return loss, None
        return loss, accuracy(outputs.unsqueeze(0), y.unsqueeze(0))[0]

    def detached(self) -> "Learner":
        return self.with_params({k: v.detach() for k, v in self.params.items()})


class TaskStack(Learner):
    """φ of T tasks at once. Parameters named in `stacked` have a leading task axis [T, ...];
    the others are shared by every task (θ itself: ANIL's body never moves). The inputs of every
    call are stacked too ([T, n, ...]); losses and accuracies come back per task, [T], and
    `loss` (what inner gradients differentiate) is their sum, whose gradient with respect to the
    stacked φ is each task's own gradient."""

    def __init__(self, backbone: nn.Module, params: Params, task: str, stacked: frozenset,
                 tasks: int, executor: TaskExecutor = LOOP, anchor: Params | None = None,
                 prox: float = 0.0, step: int | None = None):
        super().__init__(backbone, params, task, anchor, prox, step)
        self.stacked, self.tasks, self.executor = frozenset(stacked), tasks, executor

    @classmethod
    def of_theta(cls, backbone: nn.Module, task: str, tasks: int, executor: TaskExecutor,
                 names: list[str] | None = None, detach: bool = False, anchor: Params | None = None,
                 prox: float = 0.0) -> "TaskStack":
        """θ broadcast to `tasks` tasks (views: gradients flow back to θ, summed over tasks);
        only `names` (default: every parameter) get a task axis."""
        params = dict(backbone.named_parameters())
        if detach:
            params = {k: v.detach() for k, v in params.items()}
        names = list(params) if names is None else names
        for k in names:
            params[k] = params[k].unsqueeze(0).expand(tasks, *params[k].shape)
        return cls(backbone, params, task, frozenset(names), tasks, executor, anchor, prox)

    def _copy(self, params: Params) -> "TaskStack":
        return type(self)(self.backbone, params, self.task, self.stacked, self.tasks,
                          self.executor, self.anchor, self.prox, self.step)

    def __len__(self) -> int:
        return self.tasks

    def split(self) -> tuple[Params, Params]:
        stacked = {k: v for k, v in self.params.items() if k in self.stacked}
        return stacked, {k: v for k, v in self.params.items() if k not in self.stacked}

    def run(self, module: nn.Module, x: torch.Tensor, kwargs: dict,
            prefix: str = "") -> torch.Tensor:
        stacked, shared = self.split()
        return self.executor(module, _prefixed(stacked, prefix), _prefixed(shared, prefix), x,
                             kwargs)

    def forward(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return self.run(self.backbone, x, {"step": self.step if step is None else step})

    def features(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return self.run(_Method(self.backbone, "features"), x,
                        {"step": self.step if step is None else step}, prefix="module.")

    def losses(self, x: torch.Tensor, y: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """Each task's inner objective, [T]."""
        return task_losses(self(x, step), y, self.task) + proximal(self.params, self.anchor,
                                                                     self.prox, self.tasks)

    def loss(self, x: torch.Tensor, y: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return self.losses(x, y, step).sum()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, step: int | None = None):
        """(per-task loss [T], per-task accuracy [T] or None)."""
        outputs = self(x, step)
        loss = task_losses(outputs, y, self.task)
        return loss, None if self.task != "classification" else accuracy(outputs, y)

    def select(self, part: slice, backbone: nn.Module | None = None) -> "TaskStack":
        """Tasks `part` as a stack of their own (views of this one's φ: gradients flow back),
        optionally calling another replica of the backbone (inner_loop.threads.TaskThreads)."""
        params = {k: v[part] if k in self.stacked else v for k, v in self.params.items()}
        return type(self)(backbone if backbone is not None else self.backbone, params, self.task,
                          self.stacked, len(range(self.tasks)[part]), self.executor, self.anchor,
                          self.prox, self.step)

    @classmethod
    def joined(cls, parts: list["TaskStack"], backbone: nn.Module) -> "TaskStack":
        """The stacks of consecutive task groups as one stack (their final φ; no trajectory)."""
        first = parts[0]
        params = {k: torch.cat([p.params[k] for p in parts]) if k in first.stacked else v
                  for k, v in first.params.items()}
        return cls(backbone, params, first.task, first.stacked, sum(len(p) for p in parts),
                   first.executor, first.anchor, first.prox, first.step)

    def view(self, t: int, trajectory: bool = True) -> Learner:
        """Task t as a one-task Learner (a view: shared parameters are the same tensors), with
        task t's trajectory when the stack recorded one."""
        params = {k: v[t] if k in self.stacked else v for k, v in self.params.items()}
        learner = Learner(self.backbone, params, self.task, self.anchor, self.prox, self.step)
        if trajectory:  # the last point is the stack itself: its views carry no trajectory
            learner.trajectory = [point.view(t, trajectory=False) for point in self.trajectory]
        return learner


def _prefixed(params: Params, prefix: str = "module.") -> Params:
    return {prefix + k: v for k, v in params.items()} if prefix else params


class _Method(nn.Module):
    """Runs one method of a module as `forward`, so functional_call can call it."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args, **kwargs):
        return getattr(self.module, self.method)(*args, **kwargs)
