"""Betty problems: the outer level (`Outer`) and the swappable lower levels, and a run's typed
options (`load_options`)."""
from problems.adaptation import TaskAdaptation
from problems.factory import LOWER_LEVELS, build_problems
from problems.implicit import ImplicitInner
from problems.options import RunOptions, load_options, override_options
from problems.outer import MetaModel, NonFiniteLoss, Outer
from problems.unrolled import UnrolledInner

__all__ = ["TaskAdaptation", "LOWER_LEVELS", "build_problems", "ImplicitInner", "MetaModel",
           "NonFiniteLoss", "Outer", "RunOptions", "UnrolledInner", "load_options",
           "override_options"]
