"""The reference every method is scored against: the implicit (fixed-point) hypergradient
   (1/T) Σ_t (I + H_t/λ)⁻¹ ∇φ L_query,t  at the converged proximal minimiser φ_t*,
computed in float64 with the inner problem run to a gradient tolerance and CG run to a tight
residual, and, for small models, also by a dense solve built from the explicit Hessian (an
independent check that does not use the project's solvers)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from compare.measure import backbone_gradient, build_at, cast_episode, default_dtype
from measures.errors import rel_err
from optimizers import Learner
from problems.system import TaskShape


@dataclass
class ReferenceSettings:
    inner_steps: int = 2000     # cap on proximal gradient-descent steps (training path's loop)
    grad_tol: float = 1e-8      # stop each task's gradient descent below this gradient norm
    cg_iters: int = 1000
    cg_tol: float = 1e-12       # linear solves (CG) to this relative residual
    dense_max: int = 3000       # dense Hessians (Newton steps, the solve) up to this many params
    newton_steps: int = 50      # cap on Newton steps after gradient descent
    newton_tol: float = 1e-10   # the minimiser counts as exact when every task's ‖∇F‖ is below


@dataclass
class Reference:
    gradient: torch.Tensor
    info: dict = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return bool(self.info.get("exact"))


def unflatten(vector: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, tensor in like.items():
        out[name] = vector[start:start + tensor.numel()].reshape(tensor.shape)
        start += tensor.numel()
    return out


class TaskObjective:
    """Task t's support and query losses and its proximal inner objective F(φ) = L_support(φ) +
    λ/2‖φ−θ‖², as functions of one flat φ vector (what Newton steps and dense solves need)."""

    def __init__(self, inner, episode, t: int, lam: float):
        self.inner, self.episode, self.t, self.lam = inner, episode, t, lam
        self.like = {k: v.detach() for k, v in inner.module.task(t).items()}
        self.theta = torch.cat([p.detach().reshape(-1) for p in inner.backbone.parameters()])

    def start(self) -> torch.Tensor:
        return torch.cat([v.reshape(-1) for v in self.like.values()])

    def _loss(self, vector, x, y):
        return Learner(self.inner.backbone, unflatten(vector, self.like),
                       self.inner.task_kind).loss(x, y)

    def support(self, vector):
        return self._loss(vector, self.episode.support_x[self.t], self.episode.support_y[self.t])

    def query(self, vector):
        return self._loss(vector, self.episode.query_x[self.t], self.episode.query_y[self.t])

    def inner_objective(self, vector):
        return self.support(vector) + 0.5 * self.lam * ((vector - self.theta) ** 2).sum()

    def gradient(self, vector):
        v = vector.detach().requires_grad_()
        return torch.autograd.grad(self.inner_objective(v), v)[0]

    def hessian_vector(self, vector, direction):
        """(∇²F) d by double backward (no dense Hessian)."""
        v = vector.detach().requires_grad_()
        g = torch.autograd.grad(self.inner_objective(v), v, create_graph=True)[0]
        return torch.autograd.grad(g, v, grad_outputs=direction)[0]

    def support_hessian(self, vector):
        return torch.autograd.functional.hessian(self.support, vector.detach(), vectorize=True)


def solve_spd(objective: TaskObjective, vector, rhs, matrix, settings: ReferenceSettings,
              shift: float):
    """x with (H + shift·I) x = rhs at `vector` (H: the support loss's Hessian), dense when
    `matrix` (H) is given, else by CG on Hessian-vector products; and the relative residual
    ‖(H + shift·I) x − rhs‖/‖rhs‖, computed afresh."""
    from hypergradient import conjugate_gradient
    eye = shift
    if matrix is not None:
        A = matrix + eye * torch.eye(len(rhs), dtype=rhs.dtype, device=rhs.device)
        x = torch.linalg.solve(A, rhs)
        residual = A @ x - rhs
    else:
        lam = objective.lam

        def apply(v):  # H_support v + shift v, from (∇²F) v = H v + λ v
            return [objective.hessian_vector(vector, v[0]) - lam * v[0] + eye * v[0]]
        x = conjugate_gradient(apply, [rhs], settings.cg_iters, settings.cg_tol)[0][0]
        residual = apply([x])[0] - rhs
    return x, float(residual.norm() / rhs.norm().clamp_min(1e-300))


def refine_minimiser(inner, episode, lam: float, settings: ReferenceSettings,
                     steps: int) -> list[dict]:
    """Newton steps φ ← φ − (H + λI)⁻¹∇F on every task's proximal objective, from where gradient
    descent stopped, until ‖∇F‖ ≤ newton_tol (or `steps`); a step that does not lower F is
    halved. The module's φ is replaced by the result. Per task: steps taken and final ‖∇F‖."""
    records, refined = [], []
    dense = sum(p.numel() for p in inner.backbone.parameters()) <= settings.dense_max
    for t in range(len(episode)):
        objective = TaskObjective(inner, episode, t, lam)
        v, taken = objective.start(), 0
        g = objective.gradient(v)
        stalled = ""
        for _ in range(steps):
            if g.norm() <= settings.newton_tol:
                break
            H = objective.support_hessian(v) if dense else None
            if H is not None and int(torch.linalg.cholesky_ex(
                    0.5 * (H + H.T) + lam * torch.eye(len(v), dtype=v.dtype)).info):  # not PD
                stalled = "not a minimum here: H + λI is indefinite (raise inner.implicit.lam)"
                break
            direction = solve_spd(objective, v, g, H, settings, lam)[0]
            value, alpha = float(objective.inner_objective(v)), 1.0
            while (alpha > 1e-6 and float(objective.inner_objective(v - alpha * direction))
                   > value + 1e-14 * abs(value)):
                alpha /= 2
            if alpha <= 1e-6:  # no step lowers F: Newton cannot make progress from here
                stalled = "no Newton step lowers the inner objective"
                break
            v = v - alpha * direction
            g, taken = objective.gradient(v), taken + 1
        records.append({"newton_steps": taken, "grad_norm": float(g.norm()), "stalled": stalled})
        refined.append(unflatten(v.detach(), objective.like))
    inner.module.load_stacked({k: torch.stack([phi[k] for phi in refined])
                               for k in inner.module.names})
    return records


def implicit_gradient_at(inner, episode, lam: float, settings: ReferenceSettings, dense: bool):
    """(1/T) Σ_t (I + H_t/λ)⁻¹ ∇L_query,t at the module's φ_t, by dense solves from explicit
    Hessians or by CG; with the largest relative residual and (dense) the smallest eigenvalue of
    I + H/λ over tasks (the system is only well posed when it is positive)."""
    total, residual, min_eig = 0.0, 0.0, None
    for t in range(len(episode)):
        objective = TaskObjective(inner, episode, t, lam)
        v = objective.start()
        q = v.detach().requires_grad_()
        query = torch.autograd.grad(objective.query(q), q)[0]
        H = objective.support_hessian(v) if dense else None
        if dense:
            eigenvalue = smallest_eigenvalue(torch.eye(len(v), dtype=v.dtype) + H / lam)
            if eigenvalue is not None:
                min_eig = eigenvalue if min_eig is None else min(min_eig, eigenvalue)
        # (I + H/λ)⁻¹ q = λ (H + λI)⁻¹ q
        x, r = solve_spd(objective, v, query, H, settings, lam)
        total, residual = total + lam * x, max(residual, r)
    return (total / len(episode)).to("cpu", torch.float64), {"relative_residual": residual,
                                                            "min_eigenvalue": min_eig}


def smallest_eigenvalue(matrix: torch.Tensor) -> float | None:
    """The smallest eigenvalue of a symmetric matrix (symmetrised first), or None where LAPACK's
    solver does not converge (it can fail on the ill-conditioned Hessians of a CNN)."""
    try:
        return float(torch.linalg.eigvalsh(0.5 * (matrix + matrix.T)).min())
    except torch.linalg.LinAlgError:
        return None


def dense_implicit_gradient(inner, episode, lam: float) -> tuple[torch.Tensor, float]:
    """(1/T) Σ_t (I + H_t/λ)⁻¹ ∇L_query,t from explicit Hessians of the support loss at the
    inner problem's current φ_t; also the smallest eigenvalue of I + H/λ over tasks."""
    gradient, info = implicit_gradient_at(inner, episode, lam, ReferenceSettings(), dense=True)
    return gradient, info["min_eigenvalue"]


def inner_gradient_norm(inner, episode) -> float:
    """Largest norm over tasks of ∇φ[L_support + λ/2‖φ−θ‖²] at the adapted φ: how far the
    inner problem is from its fixed point (0 at the exact minimiser)."""
    loss = inner.training_step(episode)
    grads = torch.autograd.grad(loss, list(inner.module.phi))
    per_task = sum(g.reshape(len(episode), -1).pow(2).sum(1) for g in grads)
    return float(per_task.sqrt().max())


def exact_solve_config(cfg, settings: ReferenceSettings, steps: int, grad_tol: float):
    """`cfg`'s implicit problem (its λ and inner lr) with K=`steps` and CG run to `cg_tol`."""
    inner = {"kind": "implicit", "implicit.solver": "cg", "steps": steps, "grad_tol": grad_tol,
             "implicit.iters": settings.cg_iters, "implicit.tol": settings.cg_tol,
             "implicit.damping": 0.0, "grad_clip": 0.0}
    return cfg.replace(**{f"inner.{k}": v for k, v in inner.items()})


def solved_system(cfg: dict, theta: dict, shape: TaskShape, episode, settings: ReferenceSettings,
                  steps: int, grad_tol: float = 0.0):
    """(inner problem, float64 episode, hypergradient by CG to tolerance) after K=`steps`
    proximal inner steps, through the Betty path; call under default_dtype(float64)."""
    outer, inner = build_at(exact_solve_config(cfg, settings, steps, grad_tol), theta, shape)
    ep = cast_episode(episode, torch.float64, next(inner.backbone.parameters()).device)
    return inner, ep, backbone_gradient(outer, inner, ep)


def own_target(cfg: dict, theta: dict, shape: TaskShape, episode, settings: ReferenceSettings,
               steps: int) -> torch.Tensor:
    """What an implicit method with K=`steps` would return with an exact linear solve: it
    separates a method's solver error from its inner-loop (not converged) error."""
    with default_dtype(torch.float64):
        return solved_system(cfg, theta, shape, episode, settings, steps)[2]


def implicit_reference(imaml_cfg, theta: dict, shape: TaskShape, episode,
                       settings: ReferenceSettings) -> Reference:
    """The implicit hypergradient at θ, exact to a stated tolerance: the training path's
    proximal gradient descent, then Newton steps on every task until ‖∇F‖ ≤ newton_tol in
    float64, then (I + H/λ)⁻¹∇L_query by a dense solve (small models, checked against CG) or CG,
    to cg_tol. Its resolution is measured: how much it moves under one more Newton step, and the
    linear solve's residual. Where the minimiser cannot be reached to the tolerance (a ReLU
    network's proximal minimiser on a kink, where no Hessian exists and Newton chatters), it is
    not called a reference (`exact` false, `why` says what failed)."""
    lam = imaml_cfg.inner.implicit.lam
    with default_dtype(torch.float64):
        inner, ep, _ = solved_system(imaml_cfg, theta, shape, episode, settings,
                                     settings.inner_steps, settings.grad_tol)
        descent_norm = inner_gradient_norm(inner, ep)
        newton = refine_minimiser(inner, ep, lam, settings, settings.newton_steps)
        norm = inner_gradient_norm(inner, ep)
        n_params = sum(p.numel() for p in inner.backbone.parameters())
        dense = n_params <= settings.dense_max
        gradient, solve = implicit_gradient_at(inner, ep, lam, settings, dense)
        by_cg = (implicit_gradient_at(inner, ep, lam, settings, dense=False)[0] if dense
                 else gradient)
        refine_minimiser(inner, ep, lam, dataclasses.replace(settings, newton_tol=0.0), 1)
        moved = rel_err(implicit_gradient_at(inner, ep, lam, settings, dense)[0], gradient)
    exact = norm <= settings.newton_tol and solve["relative_residual"] <= 10 * settings.cg_tol
    activation = imaml_cfg.model.activation
    stalled = next((r["stalled"] for r in newton if r["stalled"]), "")
    why = "" if exact else (
        f"the proximal minimiser was not reached: inner gradient norm {norm:.1e} after "
        f"{settings.inner_steps} descent and up to {settings.newton_steps} Newton steps "
        f"(tolerance {settings.newton_tol:.0e}{'; ' + stalled if stalled else ''})" + (
            f"; with model.activation={activation} it can sit on a kink, where no Hessian exists "
            "and the implicit gradient is undefined: use --set model.activation=softplus "
            "(or gelu, tanh)" if activation == "relu"
            else "; raise inner.implicit.lam or --ref-steps")
        if norm > settings.newton_tol else
        f"the linear solve stopped at relative residual {solve['relative_residual']:.1e}; raise "
        "--ref-cg-iters")
    info = {
        "description": (
            "Implicit (fixed-point) hypergradient (1/T)·Σ_t (I + H_t/λ)⁻¹ ∇φ L_query,t at the "
            "proximal minimiser φ_t* of L_support + λ/2‖φ−θ‖², in float64, with φ_t* refined by "
            "Newton steps to the stated gradient norm. Every method is scored against it "
            "(rel_err, cosine). For iMAML rows it is their exact target in the limit of many "
            "inner steps; for MAML, FOMAML (and Reptile) it is a different quantity, so their "
            "error says how far each is from the implicit gradient, not how well it computes "
            "its own; own_err measures that."),
        "exact": exact, "why": why,
        "lam": lam, "inner_lr": imaml_cfg.inner.lr, "activation": activation,
        "inner_steps_cap": settings.inner_steps, "inner_grad_tol": settings.grad_tol,
        "grad_norm_after_descent": descent_norm,
        "newton_steps": [r["newton_steps"] for r in newton],
        "newton_tol": settings.newton_tol, "inner_grad_norm": norm,
        "solver": "dense" if dense else "cg", "cg_iters_cap": settings.cg_iters,
        "cg_tol": settings.cg_tol,
        "linear_solve_relative_residual": solve["relative_residual"],
        "min_eigenvalue_of_I_plus_H_over_lam": solve["min_eigenvalue"],
        "dense_vs_cg_rel_err": rel_err(by_cg, gradient) if dense else None,
        "parameters": n_params, "dtype": "float64",
        "resolution": max(moved, solve["relative_residual"]),
        "resolution_description": (
            "the larger of ‖g_ref after one more Newton step − g_ref‖/‖g_ref‖ "
            "and the linear solve's relative residual: errors at or below it "
            "are below what the reference can tell apart"),
        "norm": float(gradient.norm()),
    }
    return Reference(gradient, info)


def independent_maml_gradient(cfg, theta: dict, shape: TaskShape, episode,
                              steps: int) -> torch.Tensor:
    """MAML's exact K-step meta-gradient by a second implementation that shares nothing with the
    training path but the backbone class: plain SGD unrolled with torch.func.functional_call and
    create_graph, the query loss written out (cross-entropy or MSE), one task after another, in
    float64. Scores the MAML rows' own error (plain SGD inner optimizer only)."""
    import torch.nn.functional as F
    from torch.func import functional_call

    from models import build_backbone
    with default_dtype(torch.float64):
        backbone = build_backbone(cfg.model.backbone, tuple(shape.input_shape), shape.output_dim,
                                  cfg.model.hidden, activation=cfg.model.activation)
        backbone.load_state_dict(theta)
        ep = cast_episode(episode, torch.float64, "cpu")
        params = {k: v.detach().requires_grad_() for k, v in backbone.named_parameters()}

        def loss(phi, x, y):
            out = functional_call(backbone, phi, (x,))
            return (F.cross_entropy(out, y) if shape.task_kind == "classification"
                    else F.mse_loss(out, y))

        total = 0.0
        for t in range(len(ep)):
            phi = dict(params)
            for _ in range(steps):
                grads = torch.autograd.grad(loss(phi, ep.support_x[t], ep.support_y[t]),
                                            list(phi.values()), create_graph=True)
                phi = {k: v - cfg.inner.lr * g for (k, v), g in zip(phi.items(), grads)}
            total = total + loss(phi, ep.query_x[t], ep.query_y[t]) / len(ep)
        grads = torch.autograd.grad(total, list(params.values()))
    return torch.cat([g.reshape(-1) for g in grads]).detach()
