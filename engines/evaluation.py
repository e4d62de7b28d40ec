"""The standard few-shot test: adapt to each of N held-out episodes for a fixed number of
steps and report the mean query metric with a 95% confidence interval (1.96·std/√N)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from configs import ConfigError, parse_override
from problems.options import RunOptions, load_options, override_options, saved_options


@dataclass
class Summary:
    split: str
    metric: str          # "accuracy" (classification) or "mse" (regression)
    mean: float
    ci95: float | None   # None below 2 episodes: one episode says nothing about the spread
    episodes: int
    steps: int
    loss: float          # mean query loss (cross-entropy or MSE)
    diverged: int = 0    # episodes whose adaptation ended in a NaN/inf query loss

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return format_metric(self.mean, self.ci95, self.metric)


def format_metric(mean: float, ci95: float | None, metric: str, digits: int = 2) -> str:
    """`mean ± ci95` as printed everywhere: accuracy in percent, MSE with two more digits."""
    if metric == "accuracy":
        spread = "n/a" if ci95 is None else f"{100 * ci95:.{digits}f}%"
        return f"{100 * mean:.{digits}f}% ± {spread}"
    spread = "n/a" if ci95 is None else f"{ci95:.{digits + 2}f}"
    return f"{mean:.{digits + 2}f} ± {spread}"


def confidence_interval(values) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% interval, 1.96·s/√n with the sample deviation s
    (n − 1 in the denominator); None below two values, where s is undefined."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), None
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


def evaluate(inner, env, split: str, episodes: int, steps: int, chunk: int = 4,
             progress=None) -> Summary:
    """Adapt `inner`'s current θ to `episodes` tasks of `split` (the same tasks for every
    problem and run with the same seed) and summarise."""
    losses, scores = [], []
    for start in range(0, episodes, chunk):
        episode = env.episodes(split, start, min(chunk, episodes - start)).to(env.device)
        for loss, acc in inner.evaluate(episode, steps):
            losses.append(loss)
            scores.append(loss if acc is None else acc)
        if progress is not None:
            progress(len(losses), episodes)
    metric = "mse" if env.task_kind == "regression" else "accuracy"
    mean, ci = confidence_interval(scores)
    diverged = int(np.sum(~np.isfinite(np.asarray(losses, dtype=np.float64))))
    return Summary(split, metric, mean, ci, episodes, steps, float(np.mean(losses)), diverged)


def divergence_hint(summary: Summary, inner_lr: float) -> str:
    """'' when every episode adapted to a finite loss, else what happened and what to lower."""
    if not summary.diverged:
        return ""
    return (f"adaptation diverged (NaN/inf query loss) on {summary.diverged} of "
            f"{summary.episodes} {summary.split} episodes; lower inner.lr (now {inner_lr}) or "
            f"eval.steps (now {summary.steps})")


def describe_protocol(cfg: RunOptions) -> str:
    """The test protocol a config defines, in one line, so a re-test says what it measured."""
    d, e = cfg.data, cfg.eval
    if d.name == "sinusoid":
        data = f"sinusoid ({d.shots} support and {d.query} query points)"
    else:
        fractions = "/".join(f"{f:g}" for f in d.split_fractions)
        data = (f"{d.name} test split ({d.ways}-way {d.shots}-shot, {d.query} queries "
                f"per class; classes split by {d.split_by} {fractions}, split seed "
                f"{d.split_seed}, rotations {d.rotations}), data root {cfg.data_root}")
    return f"{data}, seed {cfg.seed}, {e.episodes} episodes x {e.steps} steps"


#: What a re-test may change: the test protocol, never the trained model.
PROTOCOL_KEYS = ("data.", "eval.", "device")
#: ... nor which classes are test classes (another split would test on training classes).
SPLIT_KEYS = ("data.split_seed", "data.split_by", "data.split_fractions", "data.name")


def protocol_config(saved: dict, *, dataset: str | None = None, data_root: str | None = None,
                    episodes: int | None = None, steps: int | None = None,
                    overrides: list[str] = ()) -> RunOptions:
    """A run's own test protocol (its data settings, class split, data root, seed, episodes and
    steps, from its saved config), with exactly the changes asked for. Another `dataset` preset
    on the same data keeps the run's split, so its test classes stay unseen."""
    for text in overrides:
        key = parse_override(text)[0]
        if not key.startswith(PROTOCOL_KEYS):
            raise ConfigError(f"--set {key}: evaluate re-tests the saved model, so only data.*, "
                              "eval.* and device can be set")
        if key in SPLIT_KEYS:
            raise ConfigError(f"--set {key}: the run's class split decides which classes were "
                              "never trained on; another split would test on training classes, "
                              "so it cannot change (use --dataset for another preset of the same "
                              "data)")
    cfg = saved_options(saved)
    if dataset and dataset != cfg.dataset:
        data, run = load_options(cfg.problem, dataset).data, cfg.data
        if data.name == run.name:
            data = data.replace(split_by=run.split_by, split_fractions=run.split_fractions,
                                split_seed=run.split_seed)
        cfg = cfg.replace(data=data, dataset=dataset)
    cfg = cfg.replace(**{"data.train_name": None})  # only the test split is read
    values = {"data_root": data_root, "eval.episodes": episodes, "eval.steps": steps}
    return override_options(cfg, {k: v for k, v in values.items() if v is not None},
                            list(overrides))
