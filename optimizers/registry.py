"""Inner-loop optimizers by name, and users' own classes by `package.module:ClassName`."""
from __future__ import annotations

import importlib
import inspect

import pkgutil
from pathlib import Path

from optimizers.base import REGISTRY, InnerLoopOptimizer, OptimizerSpecError

# Every module of this package is imported, so each class that sets `name` registers itself:
# adding a registered optimizer is its module plus its preset in configs/problems/.
for _module in pkgutil.iter_modules([str(Path(__file__).parent)]):
    importlib.import_module(f"optimizers.{_module.name}")

OPTIMIZERS: dict[str, type] = REGISTRY


REQUIRED = ("adapt", "meta_parameters")


def resolve_optimizer(spec: str) -> type:
    if ":" not in spec:
        if spec not in OPTIMIZERS:
            raise OptimizerSpecError(
                f"unknown inner optimizer {spec!r}; choose one of {', '.join(sorted(OPTIMIZERS))} "
                "or give your own class as package.module:ClassName")
        return OPTIMIZERS[spec]
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or an error raised inside the user's module
        raise OptimizerSpecError(
            f"cannot import module {module_name!r} for inner optimizer {spec!r} "
            f"({type(err).__name__}: "
            f"{err}); check the module path and that its folder is on PYTHONPATH") from None
    cls = getattr(module, class_name, None)
    if cls is None or not inspect.isclass(cls):
        raise OptimizerSpecError(
            f"module {module_name!r} has no class {class_name!r}; write it as "
            "package.module:ClassName")
    # the base's placeholder would raise at the first step
    if getattr(cls, "adapt", None) is InnerLoopOptimizer.adapt:
        raise OptimizerSpecError(
            f"{spec} does not implement adapt (it inherits InnerLoopOptimizer's "
            "placeholder, which raises NotImplementedError); define adapt(self, model, support_x, "
            f"support_y, n_steps) in {class_name}, returning the adapted learner")
    missing = [m for m in REQUIRED if not callable(getattr(cls, m, None))]
    if missing or not issubclass(cls, __import__("torch").nn.Module):
        what = f"lacks {', '.join(missing)}" if missing else "is not a torch.nn.Module"
        raise OptimizerSpecError(
            f"{spec} {what}; subclass optimizers.InnerLoopOptimizer and implement "
            "adapt(model, support_x, support_y, n_steps) and meta_parameters()")
    return cls
