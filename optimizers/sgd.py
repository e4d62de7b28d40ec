"""Plain gradient descent: the inner step of MAML, FOMAML, iMAML and Reptile."""
from __future__ import annotations

from inner_loop import Learner
from optimizers.base import InnerLoopOptimizer


class SGD(InnerLoopOptimizer):
    """φ ← φ − α ∇L_support(φ), `n_steps` times, on all tasks of a meta-batch at once.

    Arguments:
        model: the backbone whose parameters are θ.
        inner_lr: the step size α.

    Reference: Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
    Networks" (the inner loop of MAML).

    Example:
        optimizer = SGD(backbone, inner_lr=0.4)
        phi = optimizer.adapt(Learner.of(backbone, "classification"), x, y, n_steps=5)
    """
    name = "sgd"
    adapts_stacks = True
    checkpointable = True

    def adapt(self, model: Learner, support_x, support_y, n_steps: int) -> Learner:
        return self.descend_steps(model, support_x, support_y, n_steps)
