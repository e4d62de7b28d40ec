"""Betty problems: the outer level (`Outer`) and the swappable lower levels."""
from problems.adaptation import TaskAdaptation
from problems.factory import INNER_KINDS, build_problems
from problems.implicit import ImplicitInner
from problems.outer import MetaModel, NonFiniteLoss, Outer
from problems.unrolled import UnrolledInner

__all__ = ["TaskAdaptation", "INNER_KINDS", "build_problems", "ImplicitInner", "MetaModel",
           "NonFiniteLoss", "Outer", "UnrolledInner"]
