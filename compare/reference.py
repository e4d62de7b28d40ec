"""The reference every method is scored against: the implicit (fixed-point) hypergradient
   (1/T) Σ_t (I + H_t/λ)⁻¹ ∇φ L_query,t  at the converged proximal minimiser φ_t*,
computed in float64 with the inner problem run to a gradient tolerance and CG run to a tight
residual, and, for small models, also by a dense solve built from the explicit Hessian (an
independent check that does not use the project's solvers)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from compare.measure import backbone_gradient, build_at, cast_episode, default_dtype
from optimizers import Learner
from problems.system import TaskShape


@dataclass
class ReferenceSettings:
    inner_steps: int = 2000     # cap on proximal inner steps
    grad_tol: float = 1e-8      # stop each task's inner loop below this gradient norm
    cg_iters: int = 1000
    cg_tol: float = 1e-12
    dense_max: int = 3000       # dense solve only up to this many parameters


@dataclass
class Reference:
    gradient: torch.Tensor
    info: dict = field(default_factory=dict)


def unflatten(vector: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, tensor in like.items():
        out[name] = vector[start:start + tensor.numel()].reshape(tensor.shape)
        start += tensor.numel()
    return out


def dense_implicit_gradient(inner, episode, lam: float) -> tuple[torch.Tensor, float]:
    """(1/T) Σ_t (I + H_t/λ)⁻¹ ∇L_query,t from explicit Hessians of the support loss at the
    inner problem's current φ_t; also the smallest eigenvalue of I + H/λ over tasks (the
    system is only well posed, and CG only valid, when it is positive)."""
    total, min_eig, tasks = 0.0, float("inf"), len(episode)
    for t in range(tasks):
        phi = {k: v.detach() for k, v in inner.module.task(t).items()}
        flat = torch.cat([v.reshape(-1) for v in phi.values()])

        def loss(vector, x, y):
            return Learner(inner.backbone, unflatten(vector, phi), inner.task_kind).loss(x, y)

        H = torch.autograd.functional.hessian(
            lambda v: loss(v, episode.support_x[t], episode.support_y[t]), flat, vectorize=True)
        A = torch.eye(len(flat), dtype=flat.dtype, device=flat.device) + H / lam
        min_eig = min(min_eig, float(torch.linalg.eigvalsh(A).min()))
        query = torch.autograd.functional.jacobian(
            lambda v: loss(v, episode.query_x[t], episode.query_y[t]), flat)
        total = total + torch.linalg.solve(A, query)
    return (total / tasks).to("cpu", torch.float64), min_eig


def inner_gradient_norm(inner, episode) -> float:
    """Largest norm over tasks of ∇φ[L_support + λ/2‖φ−θ‖²] at the adapted φ: how far the
    inner problem is from its fixed point (0 at the exact minimiser)."""
    loss = inner.training_step(episode)
    grads = torch.autograd.grad(loss, list(inner.module.phi))
    per_task = sum(g.reshape(len(episode), -1).pow(2).sum(1) for g in grads)
    return float(per_task.sqrt().max())


def exact_solve_config(cfg, settings: ReferenceSettings, steps: int, grad_tol: float):
    """`cfg`'s implicit problem (its λ and inner lr) with K=`steps` and CG run to `cg_tol`."""
    inner = {"kind": "implicit", "solver": "cg", "steps": steps, "grad_tol": grad_tol,
             "solver_iters": settings.cg_iters, "solver_tol": settings.cg_tol, "damping": 0.0,
             "grad_clip": 0.0}
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


def implicit_reference(imaml_cfg: dict, theta: dict, shape: TaskShape, episode,
                       settings: ReferenceSettings) -> Reference:
    """The converged-iMAML hypergradient at θ (dense solve when the model is small), and how
    much it still moves between half and all of the inner steps (its resolution: ReLU nets can
    have the proximal minimiser on a kink, where gradient descent chatters and never reaches
    the gradient tolerance)."""
    lam = imaml_cfg.inner.lam
    with default_dtype(torch.float64):
        half = solved_system(imaml_cfg, theta, shape, episode, settings,
                             max(settings.inner_steps // 2, 1), settings.grad_tol)[2]
        inner, ep, by_cg = solved_system(imaml_cfg, theta, shape, episode, settings,
                                         settings.inner_steps, settings.grad_tol)
        solve = inner.last_solve
        norm = inner_gradient_norm(inner, ep)
        n_params = sum(p.numel() for p in inner.backbone.parameters())
        info = {
            "description": (
                "Implicit (fixed-point) hypergradient (1/T)·Σ_t (I + H_t/λ)⁻¹ ∇φ L_query,t at the "
                "proximal minimiser φ_t* of L_support + λ/2‖φ−θ‖², in float64. Every method is "
                "scored against it (rel_err, cosine). For iMAML rows it is their exact target in "
                "the limit of many inner steps; for MAML, FOMAML (and Reptile) it is a different "
                "quantity (MAML's exact answer at K steps is itself), so their error says how far "
                "each is from the implicit gradient, not how well it computes its own; own_err "
                "measures that."),
            "lam": lam, "inner_lr": imaml_cfg.inner.lr, "inner_steps_cap": settings.inner_steps,
            "inner_grad_tol": settings.grad_tol, "inner_grad_norm": norm,
            "inner_converged": norm <= 10 * settings.grad_tol,
            "cg_iters_cap": settings.cg_iters, "cg_tol": settings.cg_tol,
            "cg_iterations_run": solve.iterations if solve else None,
            "cg_residual": solve.residual_norms[-1] if solve and solve.residual_norms else None,
            "parameters": n_params, "dtype": "float64",
            "spread": rel_err(half, by_cg),
            "spread_description": "‖g_ref(N/2 inner steps) − g_ref(N)‖/‖g_ref(N)‖ (CG answers): "
                                  "errors near or below it are below the reference's resolution",
        }
        if n_params <= settings.dense_max:
            dense, min_eig = dense_implicit_gradient(inner, ep, lam)
            info.update(solver="dense", dense_vs_cg_rel_err=rel_err(by_cg, dense),
                        min_eigenvalue_of_I_plus_H_over_lam=min_eig)
            gradient = dense
        else:
            info.update(solver="cg", dense_vs_cg_rel_err=None)
            gradient = by_cg
    info["norm"] = float(gradient.norm())
    return Reference(gradient, info)


def independent_maml_gradient(cfg, theta: dict, shape: TaskShape, episode, steps: int) -> torch.Tensor:
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
            return F.cross_entropy(out, y) if shape.task_kind == "classification" else F.mse_loss(out, y)

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


def flat(values) -> torch.Tensor:
    """A tensor, or a list of tensors (one per parameter), as one detached float64 CPU vector."""
    if isinstance(values, torch.Tensor):
        values = [values]
    return torch.cat([v.detach().reshape(-1).to("cpu", torch.float64) for v in values])


def rel_err(a, b) -> float:
    """‖a−b‖/‖b‖ over all parameters together (tensors or lists of tensors). Per tensor it
    would mislead: conv biases feed batch norm, so their true gradient is 0 and only rounding
    is left there."""
    a, b = flat(a), flat(b)
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))
