"""iMAML as Betty's documentation writes it: two `ImplicitProblem`s, the inner one holding its
own copy of the network (reset to θ at the start of every inner loop), one task per inner loop
of `unroll_steps` SGD steps on support loss + λ/2‖φ−θ‖², and the outer problem accumulating
the query-loss hypergradient over the meta-batch (`gradient_accumulation`).

The best-response product is a minimal correct CG registered as "baseline_cg" (Betty 0.2.1's
own `cg` is wrong, docs/DESIGN.md); it calls this project's `conjugate_gradient` on one task's
system, so both sides solve the same linear system the same way."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from betty.configs import Config, EngineConfig
from betty.engine import Engine
from betty.hypergradient import jvp_fn_mapping
from betty.problems import ImplicitProblem

from hypergradient import conjugate_gradient


def baseline_cg(vector, curr, prev, sync):
    """−(∂²L_in/∂θ∂φ) (∂²L_in/∂φ²)⁻¹ v for one task."""
    inner_loss = curr.training_step_exec(curr.cur_batch)
    phi = curr.trainable_parameters()
    grads = torch.autograd.grad(inner_loss, phi, create_graph=True)

    def hvp(u):
        return list(torch.autograd.grad(grads, phi, grad_outputs=u, retain_graph=True))

    x, _ = conjugate_gradient(hvp, [v.detach() for v in vector], curr.cg_iters,
                              fallback_scale=1.0 / curr.lam)
    theta = prev.trainable_parameters()
    if sync:
        torch.autograd.backward(grads, inputs=theta, grad_tensors=[-xi for xi in x])
        return None
    return [None if g is None else -g for g in torch.autograd.grad(grads, theta, grad_outputs=x,
                                                                      allow_unused=True)]


jvp_fn_mapping["baseline_cg"] = baseline_cg


class Feed:
    """The current meta-batch; which task a step sees follows from the problem's step count."""
    episode = None


class Inner(ImplicitProblem):
    def training_step(self, batch):
        x, y = batch
        reg = sum(((p - q) ** 2).sum() for p, q in zip(self.trainable_parameters(),
                                                        self.outer.trainable_parameters()))
        return F.cross_entropy(self.module(x), y) + 0.5 * self.lam * reg

    def on_inner_loop_start(self):
        self.module.load_state_dict(self.outer.module.state_dict())

    def get_batch(self):
        t = ((self._count - 1) // self._unroll_steps) % len(self.feed.episode)
        return self.feed.episode.support_x[t], self.feed.episode.support_y[t]


class Outer(ImplicitProblem):
    capture = False

    def training_step(self, batch):
        x, y = batch
        return F.cross_entropy(self.inner(x), y)

    def get_batch(self):
        t = (self._count - 1) % len(self.feed.episode)
        return self.feed.episode.query_x[t], self.feed.episode.query_y[t]

    def grad_callback(self):
        if self.capture and self._count % self.gas == 0:  # the whole meta-batch accumulated
            self.captured = [p.grad.detach().clone() for p in self.trainable_parameters()]


class BettyIMAML:
    def __init__(self, backbone: torch.nn.Module, lr: float, steps: int, outer_lr: float,
                 lam: float, cg_iters: int, tasks: int, device: str):
        theta, phi = copy.deepcopy(backbone), copy.deepcopy(backbone)
        self.feed, self.tasks, self.steps = Feed(), tasks, steps
        self.outer = Outer("outer", Config(gradient_accumulation=tasks, retain_graph=True),
                           module=theta,
                           optimizer=torch.optim.Adam(theta.parameters(), lr=outer_lr))
        self.inner = Inner("inner", Config(type="baseline_cg", unroll_steps=steps), module=phi,
                           optimizer=torch.optim.SGD(phi.parameters(), lr=lr))
        for problem in (self.outer, self.inner):
            problem.feed = self.feed
        self.inner.lam, self.inner.cg_iters = lam, cg_iters
        self.engine = Engine(problems=[self.outer, self.inner],
                             config=EngineConfig(train_iters=10 ** 9,
                                                 strategy="gpu" if device == "cuda" else "cpu"),
                             dependencies={"u2l": {self.outer: [self.inner]},
                                           "l2u": {self.inner: [self.outer]}})
        self.backbone = theta

    def step(self, episode) -> None:
        """One meta-iteration: `steps` inner steps for each of the `tasks` tasks."""
        self.feed.episode = episode
        for _ in range(self.steps * self.tasks):
            self.engine.global_step += 1
            self.engine.train_step()

    def meta_gradient(self, episode) -> list[torch.Tensor]:
        """The accumulated outer gradient of one meta-iteration (θ is then updated; callers
        compare at a fresh θ)."""
        self.outer.capture = True
        self.step(episode)
        self.outer.capture = False
        return self.outer.captured
