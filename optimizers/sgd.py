"""Plain gradient descent: the inner step of MAML, FOMAML, iMAML and Reptile."""
from __future__ import annotations

from optimizers.base import InnerLoopOptimizer, stack_aware
from optimizers.learner import Learner


class SGD(InnerLoopOptimizer):
    name = "sgd"

    @stack_aware
    def adapt(self, model: Learner, support_x, support_y, n_steps: int, *, first_order=None,
              iteration=None, checkpoint=False) -> Learner:
        return self.descend_steps(model, support_x, support_y, n_steps,
                                  first_order=first_order, checkpoint=checkpoint)
