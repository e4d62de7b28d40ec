"""Merges configs/defaults.yaml, configs/problems/<p>.yaml, configs/datasets/<d>.yaml, a user's
file and `section.key=value` overrides, in that order, into one mapping. Each layer is read as
YAML text and given the type defaults.yaml gives its key (so a bad value is reported with the
layer that set it); ranges and closed sets are checked once, when the mapping becomes typed
options (problems/options.py, configs/typed.py)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from configs.typed import ConfigError, quoted

HERE = Path(__file__).resolve().parent

#: Keys whose default is null but that take a value of this type.
NULLABLE = {"data_root": str, "out": str, "data.train_name": str, "data.train_extra": str,
            "data.train_query": int}


def _names(folder: str) -> list[str]:
    return sorted(p.stem for p in (HERE / folder).glob("*.yaml"))


def available_problems() -> list[str]:
    return _names("problems")


def available_datasets() -> list[str]:
    return _names("datasets")


#: Bounds on what a config file may be and expand to (aliases can make a few hundred bytes stand
#: for gigabytes); a real config is a few kilobytes and a few hundred values.
MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 10_000


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (YAML keeps the last one
    silently, so a repeated section would drop the first one's keys)."""


def _mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: key {quoted(key)} is given "
                              f"twice in one section (first on line {seen[key] + 1}); merge them "
                              "into one")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _count_values(data: Any, budget: int) -> int:
    """Values in `data` as it expands (a value reached twice through aliases counts twice);
    stops counting past `budget`."""
    count, stack = 0, [data]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


def safe_yaml(text: str, where: str) -> Any:
    """YAML text as plain data: no code, no duplicate keys, no expansion beyond MAX_VALUES."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(f"{where} is {len(text)} characters; a config is at most "
                          f"{MAX_FILE_BYTES}: pass a config file of settings, not data")
    loader = StrictLoader(text)  # a SafeLoader: builds plain data only
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise ConfigError(f"{where} expands to more than {MAX_VALUES} values (through YAML "
                          "aliases); write the settings out without nested aliases")
    return data


def read_yaml(path: Path) -> dict:
    try:
        raw = path.read_bytes()[:MAX_FILE_BYTES + 1]
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start}); "
                          "save it as UTF-8") from None
    try:
        data = safe_yaml(text, str(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if not str(err).startswith(str(path))
                          else str(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)}); "
                          "fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys, not {type(data).__name__}")
    return data


def _preset(folder: str, name: str, what: str) -> dict:
    options = _names(folder)
    if name not in options:
        raise ConfigError(f"unknown {what} {name!r}; choose one of: {', '.join(options)}")
    return read_yaml(HERE / folder / f"{name}.yaml")


def _user_file(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file} not found; pass the path of a YAML file with keys "
                          "from configs/defaults.yaml")
    return read_yaml(file)


def parse_override(text: str) -> tuple[str, Any]:
    """'inner.lr=0.1' -> ('inner.lr', 0.1); values are read as YAML scalars/lists."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. inner.lr=0.1), got {text!r}")
    try:
        parsed = safe_yaml(value, f"--set {key.strip()}") if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def _merge(base: dict, layer: dict, schema: dict, source: str, prefix: str = "") -> None:
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if key not in schema:
            if path in MOVED:
                raise ConfigError(f"config key {path!r} in {source} is now {MOVED[path]!r}; "
                                  f"write {MOVED[path]}")
            valid = ", ".join(f"{prefix}{k}" for k in schema)
            raise ConfigError(f"unknown config key {path!r} in {source}; valid keys here: {valid}")
        if isinstance(schema[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{path} in {source} must be a mapping of "
                                  f"{', '.join(schema[key])}, got {quoted(value)}")
            _merge(base[key], value, schema[key], source, path + ".")
        else:
            base[key] = _coerce(path, value, base[key], source)


def _coerce(path: str, value: Any, current: Any, source: str) -> Any:
    """`value` as the type `current` (the value the layers below gave this key) has."""
    expected = NULLABLE.get(path, type(current))
    if value is None and (current is None or path in NULLABLE):
        return None
    if expected is float and isinstance(value, str):  # YAML 1.1 reads "1e-6" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (expected is list and isinstance(value, list)
            and all(isinstance(v, (int, float)) for v in value)):
        value = [float(v) for v in value]
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        name = expected.__name__
        article = "an" if name[0] in "aeiou" else "a"
        raise ConfigError(f"{path}={quoted(value)} in {source} must be {article} {name} "
                          f"(before this setting it was {quoted(current)})")
    return value


#: Keys that choose the presets themselves: read before the layers, never merged as values.
PRESET_KEYS = ("problem", "dataset")


def _layer(values: dict[str, Any] | None,
           overrides: list[str] | None) -> dict[str, tuple[Any, str]]:
    """Flag values and --set strings as {dotted key: (value, where it came from)}."""
    layered = {key: (value, f"--{key}") for key, value in (values or {}).items()}
    for text in overrides or []:
        key, value = parse_override(text)
        layered[key] = (value, f"--set {key}")
    return layered


def _apply(cfg: dict, schema: dict, layered: dict[str, tuple[Any, str]]) -> None:
    for key, (value, source) in layered.items():
        nested: dict = {}
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        _merge(cfg, nested, schema, source)


