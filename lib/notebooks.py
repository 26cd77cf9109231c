"""A notebook's parameters and profiles, for the runner and for studies that reuse another study's runs.

A notebook's parameters are the names its cell tagged `parameters` defines, plus, when its
metadata says `"seqlab": {"settings": "lib.studies.looped:Settings"}`, the fields of that typed
settings class: a family of notebooks that share runs (the looped studies) declares the shared
keys once, in lib, instead of in every notebook. A profile is configs/<notebook>/<profile>.yml,
whose `base:` chain is resolved (lib.config.read_config).
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import nbformat

from lib.config import Config, ConfigError, check_parameters, read_config
from lib.paths import CONFIGS, NOTEBOOKS


def notebook_path(name: str) -> Path:
    path = NOTEBOOKS / f"{name}.ipynb"
    if not path.is_file():
        known = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
        raise ConfigError(f"no notebook {name!r}; available: {known}")
    return path


def settings_class(nb_path: Path) -> type[Config] | None:
    """The typed settings class a notebook declares in its metadata (None if it declares none)."""
    ref = nbformat.read(nb_path, as_version=4).metadata.get("seqlab", {}).get("settings")
    if not ref:
        return None
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def cell_parameters(nb_path: Path) -> dict:
    """The defaults of the notebook's cell tagged 'parameters' (executed in an empty namespace)."""
    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ConfigError(f"{nb_path.name}: needs exactly one cell tagged 'parameters', found {len(cells)}")
    namespace: dict = {}
    exec(compile(cells[0].source, f"{nb_path.name}:parameters", "exec"), namespace)
    return {k: v for k, v in namespace.items() if not k.startswith("_")}


def parameters_of(nb_path: Path) -> dict:
    """Every parameter of a notebook with its default: the declared settings' fields, then its cell."""
    settings = settings_class(nb_path)
    shared = {f.name: f.default for f in dataclasses.fields(settings)} if settings else {}
    return {**shared, **cell_parameters(nb_path)}


def validate(params: dict, nb_path: Path, where: str) -> None:
    """Check a config against the notebook: known keys, the defaults' types, and the settings
    class' own ranges (so a negative step count fails here, before any kernel starts)."""
    check_parameters(params, parameters_of(nb_path), where=where)
    settings = settings_class(nb_path)
    if settings is not None:
        fields = {f.name for f in dataclasses.fields(settings)}
        settings.load({k: v for k, v in params.items() if k in fields}, where=where)
    for key in ("seeds", "sweep", "models"):
        if key in params and isinstance(params[key], list) and not params[key]:
            raise ConfigError(f"{where}: {key} is empty; give at least one")


def profile_parameters(notebook: str, profile: str) -> dict:
    """A notebook's parameters at a profile: its defaults, replaced by configs/<notebook>/<profile>.yml."""
    nb_path = notebook_path(notebook)
    params, _ = read_config(CONFIGS / notebook / f"{profile}.yml")
    validate(params, nb_path, where=f"configs/{notebook}/{profile}.yml")
    return {**parameters_of(nb_path), **params}
