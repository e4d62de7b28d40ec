"""Typed options: every config section is a frozen dataclass, checked once when it is built, so
a setting is checked where it is declared and read as an attribute (`options.inner.lr`).

Each field states its rule beside its type (`option(at_least=1)`, `option(choices=...)`; a
closed set is the registry itself, passed as a zero-argument function so that a section can name
a registry of a layer that imports it). `Options.parse(mapping)` builds a section from the
merged YAML, one line naming the key and its valid values for anything wrong; `to_dict()` gives
back the plain mapping (checkpoints, results.json, hashing).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, ClassVar, Iterable


class ConfigError(ValueError):
    """A config the program cannot run; the message names the fix."""


def option(*, choices: Callable[[], Iterable] | None = None, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None,
           default: Any = dataclasses.MISSING) -> Any:
    """A field with its rule: `choices` (a function returning the registry), `at_least`
    (value >= it) or `above` (value > it)."""
    metadata = {"choices": choices, "at_least": at_least, "above": above, "at_most": at_most}
    return dataclasses.field(default=default, metadata=metadata)


def quoted(value: Any, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters: an error line never echoes a whole huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _shown(value: Any) -> str:
    return "null" if value is None else str(value)


def _type_name(kind: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


class Options:
    """Base of every typed section. `section`: its dotted path in the config ('' for the root);
    `error`: the exception its checks raise (envs raise their own DataError)."""

    section: ClassVar[str] = ""
    error: ClassVar[type[Exception]] = ConfigError

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Any) -> "Options":
        """The section built from a mapping: unknown keys, missing keys, types and rules are
        each one line that names the valid keys or values."""
        where = cls.section or "config"
        if isinstance(data, Options):
            data = data.to_dict()
        if not isinstance(data, dict):
            raise cls.error(f"config: the {where} section is {type(data).__name__}, not a mapping; "
                            f"write it as keys: {', '.join(cls.keys())}")
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise cls.error(f"config: unknown {where} keys {unknown}; valid keys are "
                            f"{', '.join(cls.keys())}")
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in data:
                if field.default is dataclasses.MISSING:
                    choices = field.metadata.get("choices")
                    valid = f" to one of {', '.join(map(_shown, choices()))}" if choices else ""
                    raise cls.error(f"config: {cls._key(field.name)} is missing; set it{valid}")
                continue
            value = data[field.name]
            sub = _options_class(hints[field.name])
            values[field.name] = sub.parse(value) if sub else value
        return cls(**values)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = self._typed(field.name, getattr(self, field.name), hints[field.name])
            object.__setattr__(self, field.name, value)
            self._check_rule(field, value)

    @classmethod
    def _key(cls, name: str) -> str:
        return f"{cls.section}.{name}" if cls.section else name

    def _fail(self, name: str, value: Any, must: str) -> None:
        raise self.error(f"config: {self._key(name)}={quoted(value)} {must}; "
                         f"fix {self._key(name)} in the config or --set {self._key(name)}=...")

    def _typed(self, name: str, value: Any, hint: Any) -> Any:
        """`value` as its annotated type (an int where a float is asked is a float; a list
        where a tuple is asked is a tuple); anything else is an error."""
        if _options_class(hint):
            if not isinstance(value, hint):
                self._fail(name, value, f"must be a {hint.__name__} section")
            return value
        args = typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", ())):
            if value is None and type(None) in args:
                return None
            hint = next(a for a in args if a is not type(None))
            args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple:  # tuple[float, ...]: a list of any length
            if not isinstance(value, (list, tuple)):
                self._fail(name, value, "must be a list")
            return tuple(self._typed(name, v, args[0]) for v in value)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            self._fail(name, value, f"must be {_type_name(hint)}{self._rule_text(name)}")
        if hint is float and not math.isfinite(value):
            self._fail(name, value, "must be a finite number")
        return value

    def _rule_text(self, name: str) -> str:
        rule = next(f.metadata for f in dataclasses.fields(self) if f.name == name)
        most = f" and <= {rule['at_most']}" if rule.get("at_most") is not None else ""
        if rule.get("at_least") is not None:
            return f" >= {rule['at_least']:g}{most}"
        return (f" > {rule['above']:g}" if rule.get("above") is not None else "") + most

    def _check_rule(self, field: dataclasses.Field, value: Any) -> None:
        rule = field.metadata
        if value is None:
            return
        if rule.get("choices") is not None:
            allowed = list(rule["choices"]())
            if value not in allowed:
                self._fail(field.name, value,
                           f"is not valid; choose one of: {', '.join(map(_shown, allowed))}")
        low, above, most = rule.get("at_least"), rule.get("above"), rule.get("at_most")
        if ((low is not None and value < low) or (above is not None and not value > above)
                or (most is not None and value > most)):
            self._fail(field.name, value,
                       f"must be {_type_name(type(value))}{self._rule_text(field.name)}")

    # ---- reading ----------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        """The plain mapping (lists for tuples), as YAML and JSON hold it."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Options):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def replace(self, **changes: Any) -> "Options":
        """A copy with `changes` (dotted keys for subsections: {'inner.lr': 0.1}), checked again."""
        data = self.to_dict()
        for key, value in changes.items():
            node, parts = data, key.split(".")
            for part in parts[:-1]:
                node = node[part]
            if parts[-1] not in node:
                raise self.error(f"config: unknown key {key!r}")
            node[parts[-1]] = value.to_dict() if isinstance(value, Options) else value
        return type(self).parse(data)


def _options_class(hint: Any) -> type | None:
    return hint if isinstance(hint, type) and issubclass(hint, Options) else None
