"""Plain gradient descent: the inner step of MAML, FOMAML and iMAML."""
from __future__ import annotations

from optimizers.base import InnerLoopOptimizer
from optimizers.learner import Learner


class SGD(InnerLoopOptimizer):
    def adapt(self, model: Learner, support_x, support_y, n_steps: int) -> Learner:
        for step in range(n_steps):
            grads = self.gradients(model, support_x, support_y, step)
            if self.converged(grads):
                break
            model = self.descend(model, grads, step)
        return model
