"""Config and sampling errors: each a one-line DataError that names the valid values or the fix."""

from pathlib import Path

import numpy as np
import pytest

from envs import (DATASETS, ClassPool, ClassTaskSampler, DataError, MAMLEnv, make_env,
                  resolve_data_root)
from envs.sinusoid import SinusoidSampler


def error_of(data, root=None) -> str:
    with pytest.raises(DataError) as excinfo:
        make_env(data, root, seed=0)
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def test_unknown_dataset_lists_valid_names():
    message = error_of({"name": "imagenet-1k"})
    assert "imagenet-1k" in message and "data.name" in message
    for name in DATASETS:
        assert name in message
    assert "glyphs" in error_of({"name": "omniglot", "train_name": "glyph"})


@pytest.mark.parametrize("key,value,expect", [
    ("rotations", "trian", "train, all, none"),
    ("split_by", "font", "alphabet, character"),
    ("ways", 0, "integer >= 1"),
    ("shots", 1.5, "integer >= 1"),
    ("meta_batch", True, "integer >= 1"),
    ("split_fractions", [0.5, 0.5], "summing to 1"),
    ("split_fractions", [0.8, 0.2, 0.0], "positive"),
    ("download", "yes", "true or false"),
])
def test_bad_values_name_the_valid_ones(key, value, expect):
    message = error_of({"name": "sinusoid", key: value})
    assert f"data.{key}" in message and expect in message


def test_unknown_and_missing_keys():
    message = error_of({"name": "sinusoid", "shot": 5})
    assert "shot" in message and "shots" in message
    assert "data.name is missing" in error_of({"ways": 5})
    assert "mapping" in error_of(["omniglot"])


def test_sampler_errors_are_raised_at_construction():
    images = np.zeros((3 * 4, 1, 2, 2), dtype=np.uint8)
    pool = ClassPool.from_arrays(images, np.repeat(np.arange(3), 4), ["a", "b", "c"],
                                 origin="toy at /somewhere/toy.npz",
                                 fix_more_classes="use fewer ways")
    sampler = {"train": ClassTaskSampler(pool)}
    with pytest.raises(DataError,
                       match=r"toy at /somewhere/toy.npz: 4-way .* found 3; use fewer ways"):
        MAMLEnv(sampler, ways=4, shots=1, query=1)
    with pytest.raises(DataError, match=(r"/somewhere/toy.npz: class 'a' .* 4 examples.* "
                                         r"2\+3 = 5 .*lower data")):
        MAMLEnv(sampler, ways=2, shots=2, query=3)


def test_mixed_task_kinds_are_refused():
    pool = ClassPool.from_arrays(np.zeros((4, 1, 2, 2), np.uint8), [0, 0, 1, 1], ["a", "b"],
                                 origin="toy")
    with pytest.raises(DataError, match="train_name"):
        MAMLEnv({"train": ClassTaskSampler(pool), "test": SinusoidSampler()}, ways=2, shots=1,
                query=1)


def test_data_error_is_always_one_line():
    assert str(DataError("a\nb\t c")) == "a b c"


def test_resolve_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("METALEARN_DATA_ROOT", raising=False)
    assert resolve_data_root(None) == Path("data").resolve()
    monkeypatch.setenv("METALEARN_DATA_ROOT", str(tmp_path))
    assert resolve_data_root(None) == tmp_path.resolve()
    assert resolve_data_root(str(tmp_path / "x")) == (tmp_path / "x").resolve()
