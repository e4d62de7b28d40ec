"""How close each linear solver's answer is to A⁻¹v on iMAML's real per-task systems: the systems
training solves (A = H + λI at the inner loop's endpoint φ, v the outer loss's gradient), at a
fresh θ or a run's checkpoint, on meta-batches of the train split. Each candidate is scored per
task against 200 CG iterations of the same system by cosine and relative error; λ_max(A) is
read by 60 power iterations. What chose the iMAML-Neumann preset's fixed step (configs/datasets/
omniglot5w1s.yaml): a step that only shrinks the answer by a common factor keeps its direction,
which is all Adam's outer step uses.

    METALEARN_DATA_ROOT=../shared/datasets PYTHONPATH=. .venv/bin/python \\
        benchmarks/solve_fidelity.py [--checkpoint runs/X/best.pt] [--batches 2]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


#: candidate -> (solver, settings); "neumann" with neumann_alpha 0 takes 1/λ_max from power_iters.
CANDIDATES = {
    "cg-5": ("cg", {"iters": 5}),
    "neumann-10-alpha-0.1": ("neumann", {"iters": 10, "neumann_alpha": 0.1}),
    "neumann-10-alpha-0.05": ("neumann", {"iters": 10, "neumann_alpha": 0.05}),
    "neumann-10-power-20": ("neumann", {"iters": 10, "power_iters": 20}),
    "neumann-10-power-5": ("neumann", {"iters": 10, "power_iters": 5}),
}
REFERENCE_CG_ITERS = 200
POWER_ITERS = 60


def score(x, ref) -> dict:
    """Per-task cosine and relative error of x against ref ([T, ...] vectors)."""
    from hypergradient.utils import dot
    ref_norm = dot(ref, ref, 1).sqrt()
    diff = [a - b for a, b in zip(x, ref)]
    cosine = dot(x, ref, 1) / (dot(x, x, 1).sqrt() * ref_norm).clamp_min(1e-30)
    rel = dot(diff, diff, 1).sqrt() / ref_norm.clamp_min(1e-30)
    return {"cosine": [round(float(c), 4) for c in cosine],
            "relative_error": [round(float(r), 4) for r in rel]}


class Probe:
    """Stands in for the run's solver: scores every candidate on the system it is handed, then
    answers with the run's own solver, so the meta-batch runs as training runs it."""

    def __init__(self, own, records: list):
        self.own, self.records, self.warning = own, records, None

    def solve(self, hvp, vector):
        from hypergradient import SOLVERS, conjugate_gradient, power_iteration
        ref, info = conjugate_gradient(hvp, vector, REFERENCE_CG_ITERS, batch_dims=1)
        record = {"lambda_max": [round(float(v), 3)
                                 for v in power_iteration(hvp, vector, POWER_ITERS, 1)],
                  "reference_negative_curvature": info.negative_curvature}
        for name, (solver, sets) in CANDIDATES.items():
            candidate = SOLVERS[solver](self.own.settings.replace(solver=solver, **sets))
            record[name] = {**score(candidate.solve(hvp, vector), ref),
                            "warning": candidate.warning}
        self.records.append(record)
        return self.own.solve(hvp, vector)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="omniglot5w1s")
    parser.add_argument("--checkpoint", help="θ from this run checkpoint (default: fresh, seed 0)")
    parser.add_argument("--batches", type=int, default=2, help="meta-batches of the train split")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the imaml preset (e.g. inner.implicit.lam=2)")
    parser.add_argument("--json", type=Path, help="also write the record here")
    args = parser.parse_args(argv)

    import os
    from benchmarks.harness import configure
    from envs.registry import make_env
    from problems.meta_gradient import compute_meta_gradient
    from problems.options import load_options
    from problems.system import TaskShape, build_system
    machine = configure(1)
    options = load_options("imaml", args.dataset, ["inner.task_threads=1", *args.set])
    theta, source = None, "fresh initialisation, seed 0"
    if args.checkpoint:
        from compare.gradients import checkpoint_theta
        theta, _, saved, iteration = checkpoint_theta(args.checkpoint)
        options = options.replace(model=saved.model)
        source = f"{args.checkpoint} ({saved.problem}, iteration {iteration})"
    env = make_env(options.data, os.environ.get("METALEARN_DATA_ROOT"), 0)
    shape = TaskShape(env.input_shape, env.task_kind, env.output_dim)
    system = build_system(options, shape, theta=theta, seed=0)
    records: list = []
    system.inner.solver = Probe(system.inner.solver, records)
    for _ in range(args.batches):
        compute_meta_gradient(system.outer, system.inner, env.step())
    text = json.dumps({"benchmark": "solve_fidelity", "dataset": args.dataset, "theta": source,
                       "lam": options.inner.implicit.lam, "damping": options.inner.implicit.damping,
                       "reference": f"{REFERENCE_CG_ITERS} CG iterations of the same system",
                       "meta_batches": records, **machine}, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
