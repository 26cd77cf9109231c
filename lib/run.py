"""The runner: execute a notebook with a config through papermill and render its report.

    python -m lib.run selective_copy --config configs/selective_copy/cpu.yml [--retrain-stale]

writes reports/selective_copy.md (header: profile, device, torch, precision and compile as used,
git revision and the revisions its runs were trained at, date, wall time, the training minutes of
the runs shown, trained now / loaded, command), images/selective_copy/*.png and
reports/selective_copy.csv. The profile is where the config lies, configs/<notebook>/<profile>.yml,
or --profile; a config elsewhere has none. Only the cpu, gpu and paper profiles write into the
repository's reports/ and images/; any other profile, and a config without one, writes under
scratch/ or --out, never into the repository's reports/. Everything is built in a temporary folder
and moved into place only when the notebook ran through and produced figures: a failure leaves the
previous report untouched. Bad input (notebook name, config path, unknown key, wrong type, out of
range, NaN, an unusable --out or temporary folder) is a one-line error and exit code 2, before any
kernel starts (the notebook's settings class, lib.notebooks); a failing notebook, or a report that
cannot be written, exits with 1. The processes, signals and locks are lib.procs'.

A config's `backend: ray` (with `ray_address` for a cluster, `gpus_per_run`) trains the notebook's
missing runs as Ray tasks, on a local Ray or on that cluster; every worker must see the checkpoint
folder (SEQLAB_CHECKPOINTS). Any notebook's settings carry these keys (lib.studies.StudySettings).
"""
from __future__ import annotations

import base64
import datetime as dt
import errno
import os
import platform
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from lib import provenance
from lib.config import ConfigError, OneLineParser, read_config
from lib.notebooks import load_settings, notebook_path, validate
from lib.paths import CHECKPOINTS, CONFIGS, IMAGES, NOTEBOOKS, REPORTS, ROOT, git_revision
from lib.procs import Terminated, environment, execute, locked, signals_raise
from lib.report import OUT_ENV

REPORT_PROFILES = ("cpu", "gpu", "paper")  # profiles whose reports are committed; others go to scratch/
SCRATCH = ROOT / "scratch"
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def render(nb, name: str, header: str, images_dir: Path, show_code: bool) -> tuple[str, int]:
    """Executed notebook -> Markdown. Figures go to images_dir; stderr (progress bars) is dropped."""
    parts, n_figures = [header], 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code" or "injected-parameters" in cell.metadata.get("tags", []):
            continue
        if show_code and cell.source.strip():
            parts.append(f"```python\n{cell.source}\n```")
        for j, out in enumerate(cell.get("outputs", [])):
            if out.output_type == "stream":
                if out.name == "stdout" and out.text.strip():
                    parts.append(f"```\n{out.text.rstrip()}\n```")
            elif out.output_type in ("display_data", "execute_result"):
                data = out.get("data", {})
                if "image/png" in data:
                    stem = out.get("metadata", {}).get("filename") or f"cell{i}-{j}"
                    (images_dir / f"{stem}.png").write_bytes(base64.b64decode(data["image/png"]))
                    parts.append(f"![{stem}](../images/{name}/{stem}.png)")
                    n_figures += 1
                elif "text/markdown" in data:
                    parts.append(data["text/markdown"])
                elif "text/plain" in data:
                    parts.append(f"```\n{data['text/plain']}\n```")
            elif out.output_type == "error":
                parts.append(f"```\n{out.ename}: {out.evalue}\n```")
    return "\n\n".join(parts) + "\n", n_figures


def _counts(d: dict) -> str:
    return ", ".join(f"{k} ({v})" if len(d) > 1 else str(k) for k, v in d.items()) or "—"


