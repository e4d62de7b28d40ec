"""The standard test (N test episodes x K adaptation steps, 600 x 10 in the protocol) of one
Omniglot model, three ways in one run: the inner loop on all tasks of a chunk at once with the
tasks looped inside each layer call (`stack-loop`, what `vectorize: auto` runs for CNN4 on
CPU), the same through one vmapped call (`stack-vmap`), and task by task through a one-task
`adapt` (`task-by-task`, how evaluation ran before the inner loop was written once).

Every way must give the same per-episode accuracies (checked, max difference printed); each is
timed in its own fresh process, interleaved in rounds with the order rotated, and the ratios are
taken within this run.

    PYTHONPATH=. .venv/bin/python benchmarks/evaluation.py --checkpoint runs/<run>/best.pt \\
        [--episodes 600] [--steps 10] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.harness import JsonLines, configure, parse_or_work, run_worker  # noqa: E402

WAYS = ("task-by-task", "stack-loop", "stack-vmap")


def build(spec: dict, device: str):
    """The checkpoint's model and test episodes, with the inner loop run the way `spec` says."""
    from engines.checkpoint import load_checkpoint
    from envs import make_env
    from problems.system import TaskShape, build_system
    state = load_checkpoint(spec["checkpoint"]) if spec["checkpoint"] else None
    from problems.options import RunOptions, load_options
    cfg = RunOptions.parse(state["config"]) if state else load_options("maml", "omniglot5w1s")
    if spec.get("data_root"):
        cfg = cfg.replace(data_root=spec["data_root"])
    env = make_env(cfg.data, cfg.data_root, cfg.seed)
    vectorize = "always" if spec["way"] == "stack-vmap" else "never"
    system = build_system(cfg.replace(**{"inner.vectorize": vectorize}), TaskShape.of(env))
    if state:
        system.outer.module.load_state_dict(state["model"])
    inner = system.inner
    if spec["way"] == "task-by-task":
        one_task_optimizer(inner)
    return inner, env, cfg


def one_task_optimizer(inner) -> None:
    """The same optimizer with an `adapt` written for one task, so tasks go one at a time."""
    base = type(inner.inner_optimizer)

    class OneTask(base):
        def adapt(self, model, support_x, support_y, n_steps):
            return base.adapt(self, model, support_x, support_y, n_steps)

    inner.inner_optimizer.__class__ = OneTask


def worker(spec: dict) -> dict:
    info = configure(spec["threads"])
    inner, env, cfg = build(spec, info["device"])
    inner.backbone.eval()
    chunk = cfg.data.meta_batch
    scores, start = [], time.perf_counter()
    for first in range(0, spec["episodes"], chunk):
        episode = env.episodes("test", first, min(chunk, spec["episodes"] - first)).to(info["device"])
        scores += [acc for _, acc in inner.evaluate(episode, spec["steps"])]
    return {"seconds": time.perf_counter() - start, "scores": scores, **info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a trained Omniglot run's best.pt (default: θ at "
                                             "initialisation, seed 0)")
    parser.add_argument("--data-root", help="where the run's data lies now (default: the run's)")
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--ways", default=",".join(WAYS))
    args = parse_or_work(parser, worker)
    if args is None:
        return
    emit = JsonLines(args.out)
    ways = args.ways.split(",")
    seconds, scores = {w: [] for w in ways}, {}
    for r in range(args.rounds):
        for way in ways[r % len(ways):] + ways[:r % len(ways)]:
            result = run_worker(__file__, {"way": way, "checkpoint": args.checkpoint,
                                           "data_root": args.data_root, "episodes": args.episodes,
                                           "steps": args.steps, "threads": args.threads})
            seconds[way].append(result["seconds"])
            scores[way] = result["scores"]
            info = {k: result[k] for k in ("device", "device_name", "torch", "threads", "cpus", "python")}
    reference = scores[ways[0]]
    for way in ways:
        median = statistics.median(seconds[way])
        emit({"benchmark": "evaluation", "way": way, "episodes": args.episodes, "steps": args.steps,
              "checkpoint": args.checkpoint or "initialisation (seed 0)",
              "episodes_per_s": round(args.episodes / median, 3), "median_s": round(median, 2),
              "rounds": args.rounds, "mean_accuracy": sum(scores[way]) / len(scores[way]),
              "max_abs_diff_to_" + ways[0]: max(abs(a - b) for a, b in zip(scores[way], reference)),
              **info})
    base = statistics.median(seconds[ways[0]])
    emit({"benchmark": "evaluation", "summary": True,
          "speedup_vs_" + ways[0]: {w: round(base / statistics.median(seconds[w]), 3) for w in ways},
          **info})


if __name__ == "__main__":
    main()
