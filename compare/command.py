"""`run.py compare`: unrolled against implicit hypergradients, side by side.

    run.py compare [--dataset sinusoid] [--checkpoint best.pt] [--problems maml,fomaml,imaml]
    run.py compare --train --problems maml,imaml --iterations 200 [--seconds 60]

The first form scores each method's meta-gradient against the converged implicit
hypergradient (compare.gradients); the second trains the problems under one budget and seed
and compares their curves (compare.training).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from betty.logging.logger_base import get_logger

from configs.cli import Parser, at_least, positive_seconds, tolerance
from compare.methods import add_sweep_flags, default_problems, parse_ints, parse_problems
from engines.run_folder import FolderLock, RunFolderError


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="run.py compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", help="a preset in configs/datasets/ (default sinusoid, or the "
                                     "checkpoint's dataset)")
    p.add_argument("--data-root")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="θ's initialisation and the tasks")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key for every method (repeatable)")
    p.add_argument("--out", help="output folder (default runs/compare-<dataset>-s<seed>)")
    p.add_argument("--problems", type=parse_problems,
                   help="comma-separated problem configs "
                        f"(default {','.join(default_problems())})")
    p.add_argument("--checkpoint", help="take θ from this checkpoint instead of a fresh init")
    p.add_argument("--iteration", type=at_least(0), default=None,
                   help="meta-iterations done, for schedules such as MAML++'s (default: the "
                        "checkpoint's iteration, else 0)")
    p.add_argument("--tasks", type=at_least(1), default=4,
                   help="tasks in the fixed meta-batch")
    p.add_argument("--split", default="train", choices=("train", "validation", "test"))
    p.add_argument("--inner-steps", type=parse_ints, default=[1, 5, 10, 20])
    add_sweep_flags(p)  # --cg-iters, --neumann-terms: one per solver of hypergradient.SOLVERS
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the compared methods (the reference is always float64)")
    p.add_argument("--repeats", type=at_least(1), default=3,
                   help="timed calls per method (median)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory-profiled call")
    p.add_argument("--ref-steps", type=at_least(1), default=2000,
                   help="reference: cap on inner steps")
    p.add_argument("--ref-tol", type=tolerance, default=1e-8,
                   help="reference: inner gradient tolerance")
    p.add_argument("--ref-cg-iters", type=at_least(1), default=1000,
                   help="reference: CG iterations cap")
    p.add_argument("--ref-newton-tol", type=tolerance, default=1e-10,
                   help="reference: Newton steps until every task's inner gradient norm is "
                        "below this")
    p.add_argument("--dense-max", type=at_least(0), default=3000,
                   help="reference: dense Hessian solve up to this many parameters (0: CG always)")
    p.add_argument("--train", action="store_true", help="train the problems and compare curves")
    p.add_argument("--iterations", type=at_least(1), default=200,
                   help="--train: meta-iterations each")
    p.add_argument("--seconds", type=positive_seconds,
                   help="--train: also stop each run after this long")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier comparison in --out (compare.json, compare.png; with "
                        "--train, the runs in its problem folders)")
    p.add_argument("--verbose", action="store_true", help="show Betty's log lines")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    get_logger().setLevel(logging.INFO if args.verbose else logging.WARNING)
    problems = args.problems or default_problems()
    dataset = args.dataset or "sinusoid"
    if args.out is not None and not args.out.strip():
        raise RunFolderError("--out is empty; pass a folder path, or leave --out out for the "
                             "default")
    out = Path(args.out or f"runs/compare-{'train-' if args.train else ''}{dataset}-s{args.seed}")
    lock = FolderLock(out).acquire("comparison")  # one writer per output folder
    try:
        return run_comparison(args, argv, problems, out)
    finally:
        lock.release()


def run_comparison(args, argv, problems: list[str], out: Path) -> int:
    if args.train:
        from compare.training import compare_training
        return compare_training(args, problems, out)
    earlier = [name for name in ("compare.json", "compare.png") if (out / name).exists()]
    if earlier and not args.overwrite:
        raise RunFolderError(f"{out} already holds a comparison ({', '.join(earlier)}); pass "
                             "another --out, or --overwrite to replace it")
    from compare.gradients import compare_gradients
    from compare.report import gradient_table, plot_gradients, write_json
    from measures.machine import hardware
    result = {**compare_gradients(args, problems), "hardware": hardware(),
              "command": "run.py compare " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(gradient_table(result))
    write_json(result, out / "compare.json")
    plot_gradients(result, out / "compare.png")
    print(f"\nwrote {out / 'compare.json'} and {out / 'compare.png'}")
    return 0
