"""Implicit hypergradients, laid out as Betty's own `betty.hypergradient`: one module per method,
the linear solvers by name (`SOLVERS`, what `inner.implicit.solver` names), and the jvp
functions Betty routes a problem's hypergradient through (`jvp_fn_mapping`).

Adding a solver is its module (a `LinearSolver` subclass) plus one line in `SOLVERS`.
Importing this package changes nothing in Betty: `register()` adds this project's entries, and
`problems.build_problems` calls it. Betty 0.2.1's own `cg` is wrong and its `neumann` diverges
when αλ_max > 2 (docs/DESIGN.md), hence our own.
"""
from hypergradient.cg import ConjugateGradient, SolveInfo, conjugate_gradient
from hypergradient.imaml import implicit_best_response
from hypergradient.neumann import NeumannSeries, neumann_series, safe_neumann_alpha
from hypergradient.power import power_iteration
from hypergradient.solver import LinearSolver

#: `inner.implicit.solver`: the linear solvers by name.
SOLVERS: dict[str, type[LinearSolver]] = {
    "cg": ConjugateGradient,
    "neumann": NeumannSeries,
}

#: This project's entries for Betty's `jvp_fn_mapping`, added by `register()`.
jvp_fn_mapping = {
    "imaml": implicit_best_response,
}


def register() -> None:
    """Add `jvp_fn_mapping` to Betty's registry. Idempotent: calling it again changes nothing."""
    from betty.hypergradient import jvp_fn_mapping as betty_jvp_fn_mapping
    betty_jvp_fn_mapping.update(jvp_fn_mapping)


__all__ = ["ConjugateGradient", "LinearSolver", "NeumannSeries", "SOLVERS", "SolveInfo",
           "conjugate_gradient", "implicit_best_response", "jvp_fn_mapping", "neumann_series",
           "power_iteration", "register", "safe_neumann_alpha"]
