"""MetaEngine: Betty's Engine with the meta-learning protocol around it. Each iteration draws
one meta-batch (env.step), lets Betty run the inner problem and then the outer update; every
`val_every` iterations it validates with `eval.steps` adaptation steps and keeps the best θ;
at the end it tests the best θ on `eval.episodes` test episodes and writes results.json."""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

import torch
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.logging.logger_base import get_logger

from engines.checkpoint import load_checkpoint, save_checkpoint
from engines.evaluation import Summary, evaluate
from problems import NonFiniteLoss, build_problems


class TrainingDiverged(RuntimeError):
    """The meta-loss became NaN/inf; the message says where and what to lower."""


def engine_strategy(device: str) -> str:
    """Betty picks CUDA whenever torch sees one; make the choice explicit."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return "gpu"
    return "cpu"


class MetaEngine(Engine):
    def __init__(self, cfg: dict, env, out_dir: Path | None = None, verbose: bool = False,
                 log=print):
        get_logger().setLevel(logging.INFO if verbose else logging.WARNING)
        torch.manual_seed(cfg["seed"])
        problems, dependencies = build_problems(cfg, env.input_shape, env.task_kind, env.output_dim)
        val_every = cfg["eval"]["val_every"] or cfg["iterations"] + 1
        config = EngineConfig(train_iters=cfg["iterations"], valid_step=val_every,
                              strategy=engine_strategy(cfg["device"]))
        self.cfg, self.out_dir, self.log = cfg, Path(out_dir) if out_dir else None, log
        self.history: list[dict] = []
        self.best: dict | None = None
        self.train_seconds = 0.0
        super().__init__(problems=problems, config=config, dependencies=dependencies, env=env)

    # ---- one meta-iteration -------------------------------------------------------------
    def train_step(self):
        self.env.step()
        try:
            super().train_step()
        except NonFiniteLoss as err:
            raise TrainingDiverged(
                f"{err} at iteration {self.global_step}; lower outer.lr (now "
                f"{self.cfg['outer']['lr']}) or inner.lr (now {self.cfg['inner']['lr']}), or set "
                f"inner.grad_clip; the last good checkpoint is kept") from None
        stats = {"iteration": self.global_step, **self.outer.last_stats}
        if self.global_step % self.cfg["eval"]["log_every"] == 0 or self.global_step == 1:
            self.history.append(stats)
            self.log(format_stats("train", stats))

    def validation(self):
        e = self.cfg["eval"]
        summary = evaluate(self.inner, self.env, "validation", e["val_episodes"], e["steps"],
                           self.cfg["data"]["meta_batch"])
        stats = {"iteration": self.global_step, "split": "validation", "mean": summary.mean,
                 "ci95": summary.ci95, "loss": summary.loss}
        self.history.append(stats)
        better = self.best is None or (summary.mean > self.best["mean"] if summary.metric == "accuracy"
                                       else summary.mean < self.best["mean"])
        if better:
            self.best = stats
            if self.out_dir:
                save_checkpoint(self.out_dir / "best.pt", self.checkpoint_state())
        self.log(f"[validation] iteration {self.global_step}: {summary.metric} {summary}"
                 + ("  (best)" if better else ""))
        return {"mean": summary.mean, "loss": summary.loss}

    # ---- state --------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        return {"model": self.outer.module.state_dict(), "iteration": self.global_step,
                "config": self.cfg, "problem": self.cfg["problem"], "dataset": self.cfg["dataset"]}

    # ---- whole run ----------------------------------------------------------------------
    def run(self):
        start = time.perf_counter()
        super().run()
        self.train_seconds = time.perf_counter() - start
        if self.out_dir:
            save_checkpoint(self.out_dir / "last.pt", self.checkpoint_state())
        if self.best is not None and self.out_dir:
            self.outer.module.load_state_dict(load_checkpoint(self.out_dir / "best.pt")["model"])
        return self.test()

    def test(self) -> Summary:
        e = self.cfg["eval"]
        start = time.perf_counter()
        summary = evaluate(self.inner, self.env, "test", e["episodes"], e["steps"],
                           self.cfg["data"]["meta_batch"])
        test_seconds = time.perf_counter() - start
        if self.out_dir:
            write_results(self.out_dir, self.cfg, summary, self, test_seconds)
        return summary


def format_stats(tag: str, stats: dict) -> str:
    parts = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items()]
    return f"[{tag}] " + "  ".join(parts)


def write_results(out_dir: Path, cfg: dict, summary: Summary, engine: MetaEngine,
                  test_seconds: float) -> dict:
    results = {
        "problem": cfg["problem"], "dataset": cfg["dataset"], "seed": cfg["seed"],
        "iterations": engine.global_step, "train_seconds": round(engine.train_seconds, 3),
        "test_seconds": round(test_seconds, 3), "device": str(engine.device),
        "test": summary.as_dict(), "best_validation": engine.best,
        "history": engine.history, "config": cfg,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results
