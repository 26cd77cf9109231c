"""Process plumbing for the runner and the sweeps: the papermill child that owns a notebook's kernel,
signals, run locks and folder locks, and what Linux's /proc says about processes.

Nothing here knows about reports or models. The guarantees:
- every process we start (the papermill child, the sweep workers) dies when the process that started
  it dies, even by SIGKILL (PR_SET_PDEATHSIG, plus a thread that polls the parent's PID where prctl
  is missing); the kernel below the papermill child exits with it through ipykernel's own parent
  poller (JPY_PARENT_PID), and the workers below the kernel through their own guard;
- a run lock names its holder by PID and start time, so a PID reused by an unrelated process after
  the holder died is recognised as stale instead of waited for.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

# The runner unwinds on these the same way: Ctrl-C, a scheduler's SIGTERM, a closed terminal.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


# ---- /proc ---------------------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, first)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def state(pid: int) -> str:
    """The process state letter (R, S, Z, ...); 'X' when there is no such process."""
    fields = _stat(pid)
    return fields[0] if fields else "X"


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); with the
    PID it names one process for the machine's uptime, whereas a PID alone is reused."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def _started_at(pid: int) -> float | None:
    """The process' start as a Unix time (boot time + start ticks), None if unknown."""
    ticks = start_time(pid)
    if ticks is None:
        return None
    try:
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    """Is there a process with this PID (a zombie counts as gone)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return state(pid) != "Z"


def descendants(pid: int) -> set[int]:
    """PIDs of every process below `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def stop(pid: int, grace: float = 20.0) -> None:
    """SIGTERM a process and everything below it, then SIGKILL what is left after `grace` seconds."""
    tree = descendants(pid) | {pid}
    for p in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.2)
    for p in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)


def die_with_parent(parent: int | None = None) -> None:
    """Make this process end when its parent ends (SIGKILL, SIGTERM, a crash), so no orphan keeps
    training and holding run locks. Linux: PR_SET_PDEATHSIG; elsewhere, and as a second guard, a
    thread that polls the parent's PID. `parent`: the PID the caller expects as parent (if it is
    already gone, exit at once)."""
    parent = os.getppid() if parent is None else parent
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the guard was in place
        os._exit(1)

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


# ---- locks ---------------------------------------------------------------------------------------

def lock_record() -> str:
    """What a run lock holds: our PID and our start time."""
    return f"{os.getpid()} {start_time(os.getpid()) or 0}"


def lock_holder(lock: Path) -> int | None:
    """The PID of the live process that holds this run lock; None when the lock is free or stale
    (no file, unreadable, its process gone, or its PID now belongs to a process started later)."""
    try:
        text = lock.read_text().split()
        written = lock.stat().st_mtime
    except OSError:
        return None
    try:
        pid, started = int(text[0]), (int(text[1]) if len(text) > 1 else None)
    except (IndexError, ValueError):
        return None
    if pid <= 0 or not alive(pid):
        return None
    if started:  # the holder's start time is on record: the same PID with another start is someone else
        now = start_time(pid)
        return pid if now is None or now == started else None
    began = _started_at(pid)  # an older lock with only a PID: a process younger than the lock is not its holder
    return None if began is not None and began > written + 2.0 else pid


@contextlib.contextmanager
def run_lock(checkpoint: Path, poll: float = 2.0):
    """Hold <checkpoint>.lock (our PID and start time) while training a run. A lock held by a live
    process makes us wait for it (then the run is loaded, not trained twice), saying so on stderr,
    which reaches the runner's terminal from inside a kernel; a stale lock is reclaimed."""
    lock = checkpoint.with_name(checkpoint.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = lock_holder(lock)
            if pid is None or pid == os.getpid():
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            if not told:
                print(f"{checkpoint.name}: process {pid} is training this run; waiting for it to finish ({lock})",
                      file=sys.stderr, flush=True)
                told = True
            time.sleep(poll)
            continue
        os.write(fd, lock_record().encode())
        os.close(fd)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def training_now(checkpoints: Path) -> list[Path]:
    """The checkpoints under `checkpoints` whose run lock is held by this process or one below it."""
    ours = descendants(os.getpid()) | {os.getpid()}
    return [lock.with_suffix("") for lock in checkpoints.glob("*/*.pt.lock") if lock_holder(lock) in ours]


@contextlib.contextmanager
def locked(folder: Path):
    """An exclusive lock on the folder itself (flock on its descriptor): two runners never move
    files into place at once, and no lock file is left behind."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ---- signals -------------------------------------------------------------------------------------

class Terminated(BaseException):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread so that every `finally` and context
    manager runs. `runs`: the checkpoints our own processes were training when the signal came."""

    def __init__(self, signum: int, runs: list):
        super().__init__(signum)
        self.signum, self.runs = signum, runs


@contextlib.contextmanager
def signals_raise(checkpoints: Path):
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise Terminated (nbclient would swallow a
    plain KeyboardInterrupt); the previous handlers come back after."""
    def handler(signum, frame):
        raise Terminated(signum, training_now(checkpoints))

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ---- the papermill child -------------------------------------------------------------------------

@contextlib.contextmanager
def environment(values: dict):
    """Set environment variables for the duration of a block (for a child process and its kernel),
    then restore the previous ones."""
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _papermill_child(parent: int, nb_path: str, out_path: str, params: dict, cwd: str, results) -> None:
    """The child process that runs papermill (and owns the kernel): nbclient installs its own signal
    handlers, so the runner keeps signals to itself by not running it in its own process."""
    die_with_parent(parent)
    import papermill

    try:
        papermill.execute_notebook(nb_path, out_path, parameters=params, kernel_name="python3", cwd=cwd,
                                   progress_bar=False, log_output=False, stderr_file=sys.stderr)  # progress once, on stderr
        results.put(None)
    except papermill.PapermillExecutionError as e:
        results.put((e.cell_index, e.ename, str(e.evalue).splitlines()[0] if str(e.evalue) else ""))
    except Exception as e:  # a dead kernel, a papermill error
        results.put((None, type(e).__name__, str(e).splitlines()[0] if str(e) else ""))


def execute(nb_path: Path, out_path: Path, params: dict, cwd: Path):
    """Run the notebook in a child process; None on success, else (cell index or None, error name, message).
    On Terminated (or any exception) the child and everything below it (kernel, workers) is stopped
    before the exception goes on; if this process is killed outright, the child dies with it."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_papermill_child, args=(os.getpid(), str(nb_path), str(out_path), params, str(cwd), results),
                        daemon=False)
    child.start()
    try:
        while child.is_alive():
            child.join(timeout=0.5)
            if not results.empty():
                break
        outcome = results.get(timeout=30) if child.exitcode in (0, None) or not results.empty() else (None, "ChildDied", f"exit {child.exitcode}")
        child.join(timeout=30)
        return outcome
    except BaseException:
        stop(child.pid)
        raise


# ---- a cluster address ---------------------------------------------------------------------------

def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError (one line) unless a TCP connection to a Ray address ('host:port' or
    'ray://host:port') opens within `timeout` seconds. 'auto' and 'local' are left to Ray."""
    if address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ConnectionError(f"ray_address {address!r} is not 'host:port', 'ray://host:port' or 'auto'")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or errno.errorcode.get(e.errno or 0) or str(e))
        raise ConnectionError(f"ray_address {address!r}: cannot reach {host}:{port} within {timeout:g} s ({why})") from None
