"""What a run leaves behind for people: a CSV of every logged step and validation, TensorBoard
scalars (Betty's logger, when tensorboard is installed) and a PNG of the learning curves."""
from __future__ import annotations

import csv
from pathlib import Path

FIELDS = ["iteration", "split", "loss", "acc", "mean", "ci95", "seconds"]


class CsvLog:
    """Appends rows; a resumed run keeps appending to the same file."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as handle:
                csv.writer(handle).writerow(FIELDS)

    def write(self, row: dict) -> None:
        if self.path is None:
            return
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(["" if row.get(k) is None else row.get(k) for k in FIELDS])


def tensorboard_logger(log_dir: Path | None):
    """Betty's TensorBoard logger writing into the run folder, or None without tensorboard."""
    if log_dir is None:
        return None
    try:
        from betty.logging.logger_tensorboard import TensorBoardLogger
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None

    class RunFolderTensorBoard(TensorBoardLogger):
        def __init__(self):  # Betty's own writes under ./betty_tensorboard; keep runs together
            self.writer = SummaryWriter(log_dir=str(log_dir))

    return RunFolderTensorBoard()


def plot_curves(history: list[dict], path: Path, metric: str) -> None:
    """Training loss and validation metric against iterations, side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in history if h.get("split") == "train"]
    valid = [h for h in history if h.get("split") == "validation"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot([h["iteration"] for h in train], [h["loss"] for h in train], label="train (query loss)")
    if valid:
        left.plot([h["iteration"] for h in valid], [h["loss"] for h in valid], "o-",
                  label="validation (query loss)")
        right.errorbar([h["iteration"] for h in valid], [h["mean"] for h in valid],
                       yerr=[h["ci95"] for h in valid], fmt="o-", capsize=3)
    left.set(xlabel="meta-iteration", ylabel="query loss", title="Loss")
    left.legend()
    label = "validation accuracy" if metric == "accuracy" else "validation MSE"
    right.set(xlabel="meta-iteration", ylabel=label, title=f"Validation {label.split()[1]} (95% CI)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
