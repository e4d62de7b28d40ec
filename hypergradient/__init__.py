"""Implicit hypergradients, laid out as Betty's own `betty.hypergradient`: one module per method
and the jvp functions in `jvp_fn_mapping`.

- `cg`: conjugate gradient, truncated at negative curvature, with its `SolveInfo` record
- `neumann`: the Neumann series and its safe step size 1/λ_max
- `power`: `power_iteration`, λ_max from its own seeded generator (not torch's global RNG)
- `imaml`: the best-response product Betty calls for a lower problem with `Config(type="imaml")`

Betty routes a problem's hypergradient through `betty.hypergradient.jvp_fn_mapping[type]`.
Importing this package changes nothing there: `register()` adds this project's entries, and
`problems.build_problems` calls it before it creates Betty problems. Betty 0.2.1's own `cg` is
wrong (upstream issue #15) and its `neumann` diverges when αλ_max > 2, hence our own names.
Depends on torch; `register()` imports betty.
"""
from hypergradient.cg import SolveInfo, conjugate_gradient
from hypergradient.imaml import implicit_best_response
from hypergradient.neumann import neumann_series, safe_neumann_alpha
from hypergradient.power import power_iteration

#: This project's entries for Betty's `jvp_fn_mapping`, added by `register()`.
jvp_fn_mapping = {
    "imaml": implicit_best_response,
}


def register() -> None:
    """Add `jvp_fn_mapping` to Betty's registry. Idempotent: calling it again changes nothing."""
    from betty.hypergradient import jvp_fn_mapping as betty_jvp_fn_mapping
    betty_jvp_fn_mapping.update(jvp_fn_mapping)


__all__ = ["SolveInfo", "conjugate_gradient", "implicit_best_response", "jvp_fn_mapping",
           "neumann_series", "power_iteration", "register", "safe_neumann_alpha"]
