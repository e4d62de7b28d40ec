"""Each hypergradient against an exact answer or an independent implementation, computed
through the same Betty code path as training (problems.meta_gradient)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from betty.configs import Config
from torch import nn

import hypergradient
from hypergradient import LinearSolver
from measures.errors import rel_err
from envs import Episode
from optimizers import SGD
from problems import ImplicitInner, MetaModel, Outer
from problems.options import ImplicitOptions
from problems.meta_gradient import compute_meta_gradient
from problems.system import StaticEnv
from support import build_system, flat, random_episode, tiny_cfg


def l2l_maml_gradient(backbone, episode, lr, steps, first_order=False):
    import learn2learn as l2l
    model = copy.deepcopy(backbone)
    maml = l2l.algorithms.MAML(model, lr=lr, first_order=first_order)
    learner = maml.clone()
    for _ in range(steps):
        learner.adapt(F.cross_entropy(learner(episode.support_x[0]), episode.support_y[0]))
    F.cross_entropy(learner(episode.query_x[0]), episode.query_y[0]).backward()
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_maml_matches_learn2learn(dtype, tol):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        outer, inner = build_system(tiny_cfg("maml"))
        episode = random_episode(dtype=dtype)
        ours = compute_meta_gradient(outer, inner, episode)
        theirs = l2l_maml_gradient(inner.backbone, episode, lr=0.1, steps=3)
    finally:
        torch.set_default_dtype(previous)
    assert rel_err(ours, theirs) < tol


def test_maml_and_fomaml_differ_measurably(float64):
    episode = random_episode()
    maml = compute_meta_gradient(*build_system(tiny_cfg("maml")), episode)
    fomaml = compute_meta_gradient(*build_system(tiny_cfg("fomaml")), episode)
    assert rel_err(fomaml, maml) > 1e-3


def test_fomaml_is_the_query_gradient_at_the_adapted_point(float64):
    outer, inner = build_system(tiny_cfg("fomaml"))
    episode = random_episode()
    ours = compute_meta_gradient(outer, inner, episode)
    # independent: plain SGD on a deep copy, then the gradient of the query loss at φ
    model = copy.deepcopy(inner.backbone)
    for _ in range(3):
        loss = F.cross_entropy(model(episode.support_x[0]), episode.support_y[0])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= 0.1 * g
    query = F.cross_entropy(model(episode.query_x[0]), episode.query_y[0])
    expected = torch.autograd.grad(query, list(model.parameters()))
    assert rel_err(ours, expected) < 1e-10


def test_maml_meta_gradient_matches_finite_differences(float64):
    outer, inner = build_system(tiny_cfg("maml", **{"inner.steps": 2}))
    episode = random_episode()
    grad = flat(compute_meta_gradient(outer, inner, episode))
    params = list(inner.backbone.parameters())
    direction = [torch.randn_like(p) for p in params]
    norm = flat(direction).norm()
    # unit length: a tiny step crosses no ReLU/max-pool kink
    direction = [d / norm for d in direction]

    def meta_loss():
        inner.one_step_descent(episode)
        return float(inner.meta_objective(episode)["loss"].detach())

    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(params, direction):
            p += eps * d
    plus = meta_loss()
    with torch.no_grad():
        for p, d in zip(params, direction):
            p -= 2 * eps * d
    minus = meta_loss()
    with torch.no_grad():
        for p, d in zip(params, direction):
            p += eps * d
    numeric = (plus - minus) / (2 * eps)
    analytic = float(grad @ flat(direction))
    assert abs(numeric - analytic) <= 1e-6 * max(abs(analytic), 1e-3)


def dense_implicit_gradient(inner, episode, lam):
    """(I + H/λ)⁻¹ ∇φ L_query per task from an explicit Hessian, averaged over tasks."""
    names = inner.module.names
    shapes = [p.shape for p in inner.backbone.parameters()]
    sizes = [s.numel() for s in shapes]
    out = 0
    for t in range(len(episode)):
        phi = flat(inner.module.task(t).values()).detach()

        def unflatten(v):
            return dict(zip(names, (c.reshape(s) for c, s in zip(torch.split(v, sizes), shapes))))

        def support_loss(v):
            logits = torch.func.functional_call(inner.backbone, unflatten(v),
                                                (episode.support_x[t],))
            return F.cross_entropy(logits, episode.support_y[t])

        def query_loss(v):
            logits = torch.func.functional_call(inner.backbone, unflatten(v), (episode.query_x[t],))
            return F.cross_entropy(logits, episode.query_y[t])

        H = torch.autograd.functional.hessian(support_loss, phi)
        A = torch.eye(len(phi)) + H / lam
        assert torch.linalg.eigvalsh(A).min() > 0.05, "test problem must be positive definite"
        v = torch.autograd.functional.jacobian(query_loss, phi) / len(episode)
        out = out + torch.linalg.solve(A, v)
    return out


@pytest.mark.parametrize("solver,iters", [("cg", 200), ("neumann", 400)])
def test_imaml_matches_a_dense_solve(float64, solver, iters):
    lam = 30.0  # large enough that I + H/λ is positive definite on this non-convex net
    cfg = tiny_cfg("imaml", **{"inner.implicit.lam": lam, "inner.steps": 5,
                               "inner.implicit.solver": solver, "inner.implicit.iters": iters,
                               "inner.implicit.tol": 1e-14, "inner.implicit.power_iters": 100})
    outer, inner = build_system(cfg)
    episode = random_episode(tasks=2)
    ours = flat(compute_meta_gradient(outer, inner, episode))
    assert rel_err(ours, dense_implicit_gradient(inner, episode, lam)) < 1e-7


def test_imaml_cg_error_falls_with_iterations(float64):
    lam = 30.0
    episode = random_episode(tasks=2)
    outer, inner = build_system(tiny_cfg("imaml", **{"inner.implicit.lam": lam}))
    inner.one_step_descent(episode)
    exact = dense_implicit_gradient(inner, episode, lam)
    errors = []
    for iters in (1, 3, 10, 100):
        inner.solver.iters = iters
        errors.append(rel_err(flat(compute_meta_gradient(outer, inner, episode)), exact))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-8


class LinearModel(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim) * 0.5)

    def forward(self, x, step=None):
        return x @ self.weight


def test_implicit_hypergradient_equals_ridge_regression_closed_form(float64):
    """Inner: min_w ½‖Xw−y‖²/n + λ/2‖w−θ‖², solved exactly in closed form; outer: query MSE.
    The analytic hypergradient differentiates the closed-form solution."""
    dim, n, m, lam = 6, 10, 12, 0.7
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(n, dim, generator=g), torch.randn(n, generator=g)
    Xq, yq = torch.randn(m, dim, generator=g), torch.randn(m, generator=g)
    torch.manual_seed(1)
    backbone = LinearModel(dim)
    theta = backbone.weight.detach().clone().requires_grad_()
    # MSE inner loss is mean((Xw-y)²) = 2·(½‖Xw−y‖²/n): Hessian 2XᵀX/n
    w_star = torch.linalg.solve(2 * X.T @ X / n + lam * torch.eye(dim),
                                2 * X.T @ y / n + lam * theta)
    analytic = torch.autograd.grad(((Xq @ w_star - yq) ** 2).mean(), theta)[0]

    inner_opt = SGD(backbone, inner_lr=0.2)
    inner_opt.grad_tol = 1e-13
    outer = Outer("outer", Config(retain_graph=True), MetaModel(backbone, inner_opt),
                  torch.optim.SGD(backbone.parameters(), lr=0.1))
    inner = ImplicitInner("inner", Config(type="imaml"), backbone, inner_opt, "regression",
                          steps=5000,
                          implicit=ImplicitOptions(lam=lam, solver="cg", iters=dim, tol=0.0))
    from betty.configs import EngineConfig
    from betty.engine import Engine
    hypergradient.register()  # built without build_problems, which would register it
    Engine(problems=[outer, inner], config=EngineConfig(train_iters=1, strategy="cpu"),
           dependencies={"u2l": {outer: [inner]}, "l2u": {inner: [outer]}}, env=StaticEnv())
    episode = Episode(X[None], y[None], Xq[None], yq[None])
    ours = compute_meta_gradient(outer, inner, episode)[0]
    assert torch.allclose(inner.module.task(0)["weight"], w_star.detach(), atol=1e-10)
    assert rel_err(ours, analytic) < 1e-9


def test_imaml_entry_is_registered_by_build_problems_not_by_imports():
    """Importing the project leaves Betty's jvp_fn_mapping alone; build_problems adds the `imaml`
    entry (idempotently), and Betty's path then goes through it. A fresh interpreter: the other
    tests have registered it already."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = """
