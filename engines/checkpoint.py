"""Checkpoints that can be trusted: written atomically (temporary file, then rename), so a crash
or a full disk while saving leaves the previous one intact; sealed with a SHA-256 of the payload,
so a file damaged later is refused at load (torch's zip reader does not notice overwritten bytes).

Layout: a header line `metalearn-checkpoint 3 sha256=<hex> bytes=<n>`, then the `torch.save`
payload. Reading runs no code from the file: torch's weights-only unpickler, then a check of the
contents (format-2 files' numpy RNG state is read with only numpy's array builder allow-listed)."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = 3
PROJECT_VERSION = "0.1.0"
MAGIC = b"metalearn-checkpoint"
#: The other checkpoint a run folder holds, offered when one of them is damaged.
SIBLING = {"last.pt": "best.pt", "best.pt": "last.pt"}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or used; the message names the fix."""


def _file_mode() -> int:
    """The mode a plain `open()` would give (0666 minus the umask): mkstemp uses 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_checkpoint(path: Path, state: dict) -> None:
    path = Path(path)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT_VERSION, "version": PROJECT_VERSION, **state}, buffer)
    payload = buffer.getbuffer()
    header = f"{MAGIC.decode()} {FORMAT_VERSION} sha256={hashlib.sha256(payload).hexdigest()} " \
             f"bytes={len(payload)}\n".encode()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(header)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        kept = f"; the previous {path.name} is intact" if path.exists() else ""
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(f"disk full while writing {path}{kept}; free space, then resume "
                                  f"with --resume {path.parent}") from None
        raise CheckpointError(f"cannot write {path} ({err.strerror or err}){kept}; make "
                              f"{path.parent} writable, then resume with --resume {path.parent}, "
                              "or start again with --out elsewhere") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _damage(raw: bytes) -> str:
    """'' when a sealed checkpoint's payload is what was written, else what is wrong with it.
    Files written before checksums (format 1, a bare torch file) have nothing to check."""
    if not raw.startswith(MAGIC):
        return ""
    header, _, payload = raw.partition(b"\n")
    fields = dict(part.split("=", 1) for part in header.decode(errors="replace").split()
                  if "=" in part)
    size = int(fields["bytes"]) if fields.get("bytes", "").isdigit() else -1
    if len(payload) < size:
        return "is truncated"
    if len(payload) != size or hashlib.sha256(payload).hexdigest() != fields.get("sha256"):
        return "is damaged (its contents no longer match the checksum written with it)"
    return ""


def _read(path: Path, offer_sibling: bool = True) -> dict:
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the best.pt or last.pt inside it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass the best.pt or last.pt of a run "
                              "folder")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read {path} ({err.strerror or err}); "
                              "check its permissions") from None
    damage = _damage(raw)
    if damage:
        raise CheckpointError(f"{path} {damage}; " + (_alternative(path) if offer_sibling else ""))
    payload = raw.partition(b"\n")[2] if raw.startswith(MAGIC) else raw
    try:
        with torch.serialization.safe_globals(NUMPY_RNG_GLOBALS):
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        named = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" (it names {named.group(1)})" if named else ""
        raise CheckpointError(f"{path} holds objects a checkpoint may not hold{what}; it was "
                              "refused unread, as loading it could run code: use a checkpoint "
                              "this project wrote") from None
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}); "
                              "pass the best.pt or last.pt of a run folder") from None
    check_contents(path, state)
    return state


#: numpy's array builder, allow-listed only for format-2 files (their numpy RNG state).
NUMPY_RNG_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
try:
    NUMPY_RNG_GLOBALS.append(np._core.multiarray._reconstruct)
except AttributeError:  # numpy < 2
    NUMPY_RNG_GLOBALS.append(np.core.multiarray._reconstruct)

#: What a checkpoint holds, by key: what evaluating needs, and what resuming needs besides.
TEST_KEYS = {"config": dict, "model": dict, "iteration": int, "problem": str, "dataset": str}
RESUME_KEYS = {"outer": dict, "env": dict, "counts": dict, "rng": dict, "history": list,
               "train_seconds": float}
OPTIONAL_KEYS = {"format", "version", "best", "resumes", "cpu_seconds", "run_id", "cpu"}


def check_contents(path: Path, state) -> None:
    """One line when the file is not a checkpoint of this project, or lacks what a test needs."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of this project; pass the best.pt or "
                              "last.pt of a run folder")
    missing = [k for k in TEST_KEYS if k not in state]
    wrong = [k for k, kind in TEST_KEYS.items() if k in state and not isinstance(state[k], kind)]
    unknown = sorted(set(state) - set(TEST_KEYS) - set(RESUME_KEYS) - OPTIONAL_KEYS, key=str)
    model = state.get("model")
    if isinstance(model, dict) and not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in model.items()):
        wrong.append("model")
    if missing or wrong or unknown:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + \
                ([f"has the wrong type for {', '.join(wrong)}"] if wrong else []) + \
                ([f"holds unknown keys {', '.join(map(str, unknown[:5]))}"] if unknown else [])
        raise CheckpointError(f"{path} is not a checkpoint of this project ({'; '.join(parts)}); "
                              "pass the best.pt or last.pt of a run folder")


def require_resumable(path: Path, state: dict) -> None:
    """A checkpoint to continue from must hold the optimizer, sampler, RNG and records too."""
    missing = [k for k, kind in RESUME_KEYS.items()
               if not isinstance(state.get(k), kind)
               and not (kind is float and isinstance(state.get(k), int))]
    if missing:
        raise CheckpointError(f"{path} cannot be resumed: it lacks {', '.join(missing)}; "
                              f"test it with run.py evaluate --checkpoint {path}, or train again")


def _alternative(path: Path) -> str:
    """What to use instead of a damaged checkpoint: the run folder's other one, if it is sound."""
    other = path.with_name(SIBLING.get(path.name, path.name))
    if other != path and other.is_file():
        try:
            state = _read(other, offer_sibling=False)
            return f"{other} is intact (iteration {state['iteration']}): use it instead"
        except CheckpointError:
            pass
    return "no other intact checkpoint is in that folder; train again"


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state, verified against its checksum; CheckpointError (one line) if it is
    missing, damaged or not this project's."""
    return _read(Path(path))


def capture_rng() -> dict:
    name, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)),
                   "position": int(position), "has_gauss": int(has_gauss), "cached": float(cached)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    if isinstance(saved, dict):
        saved = (saved["name"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                 saved["has_gauss"], saved["cached"])
    np.random.set_state(saved)
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
