"""Typed, frozen configs loaded from YAML or dicts, and the one sweep expander.

Every config in the project is a frozen dataclass that inherits `Config`:
`Cls.load(raw)` rejects unknown keys and wrong types with a one-line
`ConfigError` that names the key and the allowed keys/types, then the
dataclass' own `__post_init__` checks ranges.
"""
from __future__ import annotations

import argparse
import itertools
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """A bad config: the message is one line that names the offending key."""


def type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def matches(value: Any, tp: Any) -> bool:
    """Does `value` (from YAML/JSON) fit the annotation `tp`? int is accepted for float."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(matches(v, args[0]) for v in value) if args else isinstance(value, (list, tuple))
    if origin is dict:
        args = typing.get_args(tp)
        return isinstance(value, dict) and (not args or all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()))
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


@dataclass(frozen=True)
class Config:
    """Base for typed configs. Subclasses are `@dataclass(frozen=True)`."""

    @classmethod
    def load(cls, raw: Mapping[str, Any], *, where: str = "", label: str | None = None) -> "Config":
        """`label` names the config in an error (default: the class name; '' for none, when `where`
        already says what the keys belong to)."""
        label = cls.__name__ if label is None else label
        prefix = f"{where}: " if where else ""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{prefix}{label or 'a config'} expects a mapping, got {type(raw).__name__}")
        known = {f.name for f in fields(cls)}
        if bad := sorted(set(raw) - known):
            raise ConfigError(f"{prefix}{label + ': ' if label else ''}unknown key(s) {bad}; allowed {sorted(known)}")
        hints = typing.get_type_hints(cls)
        for key, value in raw.items():
            if not matches(value, hints[key]):
                raise ConfigError(
                    f"{prefix}{label + '.' if label else ''}{key} = {value!r} ({type(value).__name__}); expected {type_name(hints[key])}"
                )
        try:
            return cls(**raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{prefix}{label + ': ' if label else ''}{e}") from None

    @classmethod
    def sweep(cls, sweep: Any, **shared: Any) -> list:
        """One validated config per run of `expand(sweep)`, each on top of the `shared` values."""
        return [cls.load({**shared, **run}, where=f"sweep[{i}]") for i, run in enumerate(expand(sweep))]


def expand(sweep: Any) -> list[dict]:
    """Expand a sweep into a list of run dicts.

    A sweep is a dict (one run), a `{"grid": {key: [values]}}` (cartesian product,
    keys in the order given), or a list mixing both:

    >>> expand([{"layers": 6}, {"grid": {"layers": [8, 12], "kernel_size": [9]}}])
    [{'layers': 6}, {'layers': 8, 'kernel_size': 9}, {'layers': 12, 'kernel_size': 9}]
    """
    if isinstance(sweep, list):
        return [run for item in sweep for run in expand(item)]
    if not isinstance(sweep, dict):
        raise ConfigError(f"sweep entry must be a dict or a list, got {type(sweep).__name__}: {sweep!r}")
    if "grid" not in sweep:
        return [dict(sweep)]
    if set(sweep) != {"grid"} or not isinstance(sweep["grid"], dict):
        raise ConfigError(f"a grid entry is {{'grid': {{key: [values]}}}} alone, got {sweep!r}")
    grid = sweep["grid"]
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid key {key!r} needs a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


MAX_VALUES = 100_000  # values in one config file once its YAML aliases are expanded
MAX_BASE_DEPTH = 32  # files in one `base:` chain
MAX_STEPS = 10**9  # a step cap beyond this is years of training at any size this project runs
INT64 = (-(2**63), 2**63 - 1)  # what torch (seeds, counts) can hold


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, but 3e-3 (no dot) is a float, as a Python reader expects, and
    the document is checked before anything is built from it (_check_document)."""

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _check_document(node)
        return node


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _check_document(root: yaml.Node) -> None:
    """Raise ConfigError for a key given twice in one mapping (instead of silently keeping the
    last), a key that is not a string, an alias inside the value it names, or more than MAX_VALUES
    values once the aliases are expanded (a 'billion laughs' bomb). Merge keys (`<<: *base`) are
    fine. Each node is visited once, so a bomb is measured without being expanded."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def check_keys(node: yaml.MappingNode) -> None:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"line {line}: a key is a {key_node.id}; keys are names")
            if key_node.tag != "tag:yaml.org,2002:str":
                raise ConfigError(f"line {line}: key {key_node.value!r} is not a name; keys are strings (quote it: '{key_node.value}')")
            if key_node.value in seen:
                raise ConfigError(f"line {line}: key {key_node.value!r} is given twice")
            seen.add(key_node.value)

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise ConfigError(f"line {node.start_mark.line + 1}: an alias refers to the value that contains it")
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            check_keys(node)
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise ConfigError(f"more than {MAX_VALUES:,} values once its aliases are expanded "
                                  "(an alias bomb?); a config is a few hundred values")
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


BASE_KEY = "base"  # a config may name another config whose keys it starts from


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{path}: values nested too deeply") from None
    if raw is None or raw == {}:
        raise ConfigError(f"{path}: empty config; pass the defaults explicitly or use smoke.yml")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of parameter names to values")
    return raw


def read_config(path: str | Path, _chain: tuple = ()) -> tuple[dict, dict]:
    """A config with its `base:` chain resolved, merged flat: (parameters, overrides).

    `base: ../looped/cpu.yml` (relative to this file) loads that config first; this file's keys
    then replace the base's. `overrides` maps each replaced key to (base value, new value), so a
    report can show what a study changed from its family's settings.
    """
    raw = read_yaml(path)
    path = Path(path).resolve()
    if path in _chain:
        raise ConfigError(f"{path}: base chain loops back to itself ({' -> '.join(p.name for p in _chain + (path,))})")
    if len(_chain) >= MAX_BASE_DEPTH:
        raise ConfigError(f"{_chain[0]}: base chain longer than {MAX_BASE_DEPTH} files (reached {path})")
    base_ref = raw.pop(BASE_KEY, None)
    if base_ref is None:
        return raw, {}
    if not isinstance(base_ref, str):
        raise ConfigError(f"{path}: base must be a path to another YAML, got {base_ref!r}")
    base, _ = read_config(path.parent / base_ref, _chain + (path,))
    overrides = {k: (base[k], v) for k, v in raw.items() if k in base and base[k] != v}
    return {**base, **raw}, overrides


def check_values(raw: Mapping[str, Any], *, where: str) -> None:
    """Every number in a config, however deep (sweep entries, model lists, task settings), is finite
    and fits in 64 bits; a step cap is at most MAX_STEPS. The error names the key's path."""
    def walk(value: Any, key: str, leaf: str) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {key} = {value}; must be a finite number")
        if isinstance(value, int):
            if leaf.endswith("steps") and value > MAX_STEPS:
                raise ConfigError(f"{where}: {key} = {_big(value)}; must be in [0, {MAX_STEPS:.0e}] (a step count)")
            if not INT64[0] <= value <= INT64[1]:
                raise ConfigError(f"{where}: {key} = {_big(value)}; must be in [-2**63, 2**63 - 1] (64-bit)")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}.{k}", "steps" if leaf == "steps_for" else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]", leaf)

    for k, v in raw.items():
        walk(v, str(k), str(k))


def _big(value: int) -> str:
    return str(value) if abs(value) < 10**12 else f"{value:.3g}"


def check_parameters(raw: Mapping[str, Any], defaults: Mapping[str, Any], *, where: str) -> None:
    """Check notebook parameters from a config against the notebook's defaults.

    Keys must exist in the notebook's `parameters` cell; a value must have the
    default's type (int for float is fine; a default of None accepts anything; a default
    of "auto", as in `compile = "auto"`, also accepts true and false).
    """
    if bad := sorted(set(raw) - set(defaults)):
        raise ConfigError(f"{where}: unknown key(s) {bad}; the notebook's parameters are {sorted(defaults)}")
    for key, value in raw.items():
        default = defaults[key]
        if default is None or (default == "auto" and isinstance(value, bool)):
            continue
        tp = float if isinstance(default, float) else type(default)
        if not matches(value, tp):
            raise ConfigError(f"{where}: {key} = {value!r} is {type(value).__name__}; expected {tp.__name__} like the default {default!r}")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line ("error: ...", exit 2), without the
    usage block, like every other input error of the project (--help still prints the usage)."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
