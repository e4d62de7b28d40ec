"""Meta-SGD (Li et al. 2017): gradient descent whose step size is learned per parameter
element, φ = θ − α ⊙ ∇L_support, with α meta-trained beside θ (initialised to inner.lr)."""
from __future__ import annotations

from optimizers.base import param_key, rate_table
from optimizers.sgd import SGD


class MetaSGD(SGD):
    """SGD whose step size α is a learned tensor per parameter, meta-trained with θ.

    Arguments:
        model: the backbone whose parameters are θ.
        inner_lr: every element of α at the start.

    Reference: Li et al. 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning".

    Example:
        python run.py --problem metasgd --dataset omniglot5w1s
    """
    name = "metasgd"
    supports_implicit = False
    implicit_reason = ("its learned step sizes do not change the proximal minimiser φ*, so the "
                       "implicit hypergradient gives them no gradient")

    def __init__(self, model, inner_lr):
        super().__init__(model, inner_lr)
        self.lrs = rate_table(model, inner_lr, lambda p: p.shape)

    def step_size(self, name: str, step: int):
        return self.lrs[param_key(name)]
