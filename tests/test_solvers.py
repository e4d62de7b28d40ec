"""The linear solvers behind implicit hypergradients, against dense solves on closed-form
problems (float64)."""
import pytest
import torch

from hypergradient import conjugate_gradient, neumann_series, power_iteration, safe_neumann_alpha


def spd(dim, cond, seed, batch=None):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, dim, dim) if batch else (dim, dim)
    q, _ = torch.linalg.qr(torch.randn(shape, generator=g, dtype=torch.float64))
    eigs = torch.logspace(0, torch.log10(torch.tensor(float(cond))), dim, dtype=torch.float64)
    return q @ torch.diag_embed(eigs.expand(*shape[:-1])) @ q.transpose(-1, -2)


def matvec_of(A, split=(10, 20)):
    """A acting on a vector stored as two tensors (as parameters of a model are)."""
    def mv(vs):
        v = torch.cat([t.reshape(*t.shape[:A.dim() - 2], -1) for t in vs], -1)
        out = (A @ v.unsqueeze(-1)).squeeze(-1)
        return list(torch.split(out, split, dim=-1))
    return mv


def test_cg_reaches_1e_minus_6_within_dimension_iterations():
    A = spd(30, 20.0, 0)
    b = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exact = torch.linalg.solve(A, b)
    x, info = conjugate_gradient(matvec_of(A), list(torch.split(b, (10, 20))), iters=30)
    err = (torch.cat(x) - exact).norm() / exact.norm()
    assert err < 1e-6
    assert info.iterations <= 30


