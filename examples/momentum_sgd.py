r"""A user's own inner-loop optimizer: gradient descent with heavy-ball momentum.

    python run.py --problem maml --dataset sinusoid \
        --inner-optimizer examples.momentum_sgd:MomentumSGD
"""
from optimizers import InnerLoopOptimizer


class MomentumSGD(InnerLoopOptimizer):
    """v ← μ·v + ∇L(φ),  φ ← φ − α·v. Differentiable like plain SGD: the problem decides
    first or second order, and `gradients`/`descend` come from the base class."""

    momentum = 0.9

    def adapt(self, model, support_x, support_y, n_steps):
        velocity = {}
        for step in range(n_steps):
            grads = self.gradients(model, support_x, support_y, step)
            velocity = {k: self.momentum * velocity.get(k, 0.0) + g for k, g in grads.items()}
            model = self.descend(model, velocity, step)
        return model
