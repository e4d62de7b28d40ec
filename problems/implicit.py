"""iMAML: the lower level minimises  L_support(φ) + λ/2‖φ−θ‖²  per task; the hypergradient is
(I + H/λ)⁻¹ ∇φ L_query (Rajeswaran et al. 2019), obtained through Betty's best-response path:
this problem's `Config(type="imaml")` routes it to `hypergradient.implicit_best_response`
(registered by `hypergradient.register()`, which `build_problems` calls), and that calls back
`ImplicitInner.solve`, which runs the project's own CG or Neumann series (`hypergradient/`).

The adapted φ of all tasks live in this problem's module as leaves stacked on a task dimension,
so Betty can differentiate the query loss with respect to them and the solvers can treat the
block-diagonal Hessian as one independent system per task. The tasks are adapted by the
optimizer's inner loop all at once (a TaskStack with the proximal term), and their inner and
query losses are evaluated the same way (the task executor decides how the task axis runs).
"""
from __future__ import annotations

import sys

import torch
from torch import nn
from tqdm import tqdm

from hypergradient import conjugate_gradient, neumann_series, safe_neumann_alpha
from optimizers import Learner
from optimizers.base import adapts_task_stacks
from optimizers.learner import TaskStack
from problems.adaptation import TaskAdaptation

#: `inner.solver`: the linear solvers `ImplicitInner.solve` knows (the config's closed set).
SOLVERS = ("cg", "neumann")


class TaskParameters(nn.Module):
    """φ for every task of a meta-batch: one leaf per backbone parameter, shape [T, *p.shape]."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.names = [k for k, _ in backbone.named_parameters()]
        self.phi = nn.ParameterList()

    def load(self, adapted: list[Learner]):
        self.load_stacked({k: torch.stack([a.params[k].detach() for a in adapted]) for k in self.names})

    def load_stacked(self, stacked: dict[str, torch.Tensor]):
        self.phi = nn.ParameterList(nn.Parameter(stacked[k].detach()) for k in self.names)

    def stacked(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.phi))

    def task(self, t: int) -> dict[str, torch.Tensor]:
        return {k: p[t] for k, p in zip(self.names, self.phi)}


class ImplicitInner(TaskAdaptation):
    def __init__(self, name, config, backbone, inner_optimizer, task_kind, steps, *,
                 lam: float, solver: str, solver_iters: int, solver_tol: float = 0.0,
                 damping: float = 0.0, power_iters: int = 20, neumann_alpha: float = 0.0,
                 vectorize: str = "auto", task_threads: int = 1):
        super().__init__(name, config, backbone, inner_optimizer, task_kind, steps,
                         module=TaskParameters(backbone), vectorize=vectorize,
                         task_threads=task_threads)
        self.lam, self.solver, self.solver_iters = lam, solver, solver_iters
        self.solver_tol, self.damping = solver_tol, damping
        self.power_iters, self.neumann_alpha = power_iters, neumann_alpha
        self.last_solve = None
        self.warned_indefinite = False

    def initial_learner(self, detach: bool) -> Learner:
        """The proximal inner objective, anchored at θ (detached: the solve is not unrolled)."""
        theta = Learner.of(self.backbone, self.task_kind, detach=True)
        anchor = {k: v.detach() for k, v in theta.params.items()}
        return Learner(self.backbone, theta.params, self.task_kind, anchor=anchor, prox=self.lam)

    def initial_stack(self, tasks: int, detach: bool) -> TaskStack:
        """θ for every task, detached, with the proximal term anchored at θ."""
        anchor = {k: v.detach() for k, v in self.backbone.named_parameters()}
        return TaskStack.of_theta(self.backbone, self.task_kind, tasks, self.executor(),
                                  detach=True, anchor=anchor, prox=self.lam)

    def adapt_meta_batch(self, episode):
        self.adapt_tasks(self.initial_stack(len(episode), detach=True), episode.support_x,
                         episode.support_y, self.steps, lambda: self.initial_learner(detach=True),
                         first_order=True)
        if self.stack is not None:
            self.module.load_stacked(self.stack.params)
        else:
            self.module.load(self.adapted)
        # From here on φ are the module's leaves (what Betty differentiates the query loss by).
        if adapts_task_stacks(self.inner_optimizer):
            self.stack = self.phi_stack()
            self.adapted = [self.stack.view(t) for t in range(len(episode))]
            if self.groups is not None:  # the outer loss and the solve run on the same groups
                self.groups = [(part, self.stack.select(part, self.threads.replica(self.backbone, g)))
                               for g, (part, _) in enumerate(self.groups)]
        else:
            self.adapted = [Learner(self.backbone, self.module.task(t), self.task_kind)
                            for t in range(len(episode))]

    def phi_stack(self, anchor: dict | None = None) -> TaskStack:
        """φ of every task (the module's leaves), optionally with the proximal term at `anchor`."""
        return TaskStack(self.backbone, self.module.stacked(), self.task_kind,
                         frozenset(self.module.names), len(self.module.phi[0]), self.executor(),
                         anchor=anchor, prox=self.lam if anchor is not None else 0.0)

    def loss_inputs(self) -> list[torch.Tensor]:
        """The outer loss reaches θ through φ: Betty differentiates it by the module's leaves."""
        return list(self.module.parameters())

    def inner_parts(self) -> list["InnerPart"]:
        """The inner objective in the parts the best-response product differentiates on worker
        threads: one per task group, or all tasks as one part."""
        theta = dict(self.backbone.named_parameters())
        batch = self.cur_batch
        if self.groups is None:
            return [InnerPart(None, self.phi_stack(anchor=theta), batch.support_x, batch.support_y)]
        return [InnerPart(part, stack.anchored(theta, self.lam), batch.support_x[part],
                          batch.support_y[part]) for part, stack in self.groups]

    def map_parts(self, job, parts: list) -> list:
        """[job(index, part)]: on the worker threads when there are several parts."""
        if len(parts) == 1:
            return [job(0, parts[0])]
        return self.threads.map(job, parts)

    def training_step(self, batch):
        """The inner objective at φ with θ live: what Betty's best-response path differentiates."""
        theta = dict(self.backbone.named_parameters())
        return self.phi_stack(anchor=theta).loss(batch.support_x, batch.support_y)

    def solve(self, hvp, vector):
        """x ≈ (∇²_φφ inner objective)⁻¹ vector, one system per task."""
        if self.solver == "cg":
            x, info = conjugate_gradient(hvp, vector, self.solver_iters, self.solver_tol, batch_dims=1,
                                         fallback_scale=1.0 / (self.lam + self.damping))
            self.last_solve = info
            if info.negative_curvature and not self.warned_indefinite:
                self.warned_indefinite = True
                warn(f"iMAML: I + H/λ is not positive definite on {info.negative_curvature} "
                     f"of {len(vector[0])} tasks (λ={self.lam}); CG stopped early on them "
                     f"(first-order answer where it could not take a step). "
                     f"Raise inner.lam or inner.damping.")
            return x
        alpha = self.neumann_alpha or safe_neumann_alpha(hvp, vector, self.power_iters, batch_dims=1)
        return neumann_series(hvp, vector, self.solver_iters, alpha, batch_dims=1)


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

