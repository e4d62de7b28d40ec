"""Typed options: one check per setting, closed sets taken from the registries, and the
dataclasses describing exactly the keys configs/defaults.yaml holds."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from configs import ConfigError, merge_config
from configs.loader import HERE
from envs import DataError, DataOptions
from problems.options import RunOptions, load_options


def keys_of(cls) -> dict:
    out = {}
    hints = __import__("typing").get_type_hints(cls)
    for field in dataclasses.fields(cls):
        sub = hints[field.name]
        out[field.name] = keys_of(sub) if dataclasses.is_dataclass(sub) else None
    return out


def keys_of_yaml(mapping: dict) -> dict:
    return {k: keys_of_yaml(v) if isinstance(v, dict) else None for k, v in mapping.items()}


def test_the_dataclasses_and_defaults_yaml_have_the_same_keys():
    defaults = yaml.safe_load((HERE / "defaults.yaml").read_text())
    assert keys_of(RunOptions) == keys_of_yaml(defaults)


def test_data_options_defaults_are_defaults_yaml():
    defaults = yaml.safe_load((HERE / "defaults.yaml").read_text())["data"]
    assert DataOptions(name=defaults["name"]).to_dict() == defaults


def test_options_round_trip_the_merged_config():
    merged = merge_config("mamlpp", "omniglot5w1s", ["inner.lr=0.2"])
    options = load_options("mamlpp", "omniglot5w1s", ["inner.lr=0.2"])
    assert options.to_dict() == merged
    assert RunOptions.parse(options.to_dict()) == options
    assert (options.inner.lr == 0.2
            and options.inner.mamlpp.msl_iters == merged["inner"]["mamlpp"]["msl_iters"])


@pytest.mark.parametrize("setting,needles", [
    ("inner.implicit.solver=lbfgs", ["inner.implicit.solver", "cg, neumann"]),
    ("inner.kind=bilevel", ["inner.kind", "unrolled, implicit, reptile"]),
    ("inner.vectorize=sometimes", ["inner.vectorize", "auto, always, never"]),
    ("model.backbone=resnet", ["model.backbone", "cnn4, mlp"]),
    ("outer.optimizer=rmsprop", ["outer.optimizer", "adam, sgd"]),
    ("outer.schedule=exponential", ["outer.schedule", "constant, cosine, linear, step"]),
    ("outer.schedule=step", ["outer.decay_every", ">= 1"]),
    ("outer.min_lr_ratio=2", ["outer.min_lr_ratio", "at most 1"]),
    ("device=tpu", ["device", "auto, cpu, cuda"]),
    ("inner.lr=0", ["inner.lr", "> 0"]),
    ("inner.steps=0", ["inner.steps", ">= 1"]),
    ("eval.steps=-1", ["eval.steps", ">= 0"]),
    ("eval.episodes=0", ["eval.episodes", ">= 1"]),
    ("inner.mamlpp.min_lr=-1", ["inner.mamlpp.min_lr", ">= 0"]),
    ("seed=-2", ["seed", ">= 0"]),
])
def test_each_rule_is_one_line_naming_the_valid_values(setting, needles):
    with pytest.raises(ConfigError) as caught:
        load_options("maml", "sinusoid", [setting])
    message = str(caught.value)
    assert "\n" not in message and all(n in message for n in needles), message


@pytest.mark.parametrize("setting,needles", [
    ("data.rotations=trian", ["data.rotations", "train, all, none"]),
    ("data.split_by=font", ["data.split_by", "alphabet, character"]),
    ("data.name=imagenet", ["data.name", "omniglot", "glyphs"]),
    ("data.ways=0", ["data.ways", ">= 1"]),
])
def test_data_rules_are_the_envs_own(setting, needles):
    with pytest.raises(DataError) as caught:
        load_options("maml", "sinusoid", [setting])
    assert all(n in str(caught.value) for n in needles), str(caught.value)


@pytest.mark.parametrize("registry,key,value", [
    ("envs.datasets:DATASETS", "data.name", "my-dataset"),
    ("hypergradient:SOLVERS", "inner.implicit.solver", "gmres"),
    ("problems.factory:LOWER_LEVELS", "inner.kind", "my-kind"),
    ("problems.factory:OUTER_OPTIMIZERS", "outer.optimizer", "lion"),
    ("models.factory:BACKBONES", "model.backbone", "resnet12"),
    ("inner_loop.executor:SETTINGS", "inner.vectorize", "threads"),
])
def test_a_closed_set_is_its_registry(monkeypatch, registry, key, value):
    """A value the registry gains is valid with nothing else edited; before, it is refused."""
    import importlib
    module_name, attr = registry.split(":")
    module = importlib.import_module(module_name)
    with pytest.raises((ValueError, DataError), match=key):
        load_options("maml", "sinusoid", [f"{key}={value}"])
    current = getattr(module, attr)
    grown = {**current, value: None} if isinstance(current, dict) else (*current, value)
    monkeypatch.setattr(module, attr, grown)
    options = load_options("maml", "sinusoid", [f"{key}={value}"])
    section = options
    for name in key.split("."):
        section = getattr(section, name)
    assert section == value


def test_replace_checks_again_and_leaves_the_original():
    options = load_options("maml", "sinusoid")
    changed = options.replace(**{"inner.lr": 0.5, "eval.steps": 3})
    assert (changed.inner.lr, changed.eval.steps) == (0.5, 3)
    assert options.inner.lr != 0.5
    with pytest.raises(ConfigError, match="inner.lr"):
        options.replace(**{"inner.lr": -1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.inner.lr = 2.0


def test_an_unknown_inner_optimizer_is_refused_when_the_options_are_built():
    from optimizers import OptimizerSpecError
    with pytest.raises(OptimizerSpecError, match="module:ClassName"):
        load_options("maml", "sinusoid", ["inner.optimizer=adamw"])