def header(name: str, profile: str, config: Path, params: dict, overrides: dict, command: str, wall: float, revision: str,
           started: str, runs: dict) -> str:
    import torch

    from lib.device import describe

    rows = {
        "profile": f"`{profile}` ({config.relative_to(ROOT) if config.is_relative_to(ROOT) else config})",
        "device": describe(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "precision / compile": f"{_counts(runs['precision'])} / compile {_counts(runs['compile'])}" if runs["runs"] else "—",
        "git revision": revision,
        "runs trained at": _counts(runs["revisions"]) if runs["runs"] else "—",
        "date": started,
        "wall time": f"{wall / 60:.1f} min",
        "training minutes": (f"{runs['train_minutes']:.1f} min over the {runs['runs']} runs shown "
                             f"({runs['trained_now']} trained now: {runs['train_minutes_now']:.1f} min; {runs['loaded']} loaded "
                             "from checkpoints)") if runs["runs"] else "no training",
        "stop reasons": _counts(runs["stop_reasons"]) if runs["runs"] else "—",
        "command": f"`{command}`",
    }
    table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())
    warning = ""
    if runs["stale"]:
        listed = "\n".join(f"- `{run}`: {', '.join(f'`{f}`' for f in files)}" for run, files in sorted(runs["stale"].items()))
        warning = (f"\n\n> **Warning: {len(runs['stale'])} run(s) were trained at a revision whose code differs from this "
                   "checkout** ('?' = revision unknown here). Their numbers may not be what the current code would give; "
                   f"rerun with `--retrain-stale` to retrain them.\n\n{listed}")
    cfg = "\n".join(f"{k}: {v!r}" + (f"  # base: {overrides[k][0]!r}" if k in overrides else "") for k, v in params.items())
    return (
        f"<!-- Generated by lib.run from notebooks/{name}.ipynb; do not edit by hand. -->\n\n"
        f"**Report `{name}`**\n\n{table}{warning}\n\n<details><summary>parameters from the config</summary>\n\n"
        f"```python\n{cfg}\n```\n</details>"
    )


def dry_run(params: dict, nb_path: Path, where: str = "config") -> dict:
    """The parameters of a dry run of this profile (--dry-run): its shapes and code paths with the
    amount of work cut to a few steps, one seed and a couple of runs of each sweep, on the CPU. The
    notebook's settings class says what to cut (StudySettings.dry_run); the keys it changes are
    added to the config's."""
    local = {**params, "device": "cpu"} if params.get("device") == "cuda" else params  # a gpu profile, dry on any machine
    settings = load_settings(local, nb_path, where)
    if settings is None:
        raise ConfigError(f"--dry-run: notebook {nb_path.stem} names no settings class in its metadata (seqlab.settings), "
                          "so nothing says how to cut its work")
    before, after = settings.parameters(), settings.dry_run().parameters()
    return {**local, **{k: v for k, v in after.items() if v != before[k]}}


def profile_of(name: str, config: Path, explicit: str | None = None) -> str | None:
    """The profile a report is written for: --profile when given, else the config's place,
    configs/<notebook>/<profile>.yml; None for a config anywhere else (its file name says nothing)."""
    if explicit is not None:
        if not PROFILE_NAME.fullmatch(explicit):
            raise ConfigError(f"--profile {explicit!r}: a profile is a plain name of letters, digits, '-' and '_' (e.g. cpu, gpu, smoke)")
        return explicit
    try:
        rel = config.resolve().relative_to(CONFIGS.resolve())
    except (OSError, ValueError):
        return None
    return config.stem if rel.parts == (name, config.name) and config.suffix in (".yml", ".yaml") else None


def out_folder(out: Path | None, profile: str | None, dry: bool) -> Path:
    """Where the report goes: --out, else the repository for the committed profiles and scratch/ for
    the rest. The repository's own reports/ take only the committed profiles, dry runs excluded."""
    if out is None:
        return SCRATCH / "dry-run" if dry else ROOT if profile in REPORT_PROFILES and not dry else SCRATCH
    out = Path(out)
    try:
        into_repo = out.resolve() == ROOT.resolve()
    except OSError:
        into_repo = False
    if into_repo and (dry or profile not in REPORT_PROFILES):
        what = "a dry run" if dry else f"profile {profile!r}" if profile else "a config outside configs/<notebook>/ (no profile)"
        raise ConfigError(f"--out {out}: the repository's reports/ take only the {', '.join(REPORT_PROFILES)} profiles, "
                          f"not {what}; give another --out (or --profile for a config elsewhere)")
    return out


def check_out(out: Path) -> None:
    """--out must be a folder we can write reports/ and images/ into: checked before the notebook runs."""
    try:
        for folder in (out, out / REPORTS.name, out / IMAGES.name):
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"--out: {folder} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".seqlab-probe-", delete=True)
        probe.close()
    except OSError as e:
        raise ConfigError(f"--out: cannot write to {_short(out)} ({e.strerror or e})") from None


def _short(path: Path, keep: int = 80) -> str:
    text = str(path)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]} ({len(text)} characters)"


