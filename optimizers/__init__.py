"""How φ moves in the inner loop (InnerLoopOptimizer and variants). Depends on torch only.
The linear solvers behind implicit hypergradients are in `hypergradient/`."""
from optimizers.anil import ANIL
from optimizers.base import InnerLoopOptimizer
from inner_loop.learner import Learner  # re-exported: users type their adapt with it
from optimizers.mamlpp import MAMLPlusPlus
from optimizers.metasgd import MetaSGD
from optimizers.registry import OPTIMIZERS, OptimizerSpecError, resolve_optimizer
from optimizers.sgd import SGD

__all__ = ["ANIL", "InnerLoopOptimizer", "Learner", "MAMLPlusPlus", "MetaSGD", "OPTIMIZERS",
           "OptimizerSpecError", "resolve_optimizer", "SGD"]
