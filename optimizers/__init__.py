"""How φ moves in the inner loop (InnerLoopOptimizer and variants), and the linear solvers
behind implicit hypergradients. Depends on torch only."""
from optimizers.base import InnerLoopOptimizer
from optimizers.learner import Learner
from optimizers.registry import OPTIMIZERS, OptimizerSpecError, resolve_optimizer
from optimizers.sgd import SGD

__all__ = ["InnerLoopOptimizer", "Learner", "OPTIMIZERS", "OptimizerSpecError",
           "resolve_optimizer", "SGD"]
