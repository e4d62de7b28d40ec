"""One run per folder: a default name unique to the configuration, a folder that is claimed only
when it is empty of other runs (or cleared on request), and nothing half-written left behind.

Why: two runs sharing a folder overwrite each other's checkpoints and results and interleave
their logs, and a stale best.pt from the first run would be scored as the second run's model."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

#: Everything a run writes into its folder (and only these are removed by --overwrite).
RUN_FILES = ("last.pt", "best.pt", "results.json", "log.csv", "curves.png", "tensorboard")
#: Settings that do not change what a run learns, so they do not change its default name.
NOT_IN_NAME = {"problem", "dataset", "seed", "out", "data_root", "device", "checkpoint_every",
               "eval.log_every"}


class RunFolderError(ValueError):
    """A run folder that cannot be used; the message names the fix."""


def default_run_dir(cfg, preset, root: str = "runs") -> Path:
    """runs/<problem>-<dataset>-s<seed>, plus a short hash of every setting that differs from
    the presets (flags, --set, --config, another inner optimizer or train dataset), so two
    different configurations never share a folder and the same one always finds its own."""
    from configs import flat_items
    mine, base = flat_items(cfg.to_dict()), flat_items(preset.to_dict())
    changed = {k: v for k, v in sorted(mine.items()) if k not in NOT_IN_NAME and base.get(k) != v}
    name = f"{cfg.problem}-{cfg.dataset}-s{cfg.seed}"
    if changed:
        digest = hashlib.sha1(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()
        name += f"-{digest[:8]}"
    return Path(root) / name


def held_files(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if (folder / name).exists()]


def remove_orphans(folder: Path) -> None:
    """Temporary checkpoint files a kill during a save left behind (never the real ones)."""
    for tmp in folder.glob("*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be written there, before any training."""
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--out {folder} is a file, not a folder; pass a folder path")
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunFolderError(f"cannot write to the run folder {folder} ({err.strerror or err}); "
                             "make it writable or pass --out to a writable folder") from None


def claim(folder: Path, overwrite: bool = False) -> None:
    """Make `folder` this new run's: refuse one that holds another run unless `overwrite`, in
    which case that run's files (and only those) are removed first."""
    check_writable(folder)
    held = held_files(folder)
    if held and not overwrite:
        resumable = "last.pt" in held
        raise RunFolderError(
            f"{folder} already holds a run ({', '.join(held)}); "
            + (f"resume it with --resume {folder}, " if resumable else "")
            + "pass another --out, or pass --overwrite to delete that run first")
    for name in held:
        path = folder / name
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError as err:
            raise RunFolderError(f"cannot remove {path} ({err.strerror or err}); remove it by hand "
                                 "or pass another --out") from None
    remove_orphans(folder)
