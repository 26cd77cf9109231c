"""Where a run came from: the git revision it was trained at, whether the code it depends on has
changed since, and the record of every run a report shows.

A run's checkpoint is keyed by a hash of what changes its result (model, task and training
settings; not the device, precision or compile). The code is not in that hash: a fix to a model
would otherwise silently orphan every checkpoint. Instead each checkpoint keeps the revision it was
trained at, the report header lists those revisions, and `stale_files` names the files under
WATCHED that differ between a run's revision and the working tree, so a report can warn, and
`python -m lib.run ... --retrain-stale` retrains those runs.

Under the runner, `lib.train.train` appends one JSON line per run it trains or loads to
$SEQLAB_OUT/runs.jsonl (worker processes inherit the variable); `summary` turns those lines into
the header's rows.

A checkpoint also stores the identity of the run it holds (IDENTITY: study, run name, seed, hash):
loading it for a run compares that with the run asked for (`identity_mismatch`), so a checkpoint
that was renamed or swapped with another of the same shape is refused instead of reported under
the other run's name.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

from lib.paths import ROOT, git_revision

__all__ = ["git_revision", "stale_files", "record", "read_records", "summary", "identity_mismatch", "describe_run", "WATCHED",
           "RUNS_FILE", "IDENTITY"]

WATCHED = ("lib/models", "lib/tasks", "lib/train.py", "lib/data")  # the code a trained run depends on
RUNS_FILE = "runs.jsonl"
RETRAIN_STALE_ENV = "SEQLAB_RETRAIN_STALE"
IDENTITY = ("study", "run", "seed", "hash")  # what a checkpoint stores of the run it holds


def _changed(revision: str, root: str, paths: tuple[str, ...]) -> tuple[str, ...] | None:
    base = revision.removesuffix("+dirty")
    try:
        out = subprocess.run(["git", "diff", "--name-only", base, "--", *paths], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout, or a revision this clone does not have
    return tuple(sorted(line for line in out.stdout.splitlines() if line.strip()))


def stale_files(revision: str | None, root: Path = ROOT, paths: tuple[str, ...] = WATCHED) -> list[str]:
    """Files under `paths` that differ between `revision` and the working tree.

    An unknown revision (no git, a commit this clone lacks) gives ['?']: the run cannot be
    checked, which a report states rather than hides. A run trained from uncommitted changes
    ('+dirty') is compared with its base commit, so its own uncommitted edits count as changes.
    """
    if not revision or revision == "unknown":
        return ["?"]
    changed = _changed(revision, str(root), tuple(paths))
    return ["?"] if changed is None else list(changed)


def dependencies(*modules: str, root: Path = ROOT) -> list[str]:
    """The files under WATCHED that `modules` (dotted names, e.g. a model's and a task's) import,
    directly or through other lib modules, found statically (ast) so the answer does not depend
    on what else a process happened to import. lib/train.py is always included."""
    import ast

    def file_of(name: str) -> Path | None:
        base = root / Path(*name.split("."))
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand
        return None

    seen: set[str] = set()
    todo = [m for m in modules if m.startswith("lib")]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = file_of(name)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lib"):
                todo.append(node.module)
                todo += [f"{node.module}.{a.name}" for a in node.names]  # `from lib.models import gpt`
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("lib")]
    files = {str(p.relative_to(root)) for m in seen if (p := file_of(m))} | {"lib/train.py"}
    return sorted(f for f in files if any(f == w or f.startswith(w + "/") for w in WATCHED))


def stale_for(revisions: list[str], code: list[str] | None, changed=stale_files) -> list[str]:
    """The changed files (since any of `revisions`) among a run's `code` files (all WATCHED if unknown).
    `changed`: revision -> changed files (stale_files, or a memo of it over many runs)."""
    files = sorted({f for rev in revisions or ["unknown"] for f in changed(rev)})
    return files if code is None or files == ["?"] else [f for f in files if f in code]


def retrain_stale() -> bool:
    return os.environ.get(RETRAIN_STALE_ENV) == "1"


def revisions_of(saved: dict) -> list[str]:
    """The revisions a checkpoint's run was trained at (older checkpoints record only one)."""
    return saved.get("revisions") or [saved.get("git_revision", "unknown")]


