#!/usr/bin/env python
"""Meta-train and test a bilevel meta-learner on Betty.

    python run.py --problem maml --dataset sinusoid --iterations 200 --set inner.lr=0.01
    python run.py --resume runs/maml-sinusoid-s0                # continue a stopped run
    python run.py evaluate --checkpoint runs/maml-omniglot5w1s-s0/best.pt
    python run.py compare --dataset sinusoid                    # unrolled vs implicit

Only parses arguments, builds objects from the config and calls the engine; every error a user
can cause ends in one line naming the fix and a non-zero exit.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see docs/DESIGN.md

import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=".*Gym has been unmaintained.*")

from configs import (ConfigError, available_datasets, available_problems,  # noqa: E402
                     parse_override)
from configs.cli import Parser, at_least, positive_minutes  # noqa: E402
from envs import DataError, make_env  # noqa: E402
from envs.paths import resolve_data_root  # noqa: E402
from engines import CheckpointError, MetaEngine, TrainingDiverged, load_checkpoint  # noqa: E402
from engines.records import json_text  # noqa: E402
from engines.evaluation import (describe_protocol, divergence_hint, evaluate,  # noqa: E402
                                protocol_config)
from engines.resume import resume_folder, resumed_config  # noqa: E402
from engines.checkpoint import require_resumable  # noqa: E402
from engines.run_folder import (FolderLock, RunFolderError, check_one_run, claim,  # noqa: E402
                                commit_replacement, default_run_dir, remove_orphans,
                                restore_replaced)
from measures.machine import cpu_model  # noqa: E402
from models.factory import BackboneError  # noqa: E402
from optimizers import OptimizerSpecError  # noqa: E402
from problems.factory import ProblemConfigError  # noqa: E402
from problems.options import RunOptions, load_options  # noqa: E402

USER_ERRORS = (ConfigError, DataError, OptimizerSpecError, ProblemConfigError, TrainingDiverged,
               CheckpointError, RunFolderError, BackboneError)

COMMANDS_HELP = (
    "other commands:\n"
    "  run.py evaluate --checkpoint RUN/best.pt   re-test a trained model "
    "(run.py evaluate --help)\n"
    "  run.py compare [--train]                   unrolled vs implicit hypergradients "
    "(run.py compare --help)")

#: Config keys set by their own flags (for messages that name what the user typed).
FLAGS = {"seed": "--seed", "iterations": "--iterations", "minutes": "--minutes",
         "data_root": "--data-root", "out": "--out",
         "data.train_name": "--train-dataset", "inner.optimizer": "--inner-optimizer",
         "problem": "--problem", "dataset": "--dataset"}


def train_parser() -> argparse.ArgumentParser:
    p = Parser(prog="run.py", description="Meta-train, then test on the standard protocol.",
               epilog=COMMANDS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", help=f"one of: {', '.join(available_problems())} (default maml)")
    p.add_argument("--dataset",
                   help=f"one of: {', '.join(available_datasets())} (default omniglot5w1s)")
    p.add_argument("--config", help="a YAML file of config keys, applied after the presets")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run saved in RUN_DIR (its last.pt)")
    p.add_argument("--train-dataset", help="meta-train on this dataset's train split (e.g. glyphs)")
    p.add_argument("--inner-optimizer", help="a registered name or package.module:ClassName")
    p.add_argument("--data-root", help="data folder (else $METALEARN_DATA_ROOT, else ./data)")
    p.add_argument("--seed", type=at_least(0))
    p.add_argument("--iterations", type=at_least(1),
                   help="meta-iterations (default: the dataset preset's)")
    p.add_argument("--minutes", type=positive_minutes,
                   help="wall-clock training budget: stop at the first iteration past it, "
                        "then test")
    p.add_argument("--out", help="run folder (default runs/<problem>-<dataset>-s<seed>"
                                 "[-<hash of the settings that differ from the presets>])")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in the run folder before starting")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set inner.lr=0.1 (repeatable)")
    p.add_argument("--verbose", action="store_true", help="show Betty's own log lines")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="run.py evaluate",
        description="Re-test a trained model on the test protocol of its own run (the same data, "
                    "split, episodes and steps), unless flags say otherwise.")
    p.add_argument("--checkpoint", required=True, help="a run's best.pt or last.pt")
    p.add_argument("--dataset", help="test on another preset (same input shape and ways)")
    p.add_argument("--data-root", help="where the data lies now (default: the run's)")
    p.add_argument("--episodes", type=at_least(1),
                   help="test episodes (default: the run's eval.episodes)")
    p.add_argument("--steps", type=at_least(0),
                   help="adaptation steps; 0 tests θ itself (default: the run's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data.*, eval.* or device key (repeatable)")
    p.add_argument("--json", metavar="PATH",
                   help="also write the result as JSON to PATH (a new file: never overwritten)")
    return p


def flag_values(args) -> dict:
    values = {"seed": args.seed, "iterations": args.iterations, "minutes": args.minutes,
              "data_root": args.data_root,
              "out": args.out, "data.train_name": args.train_dataset,
              "inner.optimizer": args.inner_optimizer}
    return {k: v for k, v in values.items() if v is not None}


def source_of(key: str, args) -> str:
    """How the user asked for `key` (for messages)."""
    if key in FLAGS and getattr(args, FLAGS[key][2:].replace("-", "_"), None) is not None:
        return FLAGS[key]
    if any(parse_override(text)[0] == key for text in args.set):
        return f"--set {key}"
    return f"--config {args.config}"


def train(argv) -> int:
    args = train_parser().parse_args(argv)
    if args.out is not None and not args.out.strip():
        raise RunFolderError("--out is empty; pass a folder path, or leave --out out for the "
                             "default runs/<problem>-<dataset>-s<seed>")
    if args.resume:
        out = resume_folder(args.resume, args.out, args.overwrite)
        state = load_checkpoint(out / "last.pt")
        require_resumable(out / "last.pt", state)
        check_one_run(out, state)
        values = {k: v for k, v in flag_values(args).items() if k != "out"}
        values.update({k: getattr(args, k) for k in ("problem", "dataset") if getattr(args, k)})
        cfg, changed = resumed_config(out, state, values, args.set, args.config,
                                      lambda key: source_of(key, args))
    else:
        state, changed = None, {}
        cfg = load_options(args.problem, args.dataset, args.set, flag_values(args), args.config)
        out = (Path(cfg.out) if cfg.out
               else default_run_dir(cfg, load_options(cfg.problem, cfg.dataset)))
        cfg = cfg.replace(out=str(out))
    if cfg.data.name != "sinusoid":  # record where the data is, for evaluate and resume
        cfg = cfg.replace(data_root=str(resolve_data_root(cfg.data_root)))
    env = make_env(cfg.data, cfg.data_root, cfg.seed)
    engine = MetaEngine(cfg, env, out_dir=out, verbose=args.verbose, resume=state)
    if not engine.is_rank_zero():  # under torchrun, other ranks only train their share
        engine.run()
        return 0
    # Nothing is written before this point: a mistake above loses no earlier run. From here the
    # folder is this process's alone until it exits.
    lock = FolderLock(out).acquire("training run")
    replaced = None
    if state is None:
        replaced = claim(out, args.overwrite)
        if replaced is not None:  # the old run goes only once the new one has trained a step
            engine.on_first_step = lambda: commit_replacement(out)
    else:
        remove_orphans(out)
        engine.resumes.append({"iteration": state["iteration"], "cpu": cpu_model(),
                               "changed": {k: list(v) for k, v in changed.items()}})
        shown = "".join(f", {k} {old} -> {new}" for k, (old, new) in changed.items())
        print(f"resuming {out} at iteration {state['iteration']}{shown}", flush=True)
    print(f"{cfg.problem} on {cfg.dataset}: {cfg.iterations} iterations, "
          f"meta-batch {cfg.data.meta_batch}, {cfg.inner.steps} inner steps "
          f"(test: {cfg.eval.episodes} episodes x {cfg.eval.steps} steps), "
          f"device {engine.device}, run folder {out}", flush=True)
    try:
        summary = engine.run()
    except BaseException as stop:
        restored = replaced is not None and restore_replaced(out)  # failed before its first step
        if restored:
            print(f"note: the new run stopped before its first step; the run that was in {out} "
                  "is back", file=sys.stderr)
        if not isinstance(stop, KeyboardInterrupt):
            raise
        if not restored:
            print(f"interrupted at iteration {engine.global_step}; {resume_hint(out, cfg)}",
                  file=sys.stderr)
        return 130
    finally:
        lock.release()
    print_summary(cfg, summary, engine.train_seconds, out, engine.stopped, engine.global_step)
    return 0


def resume_hint(out: Path, cfg: RunOptions) -> str:
    """Where a stopped run can be continued from, as a command."""
    try:
        done = load_checkpoint(out / "last.pt")["iteration"]
    except CheckpointError:
        return (f"no checkpoint was written yet (every checkpoint_every={cfg.checkpoint_every} "
                f"iterations); start again with --overwrite --out {out}")
    return f"{out / 'last.pt'} holds iteration {done}; continue with: python run.py --resume {out}"


def print_summary(cfg, summary, train_seconds, out, stopped: str, iteration: int) -> None:
    metric = "accuracy" if summary.metric == "accuracy" else "MSE"
    tested = "the best θ was tested" if cfg.eval.val_every else "the final θ was tested"
    done = str(iteration) + ("" if stopped == "iterations" else
                             f" of {cfg.iterations} (stopped: {stopped}; {tested})")
    rows = [("problem", cfg.problem), ("dataset", cfg.dataset),
            ("iterations", done), ("train time", f"{train_seconds:.1f} s"),
            (f"test {metric}", f"{summary} (95% CI, {summary.episodes} episodes, "
                               f"{summary.steps} steps)"),
            ("results", str(out / "results.json"))]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    warn_if_diverged(summary, cfg)


def warn_if_diverged(summary, cfg) -> None:
    hint = divergence_hint(summary, cfg.inner.lr)
    if hint:
        print(f"warning: {hint}", file=sys.stderr)


def evaluate_checkpoint(argv) -> int:
    args = evaluate_parser().parse_args(argv)
    path = Path(args.checkpoint)
    if args.json and Path(args.json).exists():
        raise RunFolderError(f"{args.json} already exists; pass another --json path (results are "
                             "never overwritten)")
    state = load_checkpoint(path)
    saved = state["config"]
    cfg = protocol_config(saved, dataset=args.dataset, data_root=args.data_root,
                          episodes=args.episodes, steps=args.steps, overrides=args.set)
    env = make_env(cfg.data, cfg.data_root, cfg.seed)
    engine = MetaEngine(cfg, env, progress=False)  # only its problems are used: no training
    try:
        engine.outer.module.load_state_dict(state["model"])
    except RuntimeError:
        raise CheckpointError(
            f"{path} was trained on {saved['dataset']} and does not fit {cfg.dataset} (input "
            f"shape {env.input_shape}, {env.output_dim} outputs); evaluate on a dataset with the "
            "same image size and ways") from None
    print(f"test protocol: {describe_protocol(cfg)}", flush=True)
    summary = evaluate(engine.inner, env, "test", cfg.eval.episodes, cfg.eval.steps,
                       cfg.data.meta_batch)
    print(f"{saved['problem']} on {cfg.dataset} (checkpoint iteration {state['iteration']}): "
          f"test {summary.metric} {summary} (95% CI, {summary.episodes} episodes, "
          f"{summary.steps} steps)")
    warn_if_diverged(summary, cfg)
    if args.json:
        record = {"problem": saved["problem"], "dataset": cfg.dataset, "checkpoint": str(path),
                  "iteration": state["iteration"], "protocol": describe_protocol(cfg),
                  "test": summary.as_dict()}
        Path(args.json).write_text(json_text(record))
    return 0


def compare(argv) -> int:
    from compare import command as comparison
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
    except OSError as err:  # a file the program had to read or write; nothing written is lost
        where = err.filename or "a file"
        print(f"error: cannot use {where} ({err.strerror or err}); check that the path exists, is "
              "writable and has free space (checkpoints already written are kept)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; checkpoints written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
