"""MAMLEnv: Betty's environment that hands out deterministic meta-batches of few-shot tasks.

Why an Env: Betty's Engine moves it to the run's device (configure_device) and gives every
problem a handle to it, so inner problems read support sets and the outer problem query sets
from the same `env.batch`.
"""

from __future__ import annotations

from betty.envs import Env

from .episode import Episode
from .errors import DataError
from .sampling import TaskSampler, task_generator
from .splits import SPLITS


class MAMLEnv(Env):
    """Training meta-batch i = train tasks i*meta_batch .. (i+1)*meta_batch-1; tasks depend only on
    (seed, split, index), so resuming (set `iteration`) or evaluating in any order repeats
    exactly."""

    def __init__(self, pools: dict[str, TaskSampler], ways: int, shots: int, query: int,
                 meta_batch: int = 4, seed: int = 0, train_query: int | None = None):
        super().__init__()
        unknown = sorted(set(pools) - set(SPLITS))
        if unknown or "train" not in pools:
            raise ValueError(f"pools must map a subset of {SPLITS} including 'train', "
                             f"got {sorted(pools)}")
        train_query = query if train_query is None else train_query
        if min(ways, shots, query, train_query, meta_batch) < 1 or seed < 0:
            raise ValueError("ways, shots, query, train_query and meta_batch must be >= 1 "
                             "and seed >= 0")
        self.pools = dict(pools)
        self.ways, self.shots, self.query = ways, shots, query
        # Queries per class in meta-training episodes: the MAML paper's Omniglot code trains on
        # one query per class (a fifth of the cost) and tests on 15; validation/test use `query`.
        self.train_query = train_query
        self.meta_batch, self.seed = meta_batch, seed
        train = pools["train"]
        self.task_kind: str = train.task_kind
        if self.task_kind == "classification" and ways < 2:
            raise DataError(f"data.ways={ways} makes every task one class (100% by construction); "
                            "set data.ways to 2 or more")
        self.input_shape: tuple = tuple(train.input_shape)
        for split, sampler in pools.items():
            if ((sampler.task_kind, tuple(sampler.input_shape))
                    != (self.task_kind, self.input_shape)):
                raise DataError(
                    f"data: the {split} split gives {sampler.task_kind} tasks on inputs "
                    f"{tuple(sampler.input_shape)} but the train split gives {self.task_kind} on "
                    f"{self.input_shape}; set data.train_name to a dataset of the same kind and "
                    f"image size")
            sampler.check(ways, shots, train_query if split == "train" else query, split)
        self.iteration: int = 0
        self.batch: Episode | None = None
        self.device = "cpu"

    @property
    def output_dim(self) -> int:
        """Width of the model's output: one logit per way, or one regression target."""
        return self.ways if self.task_kind == "classification" else 1

    def episodes(self, split: str, start: int, count: int) -> Episode:
        """Tasks start .. start+count-1 of `split`, on the CPU."""
        if split not in self.pools:
            raise ValueError(f"unknown split {split!r}; this env has {', '.join(self.pools)}")
        if start < 0 or count < 1:
            raise ValueError(f"need start >= 0 and count >= 1, got start={start}, count={count}")
        sampler = self.pools[split]
        query = self.train_query if split == "train" else self.query
        return Episode.stack([
            sampler.sample(task_generator(self.seed, split, index), self.ways, self.shots, query)
            for index in range(start, start + count)
        ])

    def step(self) -> Episode:
        """Draw the next training meta-batch, store it as `self.batch` on `self.device`, and
        return it."""
        episode = self.episodes("train", self.iteration * self.meta_batch, self.meta_batch)
        self.iteration += 1
        self.batch = episode.to(self.device)
        return self.batch

    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
