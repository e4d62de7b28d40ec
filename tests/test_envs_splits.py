"""Held-out class splits: disjoint, seeded, by alphabet or character, rotations kept inside a
split."""

import pytest
import torch

from envs import DataOptions
from envs.glyphs import load_glyph_pool
from envs.held_out import held_out_samplers
from envs.omniglot import load_omniglot_pool
from envs.splits import SPLITS, split_keys, split_sizes


@pytest.fixture(scope="module")
def omniglot_pool(shared_data_root):
    return load_omniglot_pool(shared_data_root)


@pytest.fixture(scope="module")
def glyph_pool(shared_data_root):
    if not (shared_data_root / "glyphs" / "glyphs.npz").is_file():
        pytest.skip(f"no glyphs/glyphs.npz under {shared_data_root}")
    return load_glyph_pool(shared_data_root)


def base_name(name: str) -> str:
    return name.split("@rot")[0]


def split_sets(samplers, attr):
    return {s: set(getattr(samplers[s].pool, attr)) for s in SPLITS}


def assert_disjoint(sets: dict):
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not sets[a] & sets[b], f"{a} and {b} share {sorted(sets[a] & sets[b])[:3]}"


def test_split_keys_is_seeded_and_partitions():
    keys = [f"k{i}" for i in range(23)]
    a = split_keys(keys, (0.6, 0.2, 0.2), seed=0)
    assert a == split_keys(list(reversed(keys)), (0.6, 0.2, 0.2), seed=0)
    assert a != split_keys(keys, (0.6, 0.2, 0.2), seed=1)
    assert sorted(sum(a.values(), [])) == sorted(keys)
    assert [len(a[s]) for s in SPLITS] == [13, 5, 5]


@pytest.mark.parametrize("n", [3, 4, 8, 30, 141])
def test_every_split_gets_at_least_one_key(n):
    sizes = split_sizes(n, (0.6, 0.2, 0.2))
    assert sum(sizes) == n and min(sizes) >= 1


@pytest.mark.parametrize("rotations", ["none", "train", "all"])
def test_omniglot_alphabet_split_is_disjoint(omniglot_pool, rotations):
    samplers = held_out_samplers(omniglot_pool, DataOptions("omniglot", rotations=rotations),
                                 "omniglot")
    assert_disjoint(split_sets(samplers, "groups"))
    bases = {s: {base_name(n) for n in samplers[s].pool.names} for s in SPLITS}
    assert_disjoint(bases)
    assert sum(len(b) for b in bases.values()) == len(omniglot_pool)
    for split in SPLITS:
        rotated = rotations == "all" or (rotations == "train" and split == "train")
        assert len(samplers[split].pool) == len(bases[split]) * (4 if rotated else 1)


def test_omniglot_split_is_deterministic_and_seeded(omniglot_pool):
    def names(seed):
        return {s: p.pool.names for s, p in held_out_samplers(
            omniglot_pool, DataOptions("omniglot", split_seed=seed), "omniglot").items()}

    assert names(0) == names(0)
    assert names(0) != names(5)


def test_character_split_is_disjoint_and_mixes_alphabets(omniglot_pool):
    options = DataOptions("omniglot", split_by="character", rotations="all")
    samplers = held_out_samplers(omniglot_pool, options, "omniglot")
    bases = {s: {base_name(n) for n in samplers[s].pool.names} for s in SPLITS}
    assert_disjoint(bases)
    assert sum(len(b) for b in bases.values()) == len(omniglot_pool)
    groups = split_sets(samplers, "groups")
    assert groups["train"] & groups["test"], ("a character split should share alphabets across "
                                              "splits")
    assert abs(len(bases["train"]) / len(omniglot_pool) - 0.6) < 0.01


def test_rotated_classes_are_rotated_copies(omniglot_pool):
    samplers = held_out_samplers(omniglot_pool, DataOptions("omniglot", rotations="train"),
                                 "omniglot")
    pool = samplers["train"].pool
    n = len(pool) // 4
    assert pool.names[n] == pool.names[0] + "@rot90"
    original = pool.images[pool.rows[0]]
    torch.testing.assert_close(pool.images[pool.rows[n]], torch.rot90(original, 1, dims=(-2, -1)))


def test_glyph_alphabet_split_is_disjoint(glyph_pool):
    samplers = held_out_samplers(glyph_pool, DataOptions("glyphs", rotations="none"), "glyphs")
    groups = split_sets(samplers, "groups")
    assert_disjoint(groups)
    assert_disjoint(split_sets(samplers, "names"))
    assert sum(len(g) for g in groups.values()) == len(set(glyph_pool.groups))
    assert sum(len(samplers[s].pool) for s in SPLITS) == len(glyph_pool)
