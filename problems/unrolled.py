"""MAML, FOMAML and the other unrolled methods: the hypergradient is backpropagation through
the K inner steps themselves (second order), or through the update sums only (first order).
The outer problem needs no best-response path: its loss already depends on θ through φ."""
from __future__ import annotations

from problems.adaptation import TaskAdaptation


class UnrolledInner(TaskAdaptation):
    def __init__(self, *args, first_order: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_first_order = first_order

    def adapt_meta_batch(self, episode):
        with self.first_order(self.use_first_order):
            self.adapted = [
                self.inner_optimizer.adapt(self.initial_learner(detach=False),
                                           episode.support_x[t], episode.support_y[t], self.steps)
                for t in range(len(episode))]
