"""The real Omniglot subset in ../shared/datasets: counts, shapes, ink convention, seeded split."""

import pytest
import torch

from envs import DataError, make_env
from envs.omniglot import load_omniglot_pool


@pytest.fixture(scope="module")
def pool(shared_data_root):
    return load_omniglot_pool(shared_data_root)


def test_counts_and_shapes(pool):
    assert len(pool) == 242
    assert len(set(pool.groups)) == 8
    assert pool.counts() == [20] * 242
    assert pool.images.shape == (4840, 1, 28, 28) and pool.images.dtype == torch.uint8


def test_ink_is_one(pool):
    pixels = pool.images.float() / 255
    assert float(pixels.mean()) < 0.5
    assert float(pixels.max()) == 1.0 and float(pixels.min()) == 0.0


def test_make_env_episodes(shared_data_root):
    data = {"name": "omniglot", "ways": 5, "shots": 1, "query": 5, "meta_batch": 2}
    env = make_env(data, str(shared_data_root), seed=0)
    episode = env.step()
    assert (episode.support_x.shape == (2, 5, 1, 28, 28)
            and episode.query_x.shape == (2, 25, 1, 28, 28))
    assert 0.0 <= float(episode.query_x.min()) and float(episode.query_x.max()) <= 1.0
    assert float(episode.query_x.mean()) < 0.5
    groups = {s: set(env.pools[s].pool.groups) for s in ("train", "validation", "test")}
    assert [len(g) for g in groups.values()] == [4, 2, 2]
    again = make_env(data, str(shared_data_root), seed=0)
    assert torch.equal(again.episodes("test", 0, 3).query_x, env.episodes("test", 0, 3).query_x)


def test_alphabet_split_too_small_for_ways(shared_data_root):
    with pytest.raises(DataError) as excinfo:
        make_env({"name": "omniglot", "ways": 100, "rotations": "none"}, str(shared_data_root),
                 seed=0)
    message = str(excinfo.value)
    assert "\n" not in message and "split_by: character" in message and "omniglot-py" in message
