"""MAML, FOMAML and the other unrolled methods: the hypergradient is backpropagation through
the K inner steps themselves (second order), or through the update sums only (first order).
The outer problem needs no best-response path: its loss already depends on θ through φ.

`checkpoint_steps` trades one extra forward/backward per step for memory flat in the
activations (inner_loop/checkpointing.py)."""
from __future__ import annotations

from problems.adaptation import TaskAdaptation


class UnrolledInner(TaskAdaptation):
    """The lower level of MAML and its unrolled variants: φ adapted from live θ.

    Arguments (beside TaskAdaptation's):
        first_order: stop the hypergradient at the adapted point (FOMAML).
        checkpoint_steps: keep only φ between second-order steps.

    Reference: Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
    Networks".

    Example:
        python run.py --problem maml --dataset omniglot5w1s
    """

    def __init__(self, *args, first_order: bool = False, checkpoint_steps: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_first_order = first_order
        self.checkpoint_steps = checkpoint_steps

    def adapt_meta_batch(self, episode):
        self.adapt_tasks(episode, detach=False, first_order=self.use_first_order,
                         checkpoint=self.checkpoint_steps and not self.use_first_order)