def scratch_folder(name: str) -> tempfile.TemporaryDirectory:
    """The temporary folder a run is built in, with a probe write: a full or unwritable TMPDIR is a
    one-line error before any kernel starts."""
    try:
        tmp = tempfile.TemporaryDirectory(prefix=f"seqlab-{name}-")
    except OSError as e:
        raise ConfigError(f"temporary folder: cannot create one in {tempfile.gettempdir()} ({e.strerror or e}); "
                          "free space there or set TMPDIR") from None
    try:
        (Path(tmp.name) / ".probe").write_bytes(b"\0" * 65536)
        (Path(tmp.name) / ".probe").unlink()
    except OSError as e:
        tmp.cleanup()
        raise ConfigError(f"temporary folder: cannot write to {tmp.name} ({e.strerror or e}); free space there or set TMPDIR") from None
    return tmp


def _reason(e: OSError) -> str:
    if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list) and e.args[0]:
        e = e.args[0][0][-1]  # copytree gathers (source, destination, why) per file; the first says it
        return "the disk is full" if "Errno 28" in str(e) else str(e)
    return "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))


def install(tmp: Path, name: str, md: str, out: Path) -> Path:
    """Move the report, its figures and its table into place together, under a lock. A failure while
    staging (a full disk) removes what was staged and replaces nothing: RuntimeError, one line."""
    reports, images = out / REPORTS.name, out / IMAGES.name
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    staged = images / f".{name}.new-{tag}"
    report_tmp = reports / f".{name}.md.{tag}.tmp"
    csv_tmp = reports / f".{name}.csv.{tag}.tmp"
    has_csv = (tmp / "results.csv").exists()
    try:
        reports.mkdir(parents=True, exist_ok=True)
        images.mkdir(parents=True, exist_ok=True)
        shutil.move(tmp / "images", staged)
        report_tmp.write_text(md)
        if has_csv:
            shutil.move(tmp / "results.csv", csv_tmp)
    except OSError as e:
        shutil.rmtree(staged, ignore_errors=True)
        report_tmp.unlink(missing_ok=True)
        csv_tmp.unlink(missing_ok=True)
        raise RuntimeError(f"cannot write the report of {name} into {out}: {_reason(e)}; the previous report is untouched") from None
    with locked(out):
        old = images / f".{name}.old-{tag}"
        if (images / name).exists():
            os.replace(images / name, old)
        os.replace(staged, images / name)
        shutil.rmtree(old, ignore_errors=True)
        if has_csv:
            os.replace(csv_tmp, reports / f"{name}.csv")
        else:  # a table from an earlier run would not belong to this report
            (reports / f"{name}.csv").unlink(missing_ok=True)
        os.replace(report_tmp, reports / f"{name}.md")
    return reports / f"{name}.md"


def _keep_failed(executed: Path, name: str) -> str:
    """A copy of a failed run's executed notebook that outlives the temporary folder (its path), or
    why there is none."""
    if not executed.exists():
        return "none written"
    try:
        fd, keep = tempfile.mkstemp(prefix=f"seqlab-failed-{name}-", suffix=".ipynb")
        os.close(fd)
        shutil.copy(executed, keep)
        return keep
    except OSError as e:
        return f"not kept: {e.strerror or e}"


