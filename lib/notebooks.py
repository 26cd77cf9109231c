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

from lib.config import Config, ConfigError, check_parameters, check_values, expand, read_config
from lib.paths import CONFIGS, NOTEBOOKS
from lib.procs import check_reachable
from lib.studies import looped, selective_copy
from lib.sweep import check_seeds


def notebook_path(name: str) -> Path:
    """notebooks/<name>.ipynb for the bare name of a notebook there; anything else (a path, '..',
    a name with .ipynb) is refused with the names allowed."""
    known = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    if name not in known:
        raise ConfigError(f"no notebook {name!r}; available: {known}")
    return NOTEBOOKS / f"{name}.ipynb"


def read_notebook(nb_path: Path):
    """The notebook, or a one-line ConfigError naming the file when it is not a readable notebook."""
    try:
        return nbformat.read(nb_path, as_version=4)
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:  # JSON, nbformat's validation
        raise ConfigError(f"{nb_path}: not a readable notebook ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def settings_class(nb_path: Path) -> type[Config] | None:
    """The typed settings class a notebook declares in its metadata (None if it declares none)."""
    ref = read_notebook(nb_path).metadata.get("seqlab", {}).get("settings")
    if not ref:
        return None
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def cell_parameters(nb_path: Path) -> dict:
    """The defaults of the notebook's cell tagged 'parameters' (executed in an empty namespace)."""
    nb = read_notebook(nb_path)
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
    check_values(params, where=where)
    check_parameters(params, parameters_of(nb_path), where=where)
    settings = settings_class(nb_path)
    if settings is not None:
        fields = {f.name for f in dataclasses.fields(settings)}
        settings.load({k: v for k, v in params.items() if k in fields}, where=where)
    for key in ("seeds", "sweep", "models", "plain_seeds", "copy_seeds", "add_seeds", "length_seeds", "kinds", "curricula"):
        if key in params and isinstance(params[key], list) and not params[key]:
            raise ConfigError(f"{where}: {key} is empty; give at least one")
    for key, value in params.items():
        if key.endswith("seeds"):
            try:
                check_seeds(value, key)
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if "warmup" in key or key in ("seed", "min_lr_ratio", "weight_decay", "min_steps"):
            if value < 0:
                raise ConfigError(f"{where}: {key} = {value}; must be >= 0")
        elif key.endswith(("steps", "batch", "batch_size", "evals", "samples", "val_size", "resolution", "points", "workers", "n_docs")):
            if value < 1:
                raise ConfigError(f"{where}: {key} = {value}; must be >= 1")
        elif (key == "lr" or key.endswith("_lr")) and value <= 0:
            raise ConfigError(f"{where}: {key} = {value}; must be > 0")
    if isinstance(params.get("device"), str):
        from lib.device import pick

        try:
            pick(params["device"])
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    if params.get("backend") == "ray" and params.get("ray_address"):
        try:
            check_reachable(params["ray_address"])
        except ConnectionError as e:
            raise ConfigError(f"{where}: {e}") from None
    if "compile" in params:  # auto | true | false, checked here since a default of "auto" admits any string
        from lib.device import check_compile_key

        try:
            check_compile_key(params["compile"])
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    merged = {**parameters_of(nb_path), **params}
    if isinstance(merged.get("sweep"), (list, dict)):
        try:
            expand(merged["sweep"])
        except ConfigError as e:
            raise ConfigError(f"{where}: sweep: {e}") from None
    for needs, message in REQUIRES.get(nb_path.stem, []):
        if not needs(merged):
            raise ConfigError(f"{where}: {message}")
    build = MODEL_CONFIGS.get(nb_path.stem)
    if build is not None:
        try:
            build(merged)
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{where}: sweep: {e}") from None


def _has_inject(kind: str):
    return lambda p: any(run.get("inject") == kind for run in expand(p["sweep"]))


def _has_looped(p: dict) -> bool:
    return any(run.get("b", 1) > 1 for run in expand(p["sweep"]))


def _looped_configs(p: dict):
    return looped.model_configs(looped.settings(p), p["sweep"], p.get("mask_points"))


# Each notebook's model configs, built from its parameters before its kernel starts (a bad sweep
# entry is a one-line error then, not a failed cell).
MODEL_CONFIGS = {**{nb: _looped_configs for nb in looped.FAMILY}, "selective_copy": selective_copy.model_configs}

# What a notebook's question needs of its parameters, checked before its kernel starts.
REQUIRES = {
    "learnable_loop_lr": [(_has_inject("scalar"), "sweep needs a run with inject: scalar (the learnable scale this study is about)")],
    "loss_surface": [(lambda p: not p.get("large_run") or p["large_run"] in {c.name for c in _looped_configs(p)},
                      "large_run must name a run of the sweep")],
    "n_token_masking": [(_has_looped, "sweep needs a looped run (b > 1): only a looped model has a recurrent state to mask")],
    "small_lms": [(lambda p: p.get("prompt") != "", "prompt is empty; the samples need at least one character to start from")],
}


def profile_parameters(notebook: str, profile: str) -> dict:
    """A notebook's parameters at a profile: its defaults, replaced by configs/<notebook>/<profile>.yml."""
    nb_path = notebook_path(notebook)
    params, _ = read_config(CONFIGS / notebook / f"{profile}.yml")
    validate(params, nb_path, where=f"configs/{notebook}/{profile}.yml")
    return {**parameters_of(nb_path), **params}
