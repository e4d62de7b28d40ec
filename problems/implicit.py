"""iMAML: the lower level minimises  L_support(φ) + λ/2‖φ−θ‖²  per task; the hypergradient is
(I + H/λ)⁻¹ ∇φ L_query (Rajeswaran et al. 2019), obtained through Betty's best-response path:
this problem's `Config(type="imaml")` routes it to `hypergradient.implicit_best_response`,
which calls back `ImplicitInner.solve`, which runs the solver `inner.implicit.solver` names.

The adapted φ of all tasks live in this problem's module as leaves stacked on a task axis, so
Betty can differentiate the query loss by them and the solvers can treat the block-diagonal
Hessian as one independent system per task.
"""
from __future__ import annotations

import sys

import torch
from torch import nn
from tqdm import tqdm

import hypergradient
from inner_loop import Learner, TaskStack
from problems.adaptation import TaskAdaptation

class TaskParameters(nn.Module):
    """φ for every task of a meta-batch: one leaf per backbone parameter, shape [T, *p.shape]."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.names = [k for k, _ in backbone.named_parameters()]
        self.phi = nn.ParameterList()

    def load_stacked(self, stacked: dict[str, torch.Tensor]):
        self.phi = nn.ParameterList(nn.Parameter(stacked[k].detach()) for k in self.names)

    def stacked(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.phi))

    def task(self, t: int) -> dict[str, torch.Tensor]:
        return {k: p[t] for k, p in zip(self.names, self.phi)}


class ImplicitInner(TaskAdaptation):
    """iMAML's lower level: proximal adaptation from detached θ; the hypergradient by the
    linear solver `inner.implicit.solver` names.

    Arguments (beside TaskAdaptation's):
        implicit: the `inner.implicit` section (λ, solver, iterations, tolerance, damping).

    Reference: Rajeswaran et al. 2019, "Meta-Learning with Implicit Gradients".

    Example:
        python run.py --problem imaml --dataset omniglot5w1s --set inner.implicit.iters=10
    """

    def __init__(self, name, config, backbone, inner_optimizer, task_kind, steps, *,
                 implicit, vectorize: str = "auto", task_threads: int = 1):
        """`implicit`: the `inner.implicit` section (problems.options.ImplicitOptions)."""
        super().__init__(name, config, backbone, inner_optimizer, task_kind, steps,
                         module=TaskParameters(backbone), vectorize=vectorize,
                         task_threads=task_threads)
        self.lam, self.damping = implicit.lam, implicit.damping
        self.solver = hypergradient.SOLVERS[implicit.solver](implicit)
        self.warned = False

    def initial_learner(self, detach: bool) -> Learner:
        """The proximal inner objective, anchored at θ (detached: the solve is not unrolled)."""
        theta = Learner.of(self.backbone, self.task_kind, detach=True)
        anchor = {k: v.detach() for k, v in theta.params.items()}
        return Learner(self.backbone, theta.params, self.task_kind, anchor=anchor, prox=self.lam)

    def initial_stack(self, tasks: int, detach: bool) -> TaskStack:
        """θ for every task, detached, with the proximal term anchored at θ."""
        anchor = {k: v.detach() for k, v in self.backbone.named_parameters()}
        return TaskStack.of_theta(self.backbone, self.task_kind, tasks, self.runner.executor(),
                                  detach=True, anchor=anchor, prox=self.lam)

    def adapt_meta_batch(self, episode):
        self.adapt_tasks(episode, detach=True, first_order=True)
        self.module.load_stacked(self.runner.stacked_params())
        # From here on φ are the module's leaves (what Betty differentiates the query loss by);
        # the outer loss and the solve run on the same thread groups as the adaptation.
        self.runner.replace(self.phi_stack())

    def phi_stack(self, anchor: dict | None = None) -> TaskStack:
        """φ of every task (the module's leaves), optionally with the proximal term at `anchor`."""
        return TaskStack(self.backbone, self.module.stacked(), self.task_kind,
                         frozenset(self.module.names), len(self.module.phi[0]),
                         self.runner.executor(),
                         anchor=anchor, prox=self.lam if anchor is not None else 0.0)

    def loss_inputs(self) -> list[torch.Tensor]:
        """The outer loss reaches θ through φ: Betty differentiates it by the module's leaves."""
        return list(self.module.parameters())

    def inner_parts(self) -> list["InnerPart"]:
        """The inner objective in the parts the best-response product differentiates on worker
        threads: one per task group, or all tasks as one part."""
        theta = dict(self.backbone.named_parameters())
        x, y = self.cur_batch.support_x, self.cur_batch.support_y
        return [InnerPart(part, stack.anchored(theta, self.lam), x if part is None else x[part],
                          y if part is None else y[part]) for part, stack in self.runner.parts()]

    def map_parts(self, job, parts: list) -> list:
        """[job(index, part)]: on the worker threads when there are several parts."""
        return self.runner.map(job, parts)

    def training_step(self, batch):
        """The inner objective at φ with θ live: what Betty's best-response path differentiates."""
        theta = dict(self.backbone.named_parameters())
        return self.phi_stack(anchor=theta).loss(batch.support_x, batch.support_y)

    def solve(self, hvp, vector):
        """x ≈ (∇²_φφ inner objective)⁻¹ vector, one system per task; the solver's first
        warning is shown once."""
        x = self.solver.solve(hvp, vector)
        if self.solver.warning and not self.warned:
            self.warned = True
            warn(self.solver.warning)
        return x


class InnerPart:
    """Some tasks' inner objective for the best-response product: `phi` are their φ (views of
    the module's leaves), `take` cuts a list of [T, ...] tensors to these tasks."""

    def __init__(self, tasks: slice | None, stack: TaskStack, x, y):
        self.tasks, self.stack, self.x, self.y = tasks, stack, x, y
        self.phi = list(stack.params.values())  # the module's order (TaskParameters.names)

    def loss(self) -> torch.Tensor:
        return self.stack.loss(self.x, self.y)

    def take(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(tensors) if self.tasks is None else [t[self.tasks] for t in tensors]


def warn(message: str) -> None:
    """One `warning: ...` line on stderr: no source line under it (as warnings.warn prints), and
    written through tqdm so that it does not break a progress bar on a terminal."""
    tqdm.write(f"warning: {message}", file=sys.stderr)
    sys.stderr.flush()

