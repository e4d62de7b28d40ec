"""What a run leaves behind for people: a CSV of every logged step and validation, TensorBoard
scalars (Betty's logger, when tensorboard is installed) and a PNG of the learning curves."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

FIELDS = ["iteration", "split", "loss", "acc", "mean", "ci95", "seconds", "cpu_seconds"]


def _cells(row: dict) -> list:
    return ["" if row.get(k) is None else row.get(k) for k in FIELDS]


class CsvLog:
    """Appends rows; a resumed run first rewrites the file from its checkpoint's history, so
    rows the stopped run logged after that checkpoint are not kept twice."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None and not path.exists():
            self.rewrite([])

    def rewrite(self, rows: list[dict]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(FIELDS)
            writer.writerows(_cells(row) for row in rows)

    def write(self, row: dict) -> None:
        if self.path is None:
            return
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(_cells(row))


def json_safe(value):
    """`value` with every NaN/inf float replaced by None: JSON has no NaN, and a results file
    that json.load rejects (Python writes bare `NaN`) would lose the whole run's record."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_text(value) -> str:
    return json.dumps(json_safe(value), indent=2, allow_nan=False)


def tensorboard_logger(log_dir: Path | None, purge_step: int | None = None):
    """Betty's TensorBoard logger writing into the run folder, or None without tensorboard.
    `purge_step`: on resume, hide events at or after this step written by the stopped run."""
    if log_dir is None:
        return None
    try:
        from betty.logging.logger_tensorboard import TensorBoardLogger
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None

    class RunFolderTensorBoard(TensorBoardLogger):
        def __init__(self):  # Betty's own writes under ./betty_tensorboard; keep runs together
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    return RunFolderTensorBoard()


def plot_curves(history: list[dict], path: Path, metric: str) -> None:
    """Training loss and validation metric against iterations, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in history if h.get("split") == "train"]
    valid = [h for h in history if h.get("split") == "validation"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([h["iteration"] for h in train], [h["loss"] for h in train],
              label="train (query loss)")
    if valid:
        left.plot([h["iteration"] for h in valid], [h["loss"] for h in valid], "o-",
                  label="validation (query loss)")
        right.errorbar([h["iteration"] for h in valid], [h["mean"] for h in valid],
                       yerr=[h["ci95"] or 0.0 for h in valid], fmt="o-", capsize=3)
    left.set(xlabel="meta-iteration", ylabel="query loss", title="Loss")
    left.legend()
    label = "validation accuracy" if metric == "accuracy" else "validation MSE"
    right.set(xlabel="meta-iteration", ylabel=label,
              title=f"Validation {label.split()[1]} (95% CI)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
