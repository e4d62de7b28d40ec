"""Dataset registry and make_env: the `data:` config section in, a ready MAMLEnv out."""

from __future__ import annotations

from . import datasets
from .datasets import DATASETS  # noqa: F401 (re-exported: envs.DATASETS)
from .errors import DataError
from .maml_env import MAMLEnv
from .options import DataOptions
from .paths import resolve_data_root
from .sampling import ClassTaskSampler


def make_env(data: DataOptions | dict, data_root: str | None, seed: int) -> MAMLEnv:
    """Load the named dataset (train_name's train split instead of its own, train_extra's
    besides it, if set) and wrap it in a MAMLEnv.
    `data`: the run's DataOptions, or a mapping of its keys (the rest take their defaults)."""
    options = data if isinstance(data, DataOptions) else DataOptions.parse(data)
    root = resolve_data_root(data_root)
    samplers = datasets.DATASETS[options.name](root, options)
    if options.train_name and options.train_name != options.name:
        samplers["train"] = datasets.DATASETS[options.train_name](root, options)["train"]
    if options.train_extra:
        samplers["train"] = joined_train(samplers["train"], options, root)
    ways = 1 if options.name == "sinusoid" else options.ways
    return MAMLEnv(samplers, ways, options.shots, options.query, options.meta_batch, seed,
                   train_query=options.train_query)


def joined_train(train, options: DataOptions, root) -> ClassTaskSampler:
    """The train sampler with train_extra's train classes added: more classes to meta-train on,
    while validation and test keep the named dataset's own episodes."""
    extra = datasets.DATASETS[options.train_extra](root, options)["train"]
    if not (isinstance(train, ClassTaskSampler) and isinstance(extra, ClassTaskSampler)):
        raise DataError(f"config: data.train_extra={options.train_extra} joins the classes of two "
                        "class datasets; unset it for regression (sinusoid)")
    if extra.input_shape != train.input_shape:
        raise DataError(f"config: data.train_extra={options.train_extra} has images of shape "
                        f"{extra.input_shape}, the train split {train.input_shape}; pick a dataset "
                        "with the same image size (omniglot and glyphs are both 1x28x28)")
    return ClassTaskSampler(train.pool.union(extra.pool))
