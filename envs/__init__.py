"""Datasets, seeded class splits and the episodic Betty environment (see docs/DESIGN.md,
`envs/`)."""

from .episode import Episode
from .errors import DataError
from .maml_env import MAMLEnv
from .options import DataOptions
from .paths import resolve_data_root
from .pool import ClassPool
from .registry import DATASETS, make_env
from .sampling import ClassTaskSampler, TaskSampler, task_generator

__all__ = ["DATASETS", "ClassPool", "ClassTaskSampler", "DataError", "DataOptions", "Episode",
           "MAMLEnv", "TaskSampler", "make_env", "resolve_data_root", "task_generator"]
