"""The standard test (N test episodes x K adaptation steps, 600 x 10 in the protocol) of one
Omniglot model, several ways in one run:

* `default`: this project as `run.py evaluate` runs it (task threads on, `inner.task_threads: 0`);
* `stack-loop`: all tasks of a chunk on one thread, tasks looped inside each layer call;
* `stack-vmap`: the same through one vmapped call;
* `task-by-task`: a one-task `adapt` (how evaluation ran before the inner loop was written once);
* `l2l`: learn2learn's MAML as its documentation adapts one episode at a time (`clone()`, then
  `adapt()` K times on the support loss, first order), the anchor.

Every way must give the same per-episode accuracies (checked, max difference printed); each is
timed in its own fresh process, interleaved in rounds with the order rotated, and the ratios are
taken within this run. `--threads` lists the intra-op thread settings to time each way at
(default: 1 and every core); a way's speed is its fastest setting.

    PYTHONPATH=. .venv/bin/python benchmarks/evaluation.py --checkpoint runs/<run>/best.pt \\
        [--episodes 600] [--steps 10] [--ways default,l2l]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.harness import JsonLines, configure, parse_or_work, run_worker  # noqa: E402

WAYS = ("default", "stack-loop", "stack-vmap", "task-by-task", "l2l")


def build(spec: dict, device: str):
    """The checkpoint's model and test episodes, with the inner loop run the way `spec` says."""
    from engines.checkpoint import load_checkpoint
    from envs import make_env
    from problems.system import TaskShape, build_system
    state = load_checkpoint(spec["checkpoint"]) if spec["checkpoint"] else None
    from problems.options import load_options, saved_options
    cfg = saved_options(state["config"]) if state else load_options("maml", "omniglot5w1s")
    if spec.get("data_root"):
        cfg = cfg.replace(data_root=spec["data_root"])
    env = make_env(cfg.data, cfg.data_root, cfg.seed)
    way = spec["way"]
    if way != "default":  # every other way runs the tasks on one thread
        vectorize = "always" if way == "stack-vmap" else "never"
        cfg = cfg.replace(**{"inner.vectorize": vectorize, "inner.task_threads": 1})
    system = build_system(cfg, TaskShape.of(env))
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


def l2l_scores(inner, env, cfg, spec, device) -> list[float]:
    """learn2learn's MAML adapting each test episode on its own, first order, from the same θ."""
    import learn2learn as l2l
    import torch
    import torch.nn.functional as F
    maml = l2l.algorithms.MAML(inner.backbone, lr=cfg.inner.lr, first_order=True)
    scores = []
    for index in range(spec["episodes"]):
        episode = env.episodes("test", index, 1).to(device)
        learner = maml.clone()
        for _ in range(spec["steps"]):
            learner.adapt(F.cross_entropy(learner(episode.support_x[0]), episode.support_y[0]))
        with torch.no_grad():
            scores.append(float((learner(episode.query_x[0]).argmax(-1) == episode.query_y[0])
                                .float().mean()))
    return scores


def worker(spec: dict) -> dict:
    info = configure(spec["threads"])
    inner, env, cfg = build(spec, info["device"])
    inner.backbone.eval()
    chunk = cfg.data.meta_batch
    scores, start = [], time.perf_counter()
    if spec["way"] == "l2l":
        scores = l2l_scores(inner, env, cfg, spec, info["device"])
    else:
        for first in range(0, spec["episodes"], chunk):
            episode = env.episodes("test", first,
                                   min(chunk, spec["episodes"] - first)).to(info["device"])
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
    # `default` runs as `run.py evaluate` does (torch's own thread count); the rest at each setting
    runs = [(way, t) for way in ways for t in ([None] if way == "default" else args.threads)]
    seconds, scores, used = {run: [] for run in runs}, {}, {}
    for r in range(args.rounds):
        for way, threads in runs[r % len(runs):] + runs[:r % len(runs)]:
            result = run_worker(__file__, {"way": way, "checkpoint": args.checkpoint,
                                           "data_root": args.data_root, "episodes": args.episodes,
                                           "steps": args.steps, "threads": threads})
            seconds[way, threads].append(result["seconds"])
            used[way, threads] = result["threads"]
            scores[way] = result["scores"]
            info = {k: result[k] for k in ("device", "device_name", "torch", "cpus", "python")}
    reference = scores[ways[0]]
    best = {}
    for (way, threads), times in seconds.items():
        median = statistics.median(times)
        best[way] = min(best.get(way, median), median)
        emit({"benchmark": "evaluation", "way": way, "threads": used[way, threads],
              "thread_setting": "default" if threads is None else threads,
              "episodes": args.episodes,
              "steps": args.steps, "checkpoint": args.checkpoint or "initialisation (seed 0)",
              "episodes_per_s": round(args.episodes / median, 3), "median_s": round(median, 2),
              "rounds": args.rounds, "mean_accuracy": sum(scores[way]) / len(scores[way]),
              "max_abs_diff_to_" + ways[0]: max(abs(a - b) for a, b in zip(scores[way], reference)),
              **info})
    emit({"benchmark": "evaluation", "summary": True,
          "each_way_at_its_fastest_thread_setting": True,
          "episodes": args.episodes, "steps": args.steps,
          "seconds": {w: round(best[w], 2) for w in ways},
          "speedup_vs_" + ways[-1]: {w: round(best[ways[-1]] / best[w], 3) for w in ways}, **info})

if __name__ == "__main__":
    main()