def to_retrain(saved: dict, code: list[str] | None = None) -> list[str]:
    """Under --retrain-stale, the changed files that make this checkpoint's run stale (empty: keep it).
    `code`: the run's dependencies when the checkpoint predates recording them."""
    if not retrain_stale():
        return []
    return stale_for(revisions_of(saved), saved.get("code", code))


def record(row: dict) -> None:
    """Append one run's record to $SEQLAB_OUT/runs.jsonl (only under the runner)."""
    from lib.report import OUT_ENV

    out = os.environ.get(OUT_ENV)
    if not out:
        return
    if not Path(out).is_dir():  # a runner's folder that is gone (its run ended): nothing to record into
        return
    line = json.dumps(row, default=str) + "\n"
    fd = os.open(Path(out) / RUNS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:  # one write of one short line with O_APPEND: lines from several processes never interleave
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_records(folder: Path) -> list[dict]:
    path = Path(folder) / RUNS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def summary(records: list[dict]) -> dict:
    """Header facts from run records: one entry per checkpoint (a run trained in a worker and then
    loaded by the main process counts as trained now)."""
    runs: dict[str, dict] = {}
    for r in records:
        key = r.get("checkpoint") or r.get("desc")
        seen = runs.setdefault(key, {**r, "trained_now": False})
        seen.update({k: v for k, v in r.items() if k != "trained_steps"})
        seen["trained_now"] = seen["trained_now"] or r.get("trained_steps", 0) > 0
    rows = list(runs.values())
    revisions = Counter(rev for r in rows for rev in r.get("revisions") or ["unknown"])
    stale = {}
    changed = functools.lru_cache(maxsize=None)(stale_files)  # one `git diff` per revision, not per run
    for r in rows:
        files = stale_for(r.get("revisions") or ["unknown"], r.get("code"), changed)
        if files:
            stale[r.get("desc") or r.get("checkpoint")] = files
    now = [r for r in rows if r["trained_now"]]
    return {
        "runs": len(rows),
        "trained_now": len(now),
        "loaded": len(rows) - len(now),
        "train_minutes": sum(r.get("train_minutes", 0.0) for r in rows),
        "train_minutes_now": sum(r.get("train_minutes", 0.0) for r in now),
        "revisions": dict(revisions),
        "stale": stale,
        "stop_reasons": dict(Counter(r.get("stop_reason") or "unfinished" for r in rows)),
        "precision": dict(Counter(str(r.get("amp", "?")) for r in rows)),
        "compile": dict(Counter(str(r.get("compile", "?")) for r in rows)),
    }


def describe_run(identity: dict) -> str:
    """'study/run seed s (hash h)', the hash left out when not known."""
    hash_ = f" (hash {identity['hash']})" if identity.get("hash") else ""
    return f"{identity.get('study', '?')}/{identity.get('run', '?')} seed {identity.get('seed', '?')}{hash_}"


def _plain(value):
    """A config value as JSON sees it (tuples and lists alike), for comparing saved and asked configs."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def identity_mismatch(saved: dict, expected: dict) -> str | None:
    """How the run in checkpoint `saved` differs from the run asked for (None: it is that run).

    expected: the IDENTITY keys, plus 'model' (the model config as a dict) and 'train'
    (TrainConfig.identity()). A checkpoint written before identities were stored is judged by the
    config saved inside it, key by key where both sides have the key (a key added since is absent
    from the old file); the task's spec was not saved then, so two runs that differ only in it pass."""
    stored = saved.get("identity")
    if isinstance(stored, dict):
        if all(_plain(stored.get(k)) == _plain(expected.get(k)) for k in IDENTITY):
            return None
        return f"holds the run {describe_run(stored)}, not the run asked for, {describe_run(expected)}"
    config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    diffs = []
    for part in ("model", "train"):
        have, want = config.get(part), expected.get(part)
        if not isinstance(have, dict) or not isinstance(want, dict):
            continue
        diffs += [f"{part}.{k} = {_plain(have[k])!r} (asked {_plain(want[k])!r})" for k in sorted(have.keys() & want.keys()) if _plain(have[k]) != _plain(want[k])]
    if not diffs:
        return None
    return (f"holds another run than the one asked for, {describe_run(expected)}: its saved config has "
            f"{', '.join(diffs[:4])}{' ...' if len(diffs) > 4 else ''}")
