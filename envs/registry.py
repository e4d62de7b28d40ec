"""Dataset registry and make_env: the `data:` config section in, a ready MAMLEnv out."""

from __future__ import annotations

from . import datasets
from .datasets import DATASETS  # noqa: F401 (re-exported: envs.DATASETS)
from .maml_env import MAMLEnv
from .options import DataOptions
from .paths import resolve_data_root


def make_env(data: DataOptions | dict, data_root: str | None, seed: int) -> MAMLEnv:
    """Load the named dataset (and train_name's train split, if set) and wrap it in a MAMLEnv.
    `data`: the run's DataOptions, or a mapping of its keys (the rest take their defaults)."""
    options = data if isinstance(data, DataOptions) else DataOptions.parse(data)
    root = resolve_data_root(data_root)
    samplers = datasets.DATASETS[options.name](root, options)
    if options.train_name and options.train_name != options.name:
        samplers["train"] = datasets.DATASETS[options.train_name](root, options)["train"]
    ways = 1 if options.name == "sinusoid" else options.ways
    return MAMLEnv(samplers, ways, options.shots, options.query, options.meta_batch, seed,
                   train_query=options.train_query)
