#!/usr/bin/env python
"""Meta-train and test a bilevel meta-learner on Betty.

    python run.py --problem imaml --dataset mini5shot
    python run.py --problem maml --dataset sinusoid --iterations 200 --set inner.lr=0.01
    python run.py --resume runs/maml-sinusoid-s0                # continue a stopped run
    python run.py evaluate --checkpoint runs/maml-omniglot5w1s-s0/best.pt
    python run.py compare --dataset sinusoid                    # unrolled vs implicit

This file only parses arguments, builds objects from the config and calls the engine; every
error a user can cause ends in one line naming the fix and a non-zero exit.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see DESIGN.md

import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=".*Gym has been unmaintained.*")

from configs import ConfigError, available_datasets, available_problems, load_config  # noqa: E402
from envs import DataError, make_env  # noqa: E402
from engines import CheckpointError, MetaEngine, TrainingDiverged, load_checkpoint  # noqa: E402
from engines.evaluation import divergence_hint, evaluate  # noqa: E402
from optimizers import OptimizerSpecError  # noqa: E402
from problems.factory import ProblemConfigError  # noqa: E402

USER_ERRORS = (ConfigError, DataError, OptimizerSpecError, ProblemConfigError, TrainingDiverged,
               CheckpointError)


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Meta-train, then test on the standard protocol.")
    p.add_argument("--problem", help=f"one of: {', '.join(available_problems())} (default maml)")
    p.add_argument("--dataset", help=f"one of: {', '.join(available_datasets())} (default omniglot5w1s)")
    p.add_argument("--config", help="a YAML file of config keys, applied after the presets")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR/last.pt")
    p.add_argument("--train-dataset", help="meta-train on this dataset's train split (e.g. glyphs)")
    p.add_argument("--inner-optimizer", help="a registered name or package.module:ClassName")
    p.add_argument("--data-root", help="data folder (else $METALEARN_DATA_ROOT, else ./data)")
    p.add_argument("--seed", type=int)
    p.add_argument("--iterations", type=int, help="meta-iterations")
    p.add_argument("--out", help="run folder (default runs/<problem>-<dataset>-s<seed>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set inner.lr=0.1 (repeatable)")
    p.add_argument("--verbose", action="store_true", help="show Betty's own log lines")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py evaluate", description="Re-test a trained model.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", help="test on another preset (same input shape and ways)")
    p.add_argument("--data-root")
    p.add_argument("--episodes", type=int)
    p.add_argument("--steps", type=int)
    return p


def flag_values(args) -> dict:
    values = {"seed": args.seed, "iterations": args.iterations, "data_root": args.data_root,
              "out": args.out, "data.train_name": args.train_dataset,
              "inner.optimizer": args.inner_optimizer}
    return {k: v for k, v in values.items() if v is not None}


def run_dir(cfg: dict) -> Path:
    return Path(cfg["out"] or f"runs/{cfg['problem']}-{cfg['dataset']}-s{cfg['seed']}")


def resume_state(args):
    """The checkpoint to continue from, refusing one from another problem or dataset."""
    state = load_checkpoint(Path(args.resume) / "last.pt")
    for flag in ("problem", "dataset"):
        given = getattr(args, flag)
        if given is not None and given != state[flag]:
            raise CheckpointError(
                f"{args.resume} holds a {state['problem']} run on {state['dataset']}, not {flag} "
                f"{given}; resume without --{flag}, or start a new run with another --out")
    return state


def train(argv) -> int:
    args = train_parser().parse_args(argv)
    state = resume_state(args) if args.resume else None
    if state is not None:
        saved = state["config"]
        values = {"out": args.resume, "iterations": args.iterations or saved["iterations"]}
        cfg = {**saved, **{k: v for k, v in values.items()}}
        print(f"resuming {args.resume} at iteration {state['iteration']}", flush=True)
    else:
        cfg = load_config(args.problem or "maml", args.dataset or "omniglot5w1s", args.set,
                          flag_values(args), args.config)
    env = make_env(cfg["data"], cfg["data_root"], cfg["seed"])
    out = run_dir(cfg)
    engine = MetaEngine(cfg, env, out_dir=out, verbose=args.verbose, resume=state)
    if not engine.is_rank_zero():  # under torchrun, other ranks only train their share
        engine.run()
        return 0
    print(f"{cfg['problem']} on {cfg['dataset']}: {cfg['iterations']} iterations, "
          f"meta-batch {cfg['data']['meta_batch']}, {cfg['inner']['steps']} inner steps "
          f"(test: {cfg['eval']['episodes']} episodes x {cfg['eval']['steps']} steps), "
          f"device {engine.device}, run folder {out}", flush=True)
    summary = engine.run()
    print_summary(cfg, summary, engine.train_seconds, out)
    return 0


def print_summary(cfg, summary, train_seconds, out) -> None:
    metric = "accuracy" if summary.metric == "accuracy" else "MSE"
    rows = [("problem", cfg["problem"]), ("dataset", cfg["dataset"]),
            ("iterations", str(cfg["iterations"])), ("train time", f"{train_seconds:.1f} s"),
            (f"test {metric}", f"{summary} (95% CI, {summary.episodes} episodes, "
                               f"{summary.steps} steps)"),
            ("results", str(out / "results.json"))]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    warn_if_diverged(summary, cfg)


def warn_if_diverged(summary, cfg) -> None:
    hint = divergence_hint(summary, cfg["inner"]["lr"])
    if hint:
        print(f"warning: {hint}", file=sys.stderr)


def evaluate_checkpoint(argv) -> int:
    args = evaluate_parser().parse_args(argv)
    path = Path(args.checkpoint)
    state = load_checkpoint(path)
    saved = state["config"]
    overrides = {"data_root": args.data_root} if args.data_root else {}
    if args.episodes:
        overrides["eval.episodes"] = args.episodes
    if args.steps:
        overrides["eval.steps"] = args.steps
    cfg = load_config(saved["problem"], args.dataset or saved["dataset"], values=overrides)
    for section in ("model", "inner", "outer"):
        cfg[section] = saved[section]
    cfg["seed"] = saved["seed"]
    env = make_env(cfg["data"], cfg["data_root"], cfg["seed"])
    engine = MetaEngine({**cfg, "iterations": 0}, env, progress=False)
    try:
        engine.outer.module.load_state_dict(state["model"])
    except RuntimeError:
        raise CheckpointError(
            f"{path} was trained on {saved['dataset']} and does not fit {cfg['dataset']} (input "
            f"shape {env.input_shape}, {env.output_dim} outputs); evaluate on a dataset with the "
            "same image size and ways") from None
    summary = evaluate(engine.inner, env, "test", cfg["eval"]["episodes"], cfg["eval"]["steps"],
                       cfg["data"]["meta_batch"])
    print(f"{saved['problem']} on {cfg['dataset']} (checkpoint iteration {state['iteration']}): "
          f"test {summary.metric} {summary} (95% CI, {summary.episodes} episodes, "
          f"{summary.steps} steps)")
    warn_if_diverged(summary, cfg)
    return 0


def compare(argv) -> int:
    from engines import compare as comparison
    return comparison.main(argv)


COMMANDS = {"evaluate": evaluate_checkpoint, "train": train, "compare": compare}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    try:
        return COMMANDS[command](argv)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; checkpoints written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
