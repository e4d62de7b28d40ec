"""What a resumed run may change, and the config it continues with.

Why: a resume that silently ignored --seed or --set gave the user a different run than the one
they asked for; one that applied them gave a run no longer reproducible from its record. The
budget, when and how the run is evaluated and saved, where the data lies and which device runs it
may change (each change is recorded); anything else would make it another run and is refused."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from configs import ConfigError, flat_items, with_defaults
from problems.options import RunOptions, override_options, saved_options
from engines.run_folder import RunFolderError
from envs.paths import resolve_data_root

#: Config keys (or prefixes) a resume may change.
RESUMABLE_CHANGES = ("iterations", "minutes", "checkpoint_every", "data_root", "device", "eval.")


def resume_folder(given: str, out: str | None = None, overwrite: bool = False) -> Path:
    """The run folder `--resume` names (its last.pt is accepted too), refusing flags that would
    put the continued run elsewhere or delete it."""
    folder = Path(given)
    if folder.is_file() and folder.name == "last.pt":  # the file instead of its folder: fine
        folder = folder.parent
    if not (folder / "last.pt").is_file():
        found = "does not exist" if not folder.exists() else "holds no last.pt"
        raise RunFolderError(f"--resume takes a run folder holding last.pt; {folder} {found}; pass "
                             "the folder a run was started in (e.g. runs/maml-sinusoid-s0)")
    if out is not None and Path(out).resolve() != folder.resolve():
        raise RunFolderError(f"--resume continues in its own folder ({folder}); drop --out {out}")
    if overwrite:
        raise RunFolderError("--overwrite deletes a run and --resume continues one; give only one")
    return folder


def resumed_config(folder: Path, state: dict, values: dict, overrides: list[str],
                   config_file: str | None,
                   source_of: Callable[[str], str]) -> tuple[RunOptions, dict]:
    """The saved config with the requested changes; (config, {key: (old, new)}). `values` are
    flag values by config key, `overrides` the --set strings; `source_of(key)` says how the user
    asked for a key (for the one-line refusal)."""
    saved = with_defaults(state["config"])
    cfg = override_options(saved_options(saved), values, overrides, config_file)
    if cfg.data.name != "sinusoid":  # compare data roots as absolute paths
        cfg = cfg.replace(data_root=str(resolve_data_root(cfg.data_root)))
    before, after = flat_items(saved), flat_items(cfg.to_dict())
    changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    for key, (old, new) in changed.items():
        if not key.startswith(RESUMABLE_CHANGES):
            raise RunFolderError(
                f"{folder} holds a {saved['problem']} run on {saved['dataset']} with "
                f"{key}={old!r}; {source_of(key)} {new!r} cannot change when resuming; resume "
                "without it, or start a new run with another --out")
    done = state["iteration"]
    if cfg.iterations < done:
        raise ConfigError(f"{folder} is already at iteration {done}; pass --iterations {done} or "
                          "more to resume it")
    if "iterations" in changed and cfg.outer.schedule != "constant":
        raise ConfigError(f"--iterations cannot change when resuming a run with outer.schedule="
                          f"{cfg.outer.schedule} (its learning-rate schedule was laid out for "
                          f"{saved['iterations']} iterations); start a new run with another --out")
    # where the run is now (a moved folder is the same run)
    return cfg.replace(out=str(folder)), changed
