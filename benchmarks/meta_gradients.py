"""The float64 meta-gradient of every problem preset (and of the fast paths: task threads, vmap,
checkpointed steps, a one-task user optimizer) on one fixed meta-batch, saved to a file, or
compared against a file another checkout saved: a restructuring must leave every number as
it was.

    PYTHONPATH=. .venv/bin/python benchmarks/meta_gradients.py --out before.pt
    PYTHONPATH=. .venv/bin/python benchmarks/meta_gradients.py --against before.pt
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: name -> (problem, settings); iMAML at λ=30, where I + H/λ is positive definite here.
CASES = {
    "maml": ("maml", {}),
    "fomaml": ("fomaml", {}),
    "imaml": ("imaml", {"lam": 30.0, "iters": 10}),
    "imaml-neumann": ("imaml-neumann", {"lam": 30.0, "iters": 10}),
    "metasgd": ("metasgd", {}),
    "anil": ("anil", {}),
    "mamlpp": ("mamlpp", {"inner.mamlpp.first_order_iters": 0}),
    "reptile": ("reptile", {}),
    "maml-threads": ("maml", {"inner.task_threads": 2}),
    "imaml-threads": ("imaml", {"lam": 30.0, "iters": 10, "inner.task_threads": 2}),
    "maml-vmap": ("maml", {"inner.vectorize": "always"}),
    "maml-checkpointed": ("maml", {"inner.checkpoint_steps": True}),
    "momentum-one-task": ("maml", {"inner.optimizer": "examples.momentum_sgd:MomentumSGD"}),
}
BASE = {"model.hidden": 8, "inner.lr": 0.1, "inner.steps": 3, "inner.task_threads": 1,
        "data.meta_batch": 3}


def implicit_keys(sets: dict) -> dict:
    """λ and the solver's iterations under this checkout's key names (inner.implicit.* now,
    flat inner.* before the section existed)."""
    from configs.loader import read_yaml, HERE
    nested = "implicit" in read_yaml(HERE / "defaults.yaml")["inner"]
    out = {}
    for key, value in sets.items():
        if key == "lam":
            out["inner.implicit.lam" if nested else "inner.lam"] = value
        elif key == "iters":
            out["inner.implicit.iters" if nested else "inner.solver_iters"] = value
        else:
            out[key] = value
    return out


def meta_gradients() -> dict[str, list[torch.Tensor]]:
    from envs import Episode
    from problems.meta_gradient import compute_meta_gradient
    from problems.options import load_options
    from problems.system import TaskShape, build_system
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(0)
    tasks, ways = 3, 5
    episode = Episode(torch.rand(tasks, ways, 1, 28, 28, generator=g),
                      torch.arange(ways).repeat(tasks, 1),
                      torch.rand(tasks, 2 * ways, 1, 28, 28, generator=g),
                      torch.arange(ways).repeat(tasks, 2))
    shape = TaskShape((1, 28, 28), "classification", ways)
    out = {}
    for name, (problem, sets) in CASES.items():
        values = {**BASE, **implicit_keys(sets)}
        options = load_options(problem, "omniglot5w1s", [f"{k}={v}" for k, v in values.items()])
        system = build_system(options, shape, seed=0)
        out[name] = compute_meta_gradient(system.outer, system.inner, episode)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="save the meta-gradients here")
    parser.add_argument("--against", type=Path, help="compare with meta-gradients saved here")
    args = parser.parse_args()
    grads = meta_gradients()
    if args.out:
        torch.save(grads, args.out)
    if args.against:
        saved = torch.load(args.against, weights_only=True)
        from measures.errors import rel_err
        rows = {name: rel_err(grads[name], saved[name]) for name in CASES if name in saved}
        print(json.dumps({"benchmark": "meta_gradients", "dtype": "float64",
                          "relative_error_against": str(args.against),
                          "max": max(rows.values()), "per_case": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
