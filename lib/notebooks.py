"""A notebook's parameters, its typed settings and its profiles, for the runner and for studies
that reuse another study's runs.

A notebook names its settings class in its metadata, `"seqlab": {"settings":
"lib.studies.selective_copy:Settings"}`: a lib.studies.StudySettings whose fields are every
parameter of the notebook's cell tagged `parameters` (that cell holds the notebook's own
defaults). A config is loaded with that class before any kernel starts: unknown keys, types,
ranges and names (bodies, tasks, the runs `steps_for` caps) are one-line errors naming the key.
A notebook without a class (none should lack one) is checked against its cell's defaults: keys
and types only. A profile is configs/<notebook>/<profile>.yml, whose `base:` chain is resolved
(lib.config.read_config).
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import nbformat

from lib.config import ConfigError, check_parameters, check_values, read_config
from lib.device import check_compile_key, pick
from lib.paths import CONFIGS, NOTEBOOKS
from lib.procs import check_reachable
from lib.studies import StudySettings


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


def settings_class(nb_path: Path) -> type[StudySettings] | None:
    """The typed settings class a notebook names in its metadata (None if it names none)."""
    ref = read_notebook(nb_path).metadata.get("seqlab", {}).get("settings")
    if not ref:
        return None
    module, _, name = str(ref).partition(":")
    where = f"{nb_path.name}: metadata seqlab.settings = {ref!r}"
    if not module.startswith("lib.studies.") or not name.isidentifier():
        raise ConfigError(f"{where}; expected 'lib.studies.<module>:<class>'")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{where}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, StudySettings)):
        raise ConfigError(f"{where} is not a lib.studies.StudySettings")
    return cls


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
    """Every parameter of a notebook with its default: the settings class' fields, then its cell."""
    settings = settings_class(nb_path)
    default = lambda f: f.default_factory() if f.default is dataclasses.MISSING else f.default
    shared = {f.name: default(f) for f in dataclasses.fields(settings)} if settings else {}
    return {**shared, **cell_parameters(nb_path)}


def load_settings(params: dict, nb_path: Path, where: str) -> StudySettings | None:
    """A config (notebook parameters) loaded with the notebook's settings class, on top of the
    notebook's defaults: every number finite and in range, known keys, the class' types, ranges and
    names. None for a notebook without a class, whose config is checked against its cell's defaults."""
    check_values(params, where=where)
    cls = settings_class(nb_path)
    if cls is None:
        check_parameters(params, cell_parameters(nb_path), where=where)
        return None
    names = cls.names()
    if bad := sorted(set(params) - names):
        raise ConfigError(f"{where}: unknown key(s) {bad}; the notebook's parameters are {sorted(names)}")
    merged = {**parameters_of(nb_path), **params}
    return cls.load({k: v for k, v in merged.items() if k in names}, where=where)


def validate(params: dict, nb_path: Path, where: str) -> StudySettings | None:
    """Check a config against the notebook before any kernel starts (load_settings), and what
    this machine must offer it: the device, and a Ray cluster's address."""
    settings = load_settings(params, nb_path, where)
    view = settings.parameters() if settings is not None else {**cell_parameters(nb_path), **params}
    try:
        if isinstance(view.get("device"), str):
            pick(view["device"])
        if "compile" in view:  # auto | true | false
            check_compile_key(view["compile"])
        if view.get("backend") == "ray" and view.get("ray_address"):
            check_reachable(view["ray_address"])
    except (ValueError, ConnectionError) as e:
        raise ConfigError(f"{where}: {e}") from None
    return settings


def profile_parameters(notebook: str, profile: str) -> dict:
    """A notebook's parameters at a profile: its defaults, replaced by configs/<notebook>/<profile>.yml."""
    nb_path = notebook_path(notebook)
    params, _ = read_config(CONFIGS / notebook / f"{profile}.yml")
    validate(params, nb_path, where=f"configs/{notebook}/{profile}.yml")
    return {**parameters_of(nb_path), **params}


def profile_settings(notebook: str, profile: str) -> StudySettings:
    """A notebook's settings at a profile (its class, loaded from configs/<notebook>/<profile>.yml)."""
    nb_path = notebook_path(notebook)
    params, _ = read_config(CONFIGS / notebook / f"{profile}.yml")
    settings = load_settings(params, nb_path, where=f"configs/{notebook}/{profile}.yml")
    if settings is None:
        raise ConfigError(f"{notebook}: names no settings class in its metadata (seqlab.settings)")
    return settings
