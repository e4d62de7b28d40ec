"""`run.py compare`: every method's meta-gradient at one θ on one meta-batch, scored against
the converged implicit hypergradient (compare.reference), timed and memory-profiled
(compare.measure). Returns the plain dict that compare.report writes and draws."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from configs import parse_override
from compare.measure import DTYPES, build_at, cast_episode, default_dtype, measure
from measures.memory import MEMORY_METHODS
from compare.methods import Method, expand, solver_sweeps
from compare.reference import (ReferenceSettings, implicit_reference, independent_maml_gradient,
                               own_target)
from measures.errors import cosine, rel_err
from problems.options import RunOptions, load_options, saved_options
from engines.checkpoint import CheckpointError, load_checkpoint
from envs import make_env
from problems.factory import ProblemConfigError
from problems.system import TaskShape


@dataclass
class Setup:
    """Everything every method shares: configs, θ, the meta-batch and where θ came from."""
    configs: dict       # problem -> its RunOptions
    theta: dict         # backbone state_dict
    shape: TaskShape
    episode: object
    source: str
    iteration: int = 0  # meta-iterations done (a checkpoint's): what training's schedules read
    # the checkpoint's inner-optimizer meta-parameters (e.g. Meta-SGD's step sizes) and the
    # optimizer they belong to: methods with that optimizer start from them, as training would
    optimizer_state: dict | None = None
    optimizer_name: str | None = None


#: compare's activation unless the user sets one (or a checkpoint fixes the model): with ReLU the
#: proximal minimiser can sit on a kink, where the implicit gradient is undefined.
SMOOTH = "softplus"


def load_configs(problems, dataset, sets, values, saved_model=None) -> dict:
    configs = {}
    for problem in problems:
        cfg = load_options(problem, dataset, sets, values)
        if saved_model is not None:  # a checkpoint fixes the architecture
            cfg = cfg.replace(model=saved_model)
        configs[problem] = cfg
    return configs


def checkpoint_theta(path: str):
    """(backbone state_dict, inner-optimizer state_dict, saved options, iteration) from a run's
    checkpoint: everything the outer level learned, not only θ."""
    state = load_checkpoint(path)

    def part(prefix):
        return {k[len(prefix):]: v for k, v in state["model"].items() if k.startswith(prefix)}
    return (part("backbone."), part("inner_optimizer."), saved_options(state["config"]),
            state["iteration"])


def prepare(args, problems: list[str]) -> Setup:
    values = {"seed": args.seed}
    if args.data_root:
        values["data_root"] = args.data_root
    theta, saved, source = None, None, f"fresh initialisation from seed {args.seed}"
    optimizer_state, iteration = None, 0
    if args.checkpoint:
        theta, optimizer_state, saved, iteration = checkpoint_theta(args.checkpoint)
        source = (f"checkpoint {args.checkpoint} ({saved.problem} on {saved.dataset}, "
                  f"iteration {iteration})")
    if args.iteration is not None:
        iteration = args.iteration
    dataset = args.dataset or (saved.dataset if saved else "sinusoid")
    names = list(dict.fromkeys([*problems, "imaml"]))  # imaml's config defines the reference λ
    sets = list(args.set)
    if saved is None and not any(parse_override(s)[0] == "model.activation" for s in sets):
        sets.append(f"model.activation={SMOOTH}")  # an exact reference needs a smooth objective
    configs = load_configs(names, dataset, sets, values, saved and saved.model)
    first = configs[names[0]]
    env = make_env(first.data, first.data_root, args.seed)
    shape = TaskShape.of(env)
    if theta is None:
        _, inner = build_at(first, None, shape)
        theta = {k: v.detach().cpu().clone() for k, v in inner.backbone.state_dict().items()}
    episode = env.episodes(args.split, 0, args.tasks)
    if args.checkpoint:
        check_fits(first, theta, shape, episode, args.checkpoint, saved)
    return Setup(configs, theta, shape, episode, source, iteration, optimizer_state or None,
                 saved.inner.optimizer if saved else None)


def misfit(cfg: RunOptions, theta: dict, shape: TaskShape, episode) -> str:
    """'' when the backbone `cfg` builds for `shape` takes θ's tensors and the episode's inputs,
    else why not: the checkpoint's architecture, this dataset's input shape and outputs."""
    try:
        _, inner = build_at(cfg, None, shape)
    except ProblemConfigError:  # a ValueError too, but a config mistake, not a misfit
        raise
    except ValueError as err:  # e.g. a CNN backbone asked for a non-image dataset
        return str(err).split(";")[0]
    wanted = {k: tuple(v.shape) for k, v in inner.backbone.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in theta.items()}
    for name in sorted(wanted.keys() | given.keys()):
        if wanted.get(name) != given.get(name):
            return (f"its {name} is {list(given[name]) if name in given else 'missing'}, this "
                    f"dataset needs {list(wanted[name]) if name in wanted else 'none'}")
    backbone = inner.backbone
    backbone.load_state_dict(theta)
    x = episode.support_x[0].to(next(backbone.parameters()).device)
    try:
        with torch.no_grad():
            backbone(x)
    except RuntimeError as err:  # same tensor shapes, yet the inputs do not go through
        return str(err).splitlines()[0]
    return ""


def check_fits(cfg: RunOptions, theta: dict, shape: TaskShape, episode, path: str,
               saved: RunOptions) -> None:
    """Refuse, in one line naming the fix, a checkpoint whose model does not fit the dataset."""
    reason = misfit(cfg, theta, shape, episode)
    if reason:
        raise CheckpointError(
            f"{path} was trained on {saved.dataset} ({saved.model.backbone} backbone) and "
            f"does not fit {cfg.dataset} (input shape {tuple(shape.input_shape)}, "
            f"{shape.output_dim} output{'s' * (shape.output_dim != 1)}: {reason}); pass a "
            f"--dataset with the same input shape and outputs as {saved.dataset}, or omit "
            f"--dataset to use {saved.dataset}")


def method_config(cfg: RunOptions, method: Method) -> RunOptions:
    return cfg.replace(**method.values())


def score(gradient: torch.Tensor, reference) -> dict:
    """Cosine and relative error against the reference, only when it is exact (else None: an
    answer that did not converge is no yardstick)."""
    if not reference.exact:
        return {"cosine": None, "rel_err": None, "norm": float(gradient.norm())}
    return {"cosine": cosine(gradient, reference.gradient),
            "rel_err": rel_err(gradient, reference.gradient), "norm": float(gradient.norm())}


def run_method(setup: Setup, method: Method, dtype, repeats: int, memory: bool):
    cfg = method_config(setup.configs[method.problem], method)
    with default_dtype(dtype):
        outer, inner = build_at(cfg, setup.theta, setup.shape)
        if setup.optimizer_state and cfg.inner.optimizer == setup.optimizer_name:
            inner.inner_optimizer.load_state_dict(setup.optimizer_state)
        device = next(inner.backbone.parameters()).device
        episode = cast_episode(setup.episode, dtype, device)
        return measure(outer, inner, episode, repeats, memory, setup.iteration), cfg, str(device)


def row(method: Method, cfg: RunOptions, result, reference) -> dict:
    out = {"label": method.label, "problem": method.problem, "kind": method.kind,
           "inner_steps": method.steps, "solver": method.solver,
           "solver_iters": method.solver_iters,
           "lam": cfg.inner.implicit.lam if method.kind == "implicit" else None,
           **score(result.gradient, reference),
           "seconds": result.median_seconds, "seconds_all": result.seconds,
           "peak_bytes": result.peak_bytes}
    if method.kind == "implicit" and out["lam"] != reference.info["lam"]:
        out["note"] = (f"λ={out['lam']} differs from the reference's λ={reference.info['lam']}: "
                       "its exact target is another fixed point")
    return out


class OwnTargets:
    """Each method's own exact answer at its K, so solver error and inner-loop error can be
    told apart: implicit → the same K with an exact solve (cached per λ, lr, K); FOMAML → MAML
    at the same K; MAML → a second implementation of its K-step answer (independent_maml_
    gradient, float64); others (Meta-SGD, ANIL, MAML++, Reptile) have none here."""

    def __init__(self, setup: Setup, settings: ReferenceSettings):
        self.setup, self.settings, self.cache = setup, settings, {}

    def __call__(self, method: Method, cfg: RunOptions, gradients: dict):
        if method.kind == "implicit":
            key = (cfg.inner.implicit.lam, cfg.inner.lr, method.steps)
            if key not in self.cache:
                self.cache[key] = own_target(cfg, self.setup.theta, self.setup.shape,
                                             self.setup.episode, self.settings, method.steps)
            return self.cache[key]
        if method.kind == "unrolled" and cfg.inner.first_order:
            return gradients.get(("maml", method.steps))
        plain_sgd = (cfg.inner.optimizer == "sgd" and not cfg.inner.grad_clip
                     and not cfg.inner.grad_tol)
        if method.kind == "unrolled" and plain_sgd:
            return independent_maml_gradient(cfg, self.setup.theta, self.setup.shape,
                                             self.setup.episode, method.steps)
        return None


def compare_gradients(args, problems: list[str],
                      log=lambda s: print(s, file=sys.stderr)) -> dict:
    setup = prepare(args, problems)
    settings = ReferenceSettings(args.ref_steps, args.ref_tol, args.ref_cg_iters,
                                 dense_max=args.dense_max, newton_tol=args.ref_newton_tol)
    log(f"reference: the implicit hypergradient (up to {settings.inner_steps} descent and "
        f"{settings.newton_steps} Newton steps to ‖∇F‖ <= {settings.newton_tol:.0e}, "
        f"linear solve to {settings.cg_tol:.0e}, float64) on {args.tasks} {args.split} tasks")
    reference = implicit_reference(setup.configs["imaml"], setup.theta, setup.shape,
                                   setup.episode, settings)
    if reference.exact:
        log(f"reference exact: inner gradient norm {reference.info['inner_grad_norm']:.1e}, "
            f"resolution {reference.info['resolution']:.1e}")
    else:
        log(f"no exact reference: {reference.info['why']}; rel err and cosine are not computed")
    dtype = DTYPES[args.dtype]
    rows, gradients, device, own = [], {}, "cpu", OwnTargets(setup, settings)
    largest = {}  # each problem's meta-gradient at the largest budget of its sweep
    for problem in problems:
        for method in expand(problem, setup.configs[problem], args.inner_steps,
                             solver_sweeps(args)):
            result, cfg, device = run_method(setup, method, dtype, args.repeats,
                                             not args.no_memory)
            gradients[(method.problem, method.steps)] = result.gradient
            largest[method.problem] = (method.label, result.gradient)
            rows.append(row(method, cfg, result, reference))
            target = own(method, cfg, gradients)
            rows[-1]["own_err"] = None if target is None else rel_err(result.gradient, target)
            shown = "-" if rows[-1]["rel_err"] is None else f"{rows[-1]['rel_err']:.3e}"
            log(f"  {method.label:<28} rel err {shown}  {1e3 * rows[-1]['seconds']:.2f} ms")
    first = setup.configs[problems[0]]
    return {
        "dataset": first.dataset, "seed": args.seed, "tasks": args.tasks, "split": args.split,
        "dtype": args.dtype, "device": device, "problems": problems,
        "theta": {"source": setup.source, "parameters": reference.info["parameters"],
                  "iteration": setup.iteration,
                  "inner_optimizer_state_from_checkpoint":
                      setup.optimizer_name if setup.optimizer_state else None},
        "model": first.model.to_dict(),
        "inner_lr": {p: c.inner.lr for p, c in setup.configs.items()},
        "reference": reference.info,
        # without an exact reference there is no ground truth: the methods against each other
        "agreement": None if reference.exact else {
            label: {other: cosine(g, h) for other, h in largest.values()}
            for label, g in largest.values()},
        "metrics": {
            "cosine": "cosine similarity with the reference (1 = same direction)",
            "rel_err": "‖g − g_ref‖ / ‖g_ref‖",
            "norm": "‖g‖ (the reference's norm is reference.norm)",
            "seconds": f"median over {args.repeats} calls of one meta-gradient (inner adaptation "
                       "of every task + outer backward, the Betty path training uses), after a "
                       "warm-up call",
            "peak_bytes": MEMORY_METHODS["cuda" if device.startswith("cuda") else "cpu"]
                          if not args.no_memory else "not measured (--no-memory)",
            "own_err": "‖g − g_own‖/‖g_own‖ against the method's own exact answer at its K: "
                       "implicit rows, the same K inner steps with CG solved to cg_tol in float64 "
                       "(solver error alone); FOMAML, MAML at the same K (first-order error); "
                       "MAML, a second implementation of the K-step unroll (plain functional_call, "
                       "float64), so it is the MAML row's own numerical error; null where no "
                       "independent answer is computed (Meta-SGD, ANIL, MAML++, Reptile)",
        },
        "methods": rows,
    }