def run(name: str, config: Path, show_code: bool = False, min_figures: int = 1, command: str = "", out: Path | None = None,
        retrain_stale: bool = False, dry: bool = False, profile: str | None = None) -> Path:
    nb_path = notebook_path(name)
    params, overrides = read_config(config)
    if dry:
        params = dry_run(params, nb_path, where=str(config))
    validate(params, nb_path, where=str(config))
    profile = profile_of(name, config, profile)
    out = out_folder(out, profile, dry)
    label = (profile or "none") + ("-dry-run" if dry else "")
    command = command or f"python -m lib.run {name} --config {config}"
    with scratch_folder(name) as tmp:
        check_out(out)
        tmp = Path(tmp)
        env = {OUT_ENV: str(tmp), "SEQLAB_HEADLESS": "1", provenance.RETRAIN_STALE_ENV: "1" if retrain_stale else "0"}
        revision, started = git_revision(), dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        t0 = time.perf_counter()
        with environment(env):  # for the child process and its kernel only; the caller's environment is restored
            failure = execute(nb_path, tmp / f"{name}.ipynb", params, cwd=NOTEBOOKS)
        if failure is not None:
            keep = _keep_failed(tmp / f"{name}.ipynb", name)
            cell_index, ename, evalue = failure
            if cell_index is None:
                raise RuntimeError(f"notebook {name} failed: {ename}: {evalue} (executed notebook: {keep})")
            executed = nbformat.read(tmp / f"{name}.ipynb", as_version=4)
            injected = [i for i, c in enumerate(executed.cells) if "injected-parameters" in c.metadata.get("tags", [])]
            cell = cell_index - sum(1 for i in injected if i < cell_index) + 1  # as numbered in notebooks/<name>.ipynb
            raise RuntimeError(f"notebook {name} failed in cell {cell} (counting all cells from 1): {ename}: {evalue} "
                               f"(executed notebook: {keep})")
        wall = time.perf_counter() - t0
        nb = nbformat.read(tmp / f"{name}.ipynb", as_version=4)
        (tmp / "images").mkdir()
        runs = provenance.summary(provenance.read_records(tmp))
        head = header(name, label, config.resolve(), params, overrides, command, wall, revision, started, runs)
        md, n_figures = render(nb, name, head, tmp / "images", show_code)
        if n_figures < min_figures:
            raise RuntimeError(f"notebook {name} produced {n_figures} figures (expected >= {min_figures}); no report written")
        return install(tmp, name, md, out)


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m lib.run", description="Run a notebook with a config and render its report.")
    ap.add_argument("notebook", help="notebook name in notebooks/, without .ipynb")
    ap.add_argument("--config", required=True, type=Path,
                    help="YAML of notebook parameters; configs/<notebook>/<profile>.yml names its profile")
    ap.add_argument("--profile", default=None,
                    help="the profile of a config kept elsewhere (cpu, gpu and paper write the repository's reports)")
    ap.add_argument("--show-code", action="store_true", help="include code cells in the report")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder that receives reports/ and images/ (default: the repository for the cpu, gpu and paper "
                         "profiles, scratch/ for any other)")
    ap.add_argument("--dry-run", action="store_true",
                    help="run the profile's shapes and code paths with a few steps, one seed and two runs per sweep, "
                         "on the CPU, into scratch/dry-run/ (checks a gpu profile on any machine)")
    ap.add_argument("--retrain-stale", action="store_true",
                    help="retrain the runs whose checkpoints were trained at a revision with other model/task/training code")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    started = time.time()
    # Ctrl-C, SIGTERM and SIGHUP unwind the same way: temporary folders are removed, the kernel is
    # shut down, its worker processes follow it.
    try:
        with signals_raise(CHECKPOINTS):
            report = run(args.notebook, args.config, args.show_code, command="python -m lib.run " + shlex.join(argv),
                         out=args.out, retrain_stale=args.retrain_stale, dry=args.dry_run, profile=args.profile)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as e:
        how = "interrupted" if getattr(e, "signum", signal.SIGINT) == signal.SIGINT else "terminated"
        print(f"\n{interrupted_message(started, how, runs=e.runs if isinstance(e, Terminated) else None)}", file=sys.stderr)
        return 130
    print(f"wrote {report}")
    return 0


def interrupted_message(since: float, how: str = "interrupted", runs: list[Path] | None = None) -> str:
    """One line: which run our processes were training (their run locks; else the newest checkpoint
    written since `since`) and the step a rerun resumes from."""
    candidates = [p for p in (runs or []) if p.exists()] or [
        p for p in CHECKPOINTS.glob("*/*.pt") if p.stat().st_mtime >= since and not runs]
    newest = max(candidates, key=lambda p: p.stat().st_mtime, default=None)
    if runs and newest is None:
        names = ", ".join(f"{p.parent.name}/{p.stem}" for p in runs)
        return f"{how} while training {names} before its first checkpoint; rerun the same command to start it again"
    if newest is None:
        return f"{how} before any checkpoint was written; rerun the same command to start again"
    try:
        import torch

        step = torch.load(newest, map_location="cpu", weights_only=True)["step"]
    except Exception:  # a checkpoint being replaced at this instant: name it without its step
        step = "?"
    return (f"{how} while training {newest.parent.name}/{newest.stem} (its last checkpoint: step {step}); "
            "rerun the same command to resume from there")


if __name__ == "__main__":
    sys.exit(main())
