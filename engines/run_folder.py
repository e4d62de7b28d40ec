"""One run per folder: a default name unique to the configuration, a folder that is claimed only
when it is empty of other runs (or cleared on request), and nothing half-written left behind.

Why: two runs sharing a folder overwrite each other's checkpoints and results and interleave
their logs, and a stale best.pt from the first run would be scored as the second run's model."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import uuid
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


LOCK = ".lock"
#: Where --overwrite keeps the replaced run until the new one has trained its first step.
REPLACED = ".replaced"


def new_run_id() -> str:
    """The identity a run carries in every checkpoint and in results.json."""
    return uuid.uuid4().hex


class FolderLock:
    """An exclusive lock on a folder, held for the life of the process that writes it.

    Why flock: the kernel drops it when the holder dies (even by kill -9), so a stale lock is
    never mistaken for a live one and is simply taken over."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.handle = None

    def acquire(self, what: str = "run") -> "FolderLock":
        check_writable(self.folder)
        handle = open(self.folder / LOCK, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().split()
            handle.close()
            pid = holder[0] if holder else "unknown"
            raise RunFolderError(f"{self.folder} is in use by process {pid} (another {what} is "
                                 "writing it); wait for it to end, or pass another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        handle.flush()
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing drops the flock; the file stays for the next holder
            self.handle = None


def resumed_runs(folder: Path) -> int:
    """How many times the run in `folder` was continued with --resume (0: never, or unknown)."""
    from engines.checkpoint import CheckpointError, load_checkpoint
    try:
        return len(json.loads((folder / "results.json").read_text()).get("resumes") or [])
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return len(load_checkpoint(folder / "last.pt").get("resumes") or [])
    except CheckpointError:
        return 0


def claim(folder: Path, overwrite: bool = False) -> Path | None:
    """Make `folder` this new run's: refuse one that holds another run unless `overwrite`. The
    replaced run is moved aside (returned), to be dropped by `commit_replacement` once the new
    run has trained a step, or put back by `restore_replaced` if it fails before that."""
    check_writable(folder)
    held = held_files(folder)
    if held and not overwrite:
        resumable = "last.pt" in held
        raise RunFolderError(
            f"{folder} already holds a run ({', '.join(held)}); "
            + (f"resume it with --resume {folder}, " if resumable else "")
            + "pass another --out, or pass --overwrite to delete that run first")
    if held and resumed_runs(folder):
        raise RunFolderError(f"{folder} holds a run that was continued with --resume; --overwrite "
                             "does not delete extended runs: pass another --out, or delete the "
                             "folder by hand")
    remove_orphans(folder)
    if not held:
        return None
    aside = folder / REPLACED
    try:
        if aside.exists():
            shutil.rmtree(aside)
        aside.mkdir()
        for name in held:
            os.replace(folder / name, aside / name)
    except OSError as err:
        raise RunFolderError(f"cannot move the old run aside in {folder} ({err.strerror or err}); "
                             "remove it by hand or pass another --out") from None
    return aside


def commit_replacement(folder: Path) -> None:
    """The new run has trained: the run it replaces goes for good."""
    shutil.rmtree(Path(folder) / REPLACED, ignore_errors=True)


def restore_replaced(folder: Path) -> bool:
    """The new run failed before its first step: its files go and the replaced run comes back."""
    aside = Path(folder) / REPLACED
    if not aside.is_dir():
        return False
    for name in RUN_FILES:
        path = Path(folder) / name
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for item in aside.iterdir():
        os.replace(item, Path(folder) / item.name)
    aside.rmdir()
    return True


def check_one_run(folder: Path, state: dict) -> None:
    """Resume only a folder whose files all belong to the run in its last.pt (a last.pt copied
    in from another run would otherwise continue beside that run's best.pt and records)."""
    from engines.checkpoint import CheckpointError, load_checkpoint
    mine = state.get("run_id")
    if mine is None:
        return  # written before runs carried an id: nothing to compare
    others = {}
    try:
        others["best.pt"] = (load_checkpoint(folder / "best.pt").get("run_id")
                             if (folder / "best.pt").exists() else None)
    except CheckpointError:
        others["best.pt"] = None
    try:
        others["results.json"] = json.loads((folder / "results.json").read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        others["results.json"] = None
    for name, theirs in others.items():
        if theirs is not None and theirs != mine:
            raise RunFolderError(f"{folder / 'last.pt'} belongs to another run (id {mine[:8]}) "
                                 f"than {folder / name} (id {theirs[:8]}); a run folder holds one "
                                 "run: move the copied file into a folder of its own and resume "
                                 "there")