def _choose(key: str, given: str | None, layered: dict, user: dict, config_file: str | None):
    """The problem or dataset: the flag, else --set, else the config file, else the default.
    Two flags that disagree are an error; a flag wins over the file."""
    from_set = layered.pop(key, (None, ""))[0]
    if given is not None and from_set is not None and given != from_set:
        raise ConfigError(f"--{key} {given} and --set {key}={from_set} disagree; give one of them")
    chosen = given if given is not None else from_set
    from_file = user.pop(key, None)
    if chosen is None and from_file is not None:
        chosen = from_file
    if chosen is None:
        return None
    if not isinstance(chosen, str):
        where = config_file if chosen is from_file else f"--set {key}"
        raise ConfigError(f"{key}={chosen!r} in {where} must be the name of a preset")
    return chosen


def merge_config(problem: str | None, dataset: str | None, overrides: list[str] | None = None,
                 values: dict[str, Any] | None = None, config_file: str | None = None) -> dict:
    """The merged config mapping for `problem` on `dataset` (problems.load_options checks it).
    `values` are already-parsed flag values (e.g. {'seed': 3}); `overrides` are raw `key=value`
    strings from --set; `config_file` is a user's YAML, applied after the presets and before
    flags. A problem or dataset left None comes from `--set problem=...`, then the config file's
    `problem:`, then defaults.yaml, so that none of them is ever silently ignored.

    A dataset preset may hold `for_problem: {<problem>: {...}}`: settings the protocol of that
    dataset prescribes for one problem (e.g. iMAML's inner step size on Omniglot)."""
    schema = read_yaml(HERE / "defaults.yaml")
    cfg = copy.deepcopy(schema)
    user = dict(_user_file(config_file)) if config_file else {}
    layered = _layer(values, overrides)
    problem = _choose("problem", problem, layered, user, config_file) or schema["problem"]
    dataset = _choose("dataset", dataset, layered, user, config_file) or schema["dataset"]
    _merge(cfg, _preset("problems", problem, "problem"), schema, f"configs/problems/{problem}.yaml")
    preset = dict(_preset("datasets", dataset, "dataset"))
    specific = preset.pop("for_problem", {}) or {}
    _merge(cfg, preset, schema, f"configs/datasets/{dataset}.yaml")
    if problem in specific:
        _merge(cfg, specific[problem], schema,
               f"configs/datasets/{dataset}.yaml for_problem.{problem}")
    if user:
        for_problem = user.pop("for_problem", None) or {}
        _merge(cfg, user, schema, config_file)
        if problem in for_problem:  # a protocol file may keep one method's own settings
            _merge(cfg, for_problem[problem], schema, f"{config_file} for_problem.{problem}")
    _apply(cfg, schema, layered)
    cfg["problem"], cfg["dataset"] = problem, dataset
    return cfg


def merge_more(cfg: dict, values: dict[str, Any] | None = None,
               overrides: list[str] | None = None, config_file: str | None = None) -> dict:
    """A copy of a merged config with more layers on top (e.g. settings changed on --resume)."""
    schema = read_yaml(HERE / "defaults.yaml")
    result = copy.deepcopy(cfg)
    if config_file:
        user = dict(_user_file(config_file))
        for_problem = user.pop("for_problem", None) or {}
        _merge(result, user, schema, config_file)
        if result.get("problem") in for_problem:
            _merge(result, for_problem[result["problem"]], schema,
                   f"{config_file} for_problem.{result['problem']}")
    _apply(result, schema, _layer(values, overrides))
    return result


#: Keys that moved, old dotted path -> new: earlier records are read under the new names, and a
#: layer that still writes an old name is told the new one.
MOVED = {f"inner.{old}": f"inner.implicit.{new}" for old, new in (
    ("lam", "lam"), ("solver", "solver"), ("solver_iters", "iters"), ("solver_tol", "tol"),
    ("damping", "damping"), ("power_iters", "power_iters"), ("neumann_alpha", "neumann_alpha"))}


def moved_keys(saved: dict) -> dict:
    """`saved` with keys an earlier version wrote under another name (MOVED) at their new place."""
    out = copy.deepcopy(saved)
    for old, new in MOVED.items():
        *old_path, old_key = old.split(".")
        node = out
        for part in old_path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_key not in node:
            continue
        value = node.pop(old_key)
        *new_path, new_key = new.split(".")
        target = out
        for part in new_path:
            target = target.setdefault(part, {})
        target.setdefault(new_key, value)
    return out


def with_defaults(saved: dict) -> dict:
    """A config recorded by an earlier version (a checkpoint, results.json), with keys that moved
    at their new place and every key added to defaults.yaml since then at its default: the run
    had no such setting, and the default is what the code did before the key existed."""
    saved = moved_keys(saved)

    def fill(node: dict, defaults: dict) -> dict:
        out = dict(node)
        for key, value in defaults.items():
            if key not in out:
                out[key] = copy.deepcopy(value)
            elif isinstance(value, dict) and isinstance(out[key], dict):
                out[key] = fill(out[key], value)
        return out
    return fill(saved, read_yaml(HERE / "defaults.yaml"))


def flat_items(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """{'inner.lr': 0.4, ...}: every leaf of a config by its dotted key."""
    items = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            items.update(flat_items(value, f"{prefix}{key}."))
        else:
            items[f"{prefix}{key}"] = value
    return items
