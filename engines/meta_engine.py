"""MetaEngine: Betty's Engine with the meta-learning protocol around it. Each iteration draws
one meta-batch (env.step), lets Betty run the inner problem and then the outer update; every
`eval.val_every` iterations it validates with `eval.steps` adaptation steps and keeps the best θ;
every `checkpoint_every` iterations it writes a resumable checkpoint; at the end it tests the
best θ on `eval.episodes` test episodes and writes results.json, log.csv and curves.png."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.logging.logger_base import get_logger

from engines.checkpoint import (CheckpointError, capture_rng, load_checkpoint, restore_rng,
                                save_checkpoint)
from engines.evaluation import Summary, divergence_hint, evaluate
from engines.progress import Progress, say
from engines.records import CsvLog, json_text, plot_curves, tensorboard_logger
from engines.run_folder import new_run_id
from measures.machine import cpu_model
from problems import NonFiniteLoss, RunOptions, build_problems
from problems.system import engine_strategy


class TrainingDiverged(RuntimeError):
    """The meta-loss became NaN/inf; the message says where and what to lower."""


class MetaEngine(Engine):
    def __init__(self, cfg: RunOptions, env, out_dir: Path | None = None, verbose: bool = False,
                 log=say, resume: dict | None = None, progress: bool = True,
                 max_seconds: float | None = None):
        get_logger().setLevel(logging.INFO if verbose else logging.WARNING)
        torch.manual_seed(cfg.seed)
        problems, dependencies = build_problems(cfg, env.input_shape, env.task_kind, env.output_dim)
        config = EngineConfig(train_iters=cfg.iterations, valid_step=cfg.eval.val_every,
                              strategy=engine_strategy(cfg.device),
                              backend="nccl" if torch.cuda.is_available() else "gloo")
        self.cfg, self.out_dir, self.log = cfg, Path(out_dir) if out_dir else None, log
        self.history: list[dict] = []
        self.best: dict | None = None
        self.train_seconds = 0.0      # finished training time (this run and the ones it resumes)
        # Process CPU seconds inside training steps only (no validation, no checkpoints): the
        # clock time-to-accuracy curves use, unmoved by other processes on the machine.
        self.cpu_seconds = 0.0
        self._started: float | None = None  # perf_counter() while run() is training
        self.resumes: list[dict] = []  # where the run was resumed and which settings changed
        self.show_progress = progress
        # A wall-time budget (`minutes`, or compare --train's seconds) and early stopping
        # (`eval.patience`); single-process only: ranks would stop apart.
        self.max_seconds = max_seconds if max_seconds is not None else (cfg.minutes * 60 or None)
        self.stopped = ""  # why training ended: iterations, wall time or patience
        self.run_id: str | None = new_run_id()  # every checkpoint and results.json carry it
        # The CPU model that started the run (each resume records its own): a run's wall and CPU
        # seconds mean nothing without it, and runs are resumed on other machines.
        self.cpu: str | None = cpu_model()
        self.on_first_step = None  # called once this process has trained one step
        super().__init__(problems=problems, config=config, dependencies=dependencies, env=env)
        # Records are opened by run(): building an engine writes nothing into the run folder.
        self.csv, self.tensorboard = CsvLog(None), None
        self.resumed_at: int | None = None
        if resume is not None:
            self.load_state(resume)

    # ---- systems ------------------------------------------------------------------------
    def configure_systems(self):
        """Betty's distributed set-up assumes CUDA (it divides by the GPU count); this one also
        runs on CPU processes with gloo, and on one GPU per rank with nccl."""
        if self._strategy != "distributed":
            return super().configure_systems()
        if not dist.is_initialized():
            dist.init_process_group(backend=self._backend)
        self._world_size, self._rank = dist.get_world_size(), dist.get_rank()
        if torch.cuda.is_available():
            self._local_rank = int(os.environ.get("LOCAL_RANK",
                                                  self._rank % torch.cuda.device_count()))
            torch.cuda.set_device(self._local_rank)
            self.device = torch.device("cuda", self._local_rank)
        else:
            self._local_rank = self._rank
            self.device = "cpu"
        return {"strategy": self._strategy, "backend": self._backend,
                "world_size": self._world_size, "rank": self._rank,
                "local_rank": self._local_rank}

    # ---- one meta-iteration -------------------------------------------------------------
    def train_step(self):
        batch = self.env.step()
        if self._world_size > 1:  # each rank adapts to its share of the meta-batch
            self.env.batch = batch.split(self._world_size, self._rank)
        try:
            super().train_step()
        except NonFiniteLoss as err:
            where = ""
            if self.out_dir and (self.out_dir / "last.pt").exists():
                where = f" ({self.out_dir / 'last.pt'} is the last good checkpoint)"
            raise TrainingDiverged(
                f"{err} at iteration {self.global_step}; lower outer.lr (now "
                f"{self.cfg.outer.lr}) or inner.lr (now {self.cfg.inner.lr}), or set "
                f"inner.grad_clip{where}") from None
        return dict(self.outer.last_stats)

    def validation(self):
        e = self.cfg.eval
        summary = evaluate(self.inner, self.env, "validation", e.val_episodes, e.steps,
                           self.cfg.data.meta_batch)
        stats = {"iteration": self.global_step, "split": "validation", "mean": summary.mean,
                 "ci95": summary.ci95, "loss": summary.loss, "seconds": self.elapsed(),
                 "cpu_seconds": round(self.cpu_seconds, 3)}
        self.record(stats)
        better = not summary.diverged and (self.best is None or self.improves(summary))
        if better:
            self.best = stats
            self.save("best.pt")
        hint = divergence_hint(summary, self.cfg.inner.lr)
        patience, standing = self.cfg.eval.patience, ""
        if better:
            standing = "  (best)"
        elif patience and self.best is not None:
            standing = f"  (no better for {self.stale_validations()} of {patience} validations)"
        self.log(f"[validation] iteration {self.global_step}: {summary.metric} {summary}"
                 + standing + (f"  ({hint})" if hint else ""))
        return stats

    def improves(self, summary: Summary) -> bool:
        if summary.metric == "accuracy":
            return summary.mean > self.best["mean"]
        return summary.mean < self.best["mean"]

    def record(self, stats: dict) -> None:
        self.history.append(stats)
        self.csv.write(stats)
        if self.tensorboard is not None:
            values = {k: v for k, v in stats.items() if isinstance(v, float)}
            self.tensorboard.log(values, tag=stats["split"], step=stats["iteration"])

    # ---- the loop -----------------------------------------------------------------------
    def elapsed(self) -> float:
        """Training seconds so far: finished ones plus the current run() if it is training."""
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return round(self.train_seconds + running, 3)

    def validated_at(self, iteration: int) -> bool:
        return any(h["split"] == "validation" and h["iteration"] == iteration for h in self.history)

    def out_of_time(self) -> bool:
        return self.max_seconds is not None and self.elapsed() >= self.max_seconds

    def stale_validations(self) -> int:
        """Validations since the best one (what `eval.patience` counts)."""
        if self.best is None:
            return 0
        return sum(1 for h in self.history
                   if h["split"] == "validation" and h["iteration"] > self.best["iteration"])

    def stop_reason(self) -> str:
        """'' to go on; else why training ends before its last iteration."""
        if self.out_of_time():
            return "wall time"
        patience = self.cfg.eval.patience
        if patience and self.is_rank_zero() and self.stale_validations() >= patience:
            return "patience"
        return ""

    def run(self) -> Summary | None:
        e, total = self.cfg.eval, self.cfg.iterations
        self.open_records()
        self._started = time.perf_counter()
        bar = Progress(total, self.global_step, enabled=self.show_progress and self.is_rank_zero(),
                       log=self.log)
        self.log = bar.wrap(self.log)
        self.train()
        self.stopped = "iterations"
        while self.global_step < total:
            reason = self.stop_reason()
            if reason:
                self.stopped = reason
                break
            self.global_step += 1
            cpu = time.process_time()
            stats = self.train_step()
            self.cpu_seconds += time.process_time() - cpu
            if self.on_first_step is not None:
                self.on_first_step()
                self.on_first_step = None
            bar.update(stats)
            if self.global_step % e.log_every == 0 or self.global_step in (1, total):
                self.record({"iteration": self.global_step, "split": "train", **stats,
                             "seconds": self.elapsed(), "cpu_seconds": round(self.cpu_seconds, 3)})
            if not self.is_rank_zero():
                continue
            if e.val_every and self.global_step % e.val_every == 0:
                self.eval()
                self.validation()
                self.train()
            if self.cfg.checkpoint_every and self.global_step % self.cfg.checkpoint_every == 0:
                self.save("last.pt")
        bar.close()
        if not self.is_rank_zero():
            self.train_seconds, self._started = self.elapsed(), None
            self.cleanup()
            return None
        # The final θ is a candidate too: validate it unless that just happened (and so a run
        # shorter than eval.val_every still gets a validation point and a best.pt).
        if e.val_every and not self.validated_at(self.global_step):
            self.eval()
            self.validation()
        self.train_seconds, self._started = self.elapsed(), None
        self.save("last.pt")
        if self.best is not None and self.out_dir:
            self.outer.module.load_state_dict(self.own_checkpoint("best.pt")["model"])
        summary = self.test()
        self.cleanup()
        return summary

    def test(self) -> Summary:
        e = self.cfg.eval
        start = time.perf_counter()
        self.eval()
        if self.show_progress:
            self.log(f"testing on {e.episodes} test episodes x {e.steps} steps")
        bar = Progress(e.episodes, 0, enabled=self.show_progress, desc="test", unit="episode",
                       log=self.log)
        summary = evaluate(self.inner, self.env, "test", e.episodes, e.steps,
                           self.cfg.data.meta_batch, progress=bar.advance_to)
        bar.close()
        test_seconds = time.perf_counter() - start
        if self.out_dir:
            write_results(self.out_dir, self.cfg, summary, self, test_seconds)
            plot_curves(self.history, self.out_dir / "curves.png", summary.metric)
        return summary

    # ---- state --------------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": self.outer.module.state_dict(), "outer": self.outer.state_dict(),
                "iteration": self.global_step, "env": self.env.state_dict(),
                "counts": {p.name: p._count for p in self.problems}, "rng": capture_rng(),
                "history": self.history, "best": self.best, "train_seconds": self.elapsed(),
                "cpu_seconds": self.cpu_seconds,
                "resumes": self.resumes, "config": self.cfg.to_dict(), "problem": self.cfg.problem,
                "dataset": self.cfg.dataset, "run_id": self.run_id, "cpu": self.cpu}

    def own_checkpoint(self, name: str) -> dict:
        """A checkpoint of this run folder, refused if another run wrote it (e.g. copied in)."""
        path = self.out_dir / name
        state = load_checkpoint(path)
        if self.run_id and state.get("run_id") not in (None, self.run_id):
            raise CheckpointError(f"{path} was written by another run (id {state['run_id'][:8]}, "
                                  f"this run is {self.run_id[:8]}); it was not tested: keep one "
                                  "run per folder, and test that file with run.py evaluate")
        return state

    def save(self, name: str) -> None:
        if self.out_dir and self.is_rank_zero():
            save_checkpoint(self.out_dir / name, self.state())

    def load_state(self, state: dict) -> None:
        """Continue exactly where `state` was taken: θ, optimizer and scheduler, counters,
        episode position, RNG streams and the records so far."""
        try:
            self.outer.load_state_dict(state["outer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"checkpoint does not fit this model ({type(err).__name__}); "
                                  f"it was written by {state.get('problem')} on "
                                  f"{state.get('dataset')}") from None
        self.global_step = state["iteration"]
        self.env.load_state_dict(state["env"])
        for problem in self.problems:
            problem._count = state["counts"][problem.name]
        restore_rng(state["rng"])
        self.history, self.best = list(state["history"]), state["best"]
        self.train_seconds = state["train_seconds"]
        self.cpu_seconds = float(state.get("cpu_seconds", 0.0))
        self.resumes = list(state.get("resumes", []))
        self.resumed_at = state["iteration"]
        self.run_id = state.get("run_id")  # None: written before runs carried an id
        self.cpu = state.get("cpu")  # None: written before runs recorded their CPU

    def open_records(self) -> None:
        """log.csv and TensorBoard in the run folder. A resumed run drops what the stopped run
        logged after its checkpoint (those iterations are trained again), so nothing is twice."""
        if self.out_dir is None or not self.is_rank_zero():
            return
        self.csv = CsvLog(self.out_dir / "log.csv")
        if self.resumed_at is not None:
            self.csv.rewrite(self.history)
        self.tensorboard = tensorboard_logger(
            self.out_dir / "tensorboard",
            purge_step=self.resumed_at + 1 if self.resumed_at is not None else None)


def write_results(out_dir: Path, cfg: RunOptions, summary: Summary, engine: MetaEngine,
                  test_seconds: float) -> dict:
    results = {
        "problem": cfg.problem, "dataset": cfg.dataset, "seed": cfg.seed, "run_id": engine.run_id,
        "iterations": engine.global_step, "train_seconds": round(engine.train_seconds, 3),
        "cpu_seconds": round(engine.cpu_seconds, 3),
        "test_seconds": round(test_seconds, 3), "device": str(engine.device), "cpu": engine.cpu,
        "test": summary.as_dict(), "best_validation": engine.best,
        "history": engine.history, "resumes": engine.resumes, "config": cfg.to_dict(),
        "stopped": engine.stopped,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json_text(results))
    return results