import betty.hypergradient as bh
import hypergradient, problems, engines, run
assert "imaml" not in bh.jvp_fn_mapping, "registered as an import side effect"
from support import tiny_cfg
from problems import build_problems
build_problems(tiny_cfg("imaml"), (1, 16, 16), "classification", 3)
assert bh.jvp_fn_mapping["imaml"] is hypergradient.implicit_best_response
before = dict(bh.jvp_fn_mapping)
hypergradient.register()
assert bh.jvp_fn_mapping == before
"""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_betty_routes_the_implicit_hypergradient_through_the_registered_entry(float64, monkeypatch):
    import betty.hypergradient as bh
    outer, inner = build_system(tiny_cfg("imaml"))
    calls = []
    real = bh.jvp_fn_mapping["imaml"]
    monkeypatch.setitem(bh.jvp_fn_mapping, "imaml",
                        lambda *args: calls.append(args[1]) or real(*args))
    compute_meta_gradient(outer, inner, random_episode())
    assert calls and all(curr is inner for curr in calls)


# ---- adding a solver: its module (here, this class) plus one line in hypergradient.SOLVERS -----
class Richardson(LinearSolver):
    """A toy solver: x ← x + (v − A x)/λ from x = 0, which converges where ‖H‖ < λ."""
    sweep_flag, sweep_label = "--richardson-iters", "rich"

    def solve(self, hvp, vector):
        x = [torch.zeros_like(v) for v in vector]
        for _ in range(self.iters):
            x = [xi + (vi - ai) / self.settings.lam for xi, vi, ai in zip(x, vector, hvp(x))]
        return x


def test_a_solver_added_by_one_registration_trains_and_compares(monkeypatch, tmp_path, float64):
    import json
    import run
    monkeypatch.setitem(hypergradient.SOLVERS, "richardson", Richardson)
    # its answer converges to CG's on the Betty path
    episode = random_episode(tasks=2)
    toy, cg = (compute_meta_gradient(*build_system(tiny_cfg("imaml", **{
        "inner.implicit.lam": 30.0, "inner.implicit.solver": solver, "inner.implicit.iters": 60})),
        episode) for solver in ("richardson", "cg"))
    assert rel_err(flat(toy), flat(cg)) < 1e-8
    # it trains by name ...
    out = tmp_path / "train"
    assert run.main(["--problem", "imaml", "--dataset", "sinusoid", "--iterations", "3",
                     "--out", str(out),
                     "--set", "inner.implicit.solver=richardson", "--set", "eval.episodes=4",
                     "--set", "eval.val_episodes=4", "--set", "model.hidden=8"]) == 0
    assert (json.loads((out / "results.json").read_text())["config"]["inner"]["implicit"]["solver"]
            == "richardson")
    # ... and compare sweeps it with its own flag
    out = tmp_path / "compare"
    assert run.main(["compare", "--dataset", "sinusoid", "--set", "model.hidden=8", "--set",
                     "inner.implicit.lam=50", "--set", "inner.implicit.solver=richardson",
                     "--tasks", "2", "--repeats", "1", "--ref-steps", "300", "--problems", "imaml",
                     "--inner-steps", "5",
                     "--richardson-iters", "1,20", "--no-memory", "--out", str(out)]) == 0
    rows = json.loads((out / "compare.json").read_text())["methods"]
    assert ([(r["solver"], r["solver_iters"]) for r in rows]
            == [("richardson", 1), ("richardson", 20)])
    assert rows[1]["own_err"] < rows[0]["own_err"]
