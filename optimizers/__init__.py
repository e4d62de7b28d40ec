"""How φ moves in the inner loop: the `InnerLoopOptimizer` interface users write against, the
context a problem gives it, and one module per variant (registered by `name`). The runtime it
runs on (Learner, TaskStack, executors) is `inner_loop/`; the linear solvers behind implicit
hypergradients are `hypergradient/`."""
from inner_loop import Learner  # re-exported: users type their adapt with it
from optimizers.anil import ANIL
from optimizers.base import AdaptContext, InnerLoopOptimizer, OptimizerSpecError, declares
from optimizers.mamlpp import MAMLPlusPlus
from optimizers.metasgd import MetaSGD
from optimizers.registry import OPTIMIZERS, resolve_optimizer
from optimizers.sgd import SGD

__all__ = ["ANIL", "AdaptContext", "InnerLoopOptimizer", "Learner", "MAMLPlusPlus", "MetaSGD",
           "OPTIMIZERS", "OptimizerSpecError", "SGD", "declares", "resolve_optimizer"]
