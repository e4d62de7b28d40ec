"""MAML, FOMAML and the other unrolled methods: the hypergradient is backpropagation through
the K inner steps themselves (second order), or through the update sums only (first order).
The outer problem needs no best-response path: its loss already depends on θ through φ.

All tasks adapt at once through the optimizer's inner loop (a TaskStack, run by the task
executor `inner.vectorize` picks); `checkpoint_steps` trades one extra forward/backward per step
for memory flat in the activations (optimizers/checkpointing.py)."""
from __future__ import annotations

from optimizers.base import adapts_task_stacks
from problems.adaptation import TaskAdaptation


class UnrolledInner(TaskAdaptation):
    def __init__(self, *args, first_order: bool = False, checkpoint_steps: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_first_order = first_order
        self.checkpoint_steps = checkpoint_steps

    def adapt_meta_batch(self, episode):
        start = self.initial_stack(len(episode), detach=False)
        checkpoint = self.checkpoint_steps and not self.use_first_order
        if checkpoint and not adapts_task_stacks(self.inner_optimizer):
            raise ValueError(f"inner.checkpoint_steps needs an optimizer whose adapt runs the shared "
                             f"inner loop; {type(self.inner_optimizer).__name__} writes its own")
        with self.settings(first_order=self.use_first_order, checkpoint_steps=checkpoint):
            self.adapt_tasks(start, episode.support_x, episode.support_y, self.steps,
                             lambda: self.initial_learner(detach=False))
