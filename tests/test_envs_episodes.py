"""Episode sampling: determinism from (seed, split, index), relabelling, and the Episode
container."""

import math

import numpy as np
import pytest
import torch

from envs import ClassPool, ClassTaskSampler, Episode, MAMLEnv, make_env, task_generator
from envs.sinusoid import SinusoidSampler

N_CLASSES, PER_CLASS = 12, 10


def tagged_pool(n_classes=N_CLASSES, per_class=PER_CLASS) -> ClassPool:
    """Images whose pixels record (class, example): pixel[0,0,0] = class, pixel[0,0,1] = example."""
    images = np.zeros((n_classes * per_class, 1, 4, 4), dtype=np.uint8)
    labels = np.repeat(np.arange(n_classes), per_class)
    images[:, 0, 0, 0] = labels
    images[:, 0, 0, 1] = np.tile(np.arange(per_class), n_classes)
    order = np.random.default_rng(0).permutation(len(images))   # classes need not be contiguous
    names = [f"c{c}" for c in range(n_classes)]
    return ClassPool.from_arrays(images[order], labels[order], names, origin="tagged pool")


def tags(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    raw = torch.round(x * 255).long()
    return raw[..., 0, 0, 0], raw[..., 0, 0, 1]


def make_tagged_env(seed=0, ways=5, shots=2, query=3, meta_batch=4) -> MAMLEnv:
    pools = {split: ClassTaskSampler(tagged_pool()) for split in ("train", "validation", "test")}
    return MAMLEnv(pools, ways, shots, query, meta_batch=meta_batch, seed=seed)


def assert_same(a: Episode, b: Episode):
    for name in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_generator_is_pure_function_of_seed_split_index():
    def draw(*key):
        return torch.rand(3, generator=task_generator(*key))

    assert torch.equal(draw(0, "test", 7), draw(0, "test", 7))
    assert not torch.equal(draw(0, "test", 7), draw(1, "test", 7))
    assert not torch.equal(draw(0, "test", 7), draw(0, "validation", 7))
    assert not torch.equal(draw(0, "test", 7), draw(0, "test", 8))
    with pytest.raises(ValueError, match="validation"):
        task_generator(0, "val", 0)


def test_episodes_do_not_depend_on_call_order():
    first = make_tagged_env()
    alone = first.episodes("test", 3, 1)
    other = make_tagged_env()
    other.episodes("train", 0, 5)
    other.step()
    other.episodes("validation", 2, 4)
    assert_same(alone, other.episodes("test", 0, 6).task(3))
    assert_same(first.episodes("test", 2, 3).task(1), alone)


def test_different_seeds_and_splits_differ():
    a, b = make_tagged_env(seed=0), make_tagged_env(seed=1)
    assert not torch.equal(a.episodes("test", 0, 4).query_x, b.episodes("test", 0, 4).query_x)
    assert not torch.equal(a.episodes("test", 0, 4).query_x, a.episodes("validation", 0, 4).query_x)


def test_step_sequence_is_reproducible_and_resumable():
    a, b = make_tagged_env(seed=3), make_tagged_env(seed=3)
    seq_a = [a.step() for _ in range(4)]
    seq_b = [b.step() for _ in range(4)]
    for x, y in zip(seq_a, seq_b):
        assert_same(x, y)
    assert a.iteration == 4 and a.batch is seq_a[-1]
    assert_same(seq_a[2], a.episodes("train", 2 * a.meta_batch, a.meta_batch))
    resumed = make_tagged_env(seed=3)
    resumed.load_state_dict({"iteration": 2})
    assert_same(resumed.step(), seq_a[2])
    resumed.iteration = 0
    assert_same(resumed.step(), seq_a[0])
    assert not torch.equal(seq_a[0].support_x, seq_a[1].support_x)


@pytest.mark.parametrize("ways,shots,query", [(5, 1, 7), (3, 4, 6), (12, 5, 5)])
def test_labels_are_relabelled_and_sets_disjoint(ways, shots, query):
    env = make_tagged_env(ways=ways, shots=shots, query=query)
    episode = env.episodes("train", 0, 6)
    assert episode.support_x.shape == (6, ways * shots, 1, 4, 4)
    assert episode.query_x.shape == (6, ways * query, 1, 4, 4)
    assert episode.support_x.dtype == torch.float32 and episode.support_y.dtype == torch.int64
    for t in range(len(episode)):
        task = episode.task(t)
        sy, qy = task.support_y[0], task.query_y[0]
        assert sorted(sy.tolist()) == sorted(list(range(ways)) * shots)
        assert sorted(qy.tolist()) == sorted(list(range(ways)) * query)
        s_class, s_example = tags(task.support_x[0])
        q_class, q_example = tags(task.query_x[0])
        classes = []
        for label in range(ways):
            cls = set(s_class[sy == label].tolist()) | set(q_class[qy == label].tolist())
            assert len(cls) == 1, "support and query of one label must share one class"
            classes += list(cls)
            seen = s_example[sy == label].tolist() + q_example[qy == label].tolist()
            assert len(seen) == len(set(seen)) == shots + query, "examples must not repeat"
        assert len(set(classes)) == ways, "the N classes must be distinct"


def test_label_order_follows_the_draw_not_the_class_index():
    env = make_tagged_env(ways=5, shots=1, query=1)
    episode = env.episodes("train", 0, 20)
    class_of_label = tags(episode.support_x)[0]  # [T, N]: support is class-major, label j at j
    assert torch.equal(episode.support_y, torch.arange(5).expand(20, 5))
    ordered = [bool((row[1:] > row[:-1]).all()) for row in class_of_label]
    assert not all(ordered), "labels must follow the random draw, not sorted class indices"


def test_episode_container():
    episode = make_tagged_env(meta_batch=5).episodes("train", 0, 5)
    assert len(episode) == 5
    assert episode.to("cpu").support_x.device.type == "cpu"
    assert episode.task(-1).support_x.shape[0] == 1
    assert_same(episode.task(4), episode.task(-1))
    parts = [episode.split(2, p) for p in range(2)]
    assert [len(p) for p in parts] == [3, 2]
    assert torch.equal(torch.cat([p.query_y for p in parts]), episode.query_y)
    with pytest.raises(ValueError):
        episode.split(6, 0)
    with pytest.raises(IndexError):
        episode.task(5)


def test_env_reports_kind_shape_and_betty_hooks():
    env = make_tagged_env()
    assert (env.task_kind == "classification" and env.input_shape == (1, 4, 4)
            and env.output_dim == 5)
    env.configure_distributed_training({"strategy": "default", "world_size": 1, "rank": 0,
                                        "local_rank": 0})
    env.configure_device("cpu")
    env.initialize()
    assert env.step().support_x.device.type == "cpu"


def test_sinusoid_tasks():
    env = make_env({"name": "sinusoid", "shots": 10, "query": 7, "meta_batch": 3, "ways": 5}, None,
                   seed=0)
    assert (env.task_kind == "regression" and env.input_shape == (1,) and env.ways == 1
            and env.output_dim == 1)
    episode = env.step()
    assert episode.support_x.shape == episode.support_y.shape == (3, 10, 1)
    assert episode.query_x.shape == (3, 7, 1) and episode.query_y.dtype == torch.float32
    assert float(episode.support_x.abs().max()) <= 5.0
    sampler = SinusoidSampler()
    for t in range(3):
        amplitude, phase = sampler.function(task_generator(0, "train", t))
        assert 0.1 <= amplitude <= 5.0 and 0.0 <= phase <= math.pi
        expected = amplitude * torch.sin(episode.query_x[t] - phase)
        torch.testing.assert_close(episode.query_y[t], expected)
    again = make_env({"name": "sinusoid", "shots": 10, "query": 7, "meta_batch": 3}, None, seed=0)
    assert_same(again.step(), episode)
    assert not torch.equal(again.step().support_y, episode.support_y)


def test_train_query_applies_to_meta_training_episodes_only():
    pools = {split: ClassTaskSampler(tagged_pool()) for split in ("train", "validation", "test")}
    env = MAMLEnv(pools, 5, 2, 3, meta_batch=4, seed=0, train_query=1)
    train = env.step()
    assert train.query_x.shape[1] == 5 * 1 and train.support_x.shape[1] == 5 * 2
    assert set(train.query_y[0].tolist()) == set(range(5))
    for split in ("validation", "test"):
        assert env.episodes(split, 0, 2).query_x.shape[1] == 5 * 3
    assert make_tagged_env().step().query_x.shape[1] == 5 * 3   # default: data.query everywhere