def test_cg_error_falls_as_iterations_rise():
    A = spd(30, 20.0, 2)
    b = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = torch.linalg.solve(A, b)
    errors = []
    for iters in (1, 5, 10, 20, 30):
        x, _ = conjugate_gradient(matvec_of(A), list(torch.split(b, (10, 20))), iters)
        errors.append(float((torch.cat(x) - exact).norm() / exact.norm()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-6 < errors[0]


def test_batched_cg_solves_each_system_separately():
    A = spd(30, 50.0, 4, batch=3)  # a different matrix per task
    b = torch.randn(3, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    exact = torch.linalg.solve(A, b)
    x, _ = conjugate_gradient(matvec_of(A), list(torch.split(b, (10, 20), dim=-1)), 40,
                              batch_dims=1)
    assert torch.allclose(torch.cat(x, -1), exact, rtol=0, atol=1e-8 * exact.abs().max())


def test_cg_tolerance_stops_early():
    A = spd(30, 10.0, 6)
    b = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    _, info = conjugate_gradient(matvec_of(A), list(torch.split(b, (10, 20))), 100, tol=1e-3)
    assert info.iterations < 30 and info.residual_norms[-1] <= 1e-3 * b.norm()


def test_power_iteration_finds_largest_eigenvalue():
    A = spd(30, 40.0, 8)
    like = [torch.zeros(10, dtype=torch.float64), torch.zeros(20, dtype=torch.float64)]
    estimate = power_iteration(matvec_of(A), like, iters=200,
                               generator=torch.Generator().manual_seed(0))
    assert abs(float(estimate) - 40.0) / 40.0 < 1e-3


def test_power_iteration_does_not_depend_on_the_global_random_generator():
    """The Neumann step size is a function of A alone (the same θ and batch give the same step):
    drawing from torch's global generator in between changes nothing, per system as well."""
    A = spd(30, 40.0, 8, batch=2)
    like = [torch.zeros(2, 10, dtype=torch.float64), torch.zeros(2, 20, dtype=torch.float64)]
    first = power_iteration(matvec_of(A), like, iters=3, batch_dims=1)  # far from converged
    torch.rand(100)
    second = power_iteration(matvec_of(A), like, iters=3, batch_dims=1)
    torch.manual_seed(123)
    alpha = safe_neumann_alpha(matvec_of(A), like, iters=3, batch_dims=1)
    assert torch.equal(first, second) and torch.equal(alpha, 1.0 / second)


def test_neumann_converges_with_power_iteration_step_size():
    A = spd(30, 10.0, 9)
    b = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    exact = torch.linalg.solve(A, b)
    parts = list(torch.split(b, (10, 20)))
    alpha = safe_neumann_alpha(matvec_of(A), parts, iters=50,
                               generator=torch.Generator().manual_seed(0))
    errors = [float((torch.cat(neumann_series(matvec_of(A), parts, n, alpha)) - exact).norm()
                    / exact.norm()) for n in (10, 50, 300)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6


def test_neumann_diverges_when_step_exceeds_two_over_lambda_max():
    """Why the step size is chosen by power iteration: Betty's fixed alpha can diverge."""
    A = spd(30, 10.0, 11)
    b = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    parts = list(torch.split(b, (10, 20)))
    big = neumann_series(matvec_of(A), parts, 60, alpha=2.5 / 10.0)
    assert torch.cat(big).norm() > 1e3 * b.norm()


@pytest.mark.parametrize("batch", [None, 2])
def test_neumann_batched_alpha_per_system(batch):
    A = spd(30, 10.0, 13, batch=batch)
    shape = (batch, 30) if batch else (30,)
    b = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(14))
    exact = torch.linalg.solve(A, b)
    parts = list(torch.split(b, (10, 20), dim=-1))
    bd = 1 if batch else 0
    alpha = safe_neumann_alpha(matvec_of(A), parts, 50, bd, torch.Generator().manual_seed(0))
    x = torch.cat(neumann_series(matvec_of(A), parts, 400, alpha, bd), -1)
    assert float((x - exact).norm() / exact.norm()) < 1e-6


def test_cg_stops_an_indefinite_system_and_leaves_positive_definite_ones_exact():
    """A non-positive-definite system (iMAML with λ too small) is frozen at the first direction
    of negative curvature and reported, instead of blowing up; the other tasks are unaffected."""
    good = spd(30, 5.0, 4)
    bad = torch.diag(torch.cat([torch.full((29,), 1.0), torch.tensor([-2.0])])).double()
    A = torch.stack([good, bad])
    b = torch.ones(2, 30, dtype=torch.float64)
    b[1, :29] = 0.0  # b lies on the negative eigenvector: the first step already sees pᵀAp < 0
    x, info = conjugate_gradient(matvec_of(A), list(torch.split(b, (10, 20), dim=-1)), iters=60,
                                 batch_dims=1)
    x = torch.cat(x, -1)
    assert info.negative_curvature == 1
    assert torch.isfinite(x).all() and float(x[1].abs().max()) == 0.0
    assert torch.allclose(x[0], torch.linalg.solve(good, b[0]), atol=1e-8)
    # With a fallback scale the stuck system answers fallback·b; the good one is unchanged.
    y, _ = conjugate_gradient(matvec_of(A), list(torch.split(b, (10, 20), dim=-1)), iters=60,
                              batch_dims=1, fallback_scale=0.5)
    y = torch.cat(y, -1)
    assert torch.equal(y[1], 0.5 * b[1]) and torch.equal(y[0], x[0])


def _neumann_solver(alpha, power_iters=50):
    from hypergradient import NeumannSeries
    from problems.options import ImplicitOptions
    return NeumannSeries(ImplicitOptions(lam=1.0, solver="neumann", iters=60, neumann_alpha=alpha,
                                         power_iters=power_iters))


@pytest.mark.parametrize("alpha, warns", [(2.5 / 10.0, True), (1.5 / 10.0, False), (0.0, False)])
def test_neumann_solver_reports_a_series_that_grew(alpha, warns):
    """A fixed step past 2/λ_max makes the series blow up on that task only: the solver says
    so, naming the fix; a convergent step (fixed or from power iteration) says nothing."""
    A = torch.stack([spd(30, 10.0, 11), spd(30, 2.0, 15)])   # λ_max 10 and 2
    b = torch.randn(2, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    solver = _neumann_solver(alpha)
    x = torch.cat(solver.solve(matvec_of(A), list(torch.split(b, (10, 20), dim=-1))), -1)
    if warns:
        assert solver.warning.startswith("iMAML: the Neumann series grew instead of converging on "
                                         "1 of 2 tasks")
        assert "neumann_alpha=0.25" in solver.warning
    else:
        assert solver.warning is None
        exact = torch.linalg.solve(A, b)
        assert float((x - exact).norm() / exact.norm()) < 1e-3
