"""MAML, FOMAML and the other unrolled methods: the hypergradient is backpropagation through
the K inner steps themselves (second order), or through the update sums only (first order).
The outer problem needs no best-response path: its loss already depends on θ through φ.

Plain SGD inner loops run all tasks at once (problems/vectorized.py) where that is faster
(`vectorize="auto"`); other optimizers adapt task by task. `checkpoint_steps` trades one extra
forward/backward per step for memory flat in the activations (problems/checkpointing.py)."""
from __future__ import annotations

from optimizers import SGD, Learner
from problems import vectorized
from problems.adaptation import TaskAdaptation
from problems.checkpointing import checkpointed_step


class UnrolledInner(TaskAdaptation):
    def __init__(self, *args, first_order: bool = False, checkpoint_steps: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_first_order = first_order
        self.checkpoint_steps = checkpoint_steps
        self.stacked = None  # φ of every task, [T, ...] per parameter, on the vectorized path

    def adapt_meta_batch(self, episode):
        if self.vectorized():
            theta = self.initial_learner(detach=False).params
            self.stacked = vectorized.sgd_adapt(
                self.backbone, theta, episode.support_x, episode.support_y, self.task_kind,
                self.steps, self.inner_optimizer.inner_lr, first_order=self.use_first_order,
                checkpoint=self.checkpoint_steps)
            self.adapted = [Learner(self.backbone, vectorized.task(self.stacked, t), self.task_kind)
                            for t in range(len(episode))]
            return
        self.stacked = None
        adapt = self.checkpointed_adapt if self.checkpoint_steps else self.inner_optimizer.adapt
        with self.first_order(self.use_first_order):
            self.adapted = [adapt(self.initial_learner(detach=False),
                                  episode.support_x[t], episode.support_y[t], self.steps)
                            for t in range(len(episode))]

    def stacked_phi(self):
        return self.stacked

    def checkpointed_adapt(self, learner: Learner, support_x, support_y, n_steps: int) -> Learner:
        """The optimizer's own steps (gradients, then descend), each checkpointed. Only for
        optimizers that use SGD's step loop; others decide their steps themselves."""
        opt = self.inner_optimizer
        if type(opt).adapt is not SGD.adapt or opt.grad_tol > 0:
            raise ValueError(f"inner.checkpoint_steps needs an optimizer that runs SGD's step loop "
                             f"without inner.grad_tol; {type(opt).__name__} does not")
        if self.use_first_order:  # nothing is differentiated through the steps: nothing to save
            return opt.adapt(learner, support_x, support_y, n_steps)
        names = opt.adapted_names(learner)
        phi = [learner.params[k] for k in names]
        for step in range(n_steps):
            def descend(current, create_graph, step=step):
                model = learner.with_params(dict(zip(names, current)))
                with self.first_order(not create_graph):
                    grads = opt.gradients(model, support_x, support_y, step, names)
                moved = opt.descend(model, grads, step)
                return [moved.params[k] for k in names]
            phi = checkpointed_step(descend, phi, opt.meta_parameters())
        return learner.with_params(dict(zip(names, phi)))
