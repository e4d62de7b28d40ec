"""MAML++ (Antoniou et al. 2019): learned per-step step sizes, the multi-step loss, per-step
batch norm and derivative-order annealing, each switchable under `inner.mamlpp`."""
from __future__ import annotations

from inner_loop import Learner
from optimizers.base import InnerLoopOptimizer, param_key, rate_table

#: MSL's final share for each earlier step, as a fraction of 1/K (Antoniou et al.'s 0.03/K).
MSL_FLOOR = 0.03


def multi_step_weights(steps: int, iteration: int, anneal_iters: int) -> list[float]:
    """Weights of the query losses after steps 1..K; they sum to 1. Uniform at iteration 0,
    earlier steps shrink linearly to MSL_FLOOR/K at `anneal_iters`; from then on (or with
    anneal_iters=0) the last step alone."""
    if anneal_iters <= 0 or iteration >= anneal_iters:
        return [0.0] * (steps - 1) + [1.0]
    t = iteration / anneal_iters
    earlier = (1.0 - t * (1.0 - MSL_FLOOR)) / steps
    return [earlier] * (steps - 1) + [1.0 - earlier * (steps - 1)]


class MAMLPlusPlus(InnerLoopOptimizer):
    """SGD with MAML++'s pieces:

    * learned per-layer, per-step step sizes (LSLR), clamped to at least `min_lr`;
    * multi-step loss (MSL): the outer loss weighs the query losses after every inner step,
      annealed from uniform toward the last step over `msl_iters` iterations, then the last only;
    * per-step batch norm (BNWB + BNRS, through `backbone_options`): each step its own
      scale/shift and running statistics; predictions still normalise with the current batch, as
      the reference code does, so the statistics are recorded, not used;
    * derivative-order annealing (DA): first order for the first `first_order_iters` iterations.

    Steps beyond the trained number (10 test steps after 5 training steps) reuse the last step's
    step sizes and batch-norm parameters.

    Arguments:
        model: the backbone whose parameters are θ.
        inner_lr: the initial step size of every layer and step.
        steps: inner steps in training (one learned step size per step).
        learned_lrs, min_lr, multi_step_loss, msl_iters, first_order_iters: `inner.mamlpp`.

    Reference: Antoniou et al. 2019, "How to train your MAML".

    Example:
        python run.py --problem mamlpp --dataset omniglot5w1s
    """
    name = "mamlpp"
    adapts_stacks = True
    checkpointable = True
    supports_implicit = False
    implicit_reason = ("its per-step step sizes, multi-step loss and per-step batch norm "
                       "describe the inner trajectory, which the implicit hypergradient ignores")

    def __init__(self, model, inner_lr, steps: int = 5, learned_lrs: bool = True,
                 min_lr: float = 1e-4, multi_step_loss: bool = True, msl_iters: int = 0,
                 first_order_iters: int = 0):
        super().__init__(model, inner_lr)
        self.lrs = rate_table(model, inner_lr, lambda p: (steps,)).requires_grad_(learned_lrs)
        self.min_lr, self.multi_step_loss = min_lr, multi_step_loss
        self.msl_iters, self.first_order_iters = msl_iters, first_order_iters

    @classmethod
    def from_config(cls, model, options):
        inner, own = options.inner, options.inner.mamlpp
        return cls(model, inner.lr, inner.steps, learned_lrs=own.learned_lrs, min_lr=own.min_lr,
                   multi_step_loss=own.multi_step_loss, msl_iters=own.msl_iters,
                   first_order_iters=own.first_order_iters)

    @classmethod
    def backbone_options(cls, options):
        if not options.inner.mamlpp.per_step_bn:
            return {}
        return {"bn_steps": options.inner.steps, "track_bn": True}

    def step_size(self, name: str, step: int):
        rates = self.lrs[param_key(name)]
        return rates[min(step, len(rates) - 1)].clamp_min(self.min_lr)

    def adapt(self, model: Learner, support_x, support_y, n_steps: int) -> Learner:
        context = self.context
        second_order = not context.first_order and context.iteration >= self.first_order_iters  # DA
        return self.descend_steps(model, support_x, support_y, n_steps, record=self.multi_step_loss,
                                  first_order=not second_order)

    def query_objective(self, learner: Learner, query_x, query_y):
        if not learner.trajectory:
            return learner.evaluate(query_x, query_y)
        weights = multi_step_weights(len(learner.trajectory), self.context.iteration,
                                     self.msl_iters)
        # (per task, [T], when the learner is a TaskStack)
        loss = 0.0
        for weight, point in zip(weights, learner.trajectory):
            if weight > 0:
                step_loss, acc = point.evaluate(query_x, query_y)
                loss = loss + weight * step_loss
        return loss, acc  # acc: the last step's
