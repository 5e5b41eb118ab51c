"""The run folder: made or refused before a run starts, marked as asyncrl's, locked while a
run uses it, its config.yaml and eval.json, its checkpoints' names (latest, step-N, best,
final) and pruning, and what a resume loads from it.

A folder asyncrl makes holds `.asyncrl-run` (the marker, with its format version);
`--overwrite` removes only what asyncrl writes (RUN_ENTRIES) and only from a folder so
marked. The lock is the kernel's: `flock` on `.asyncrl-lock`, held by an open file for the
run's life, so a process that dies (even by SIGKILL) leaves nothing that blocks the next;
the holder's pid is written in the file for the message that refuses a second run."""
from __future__ import annotations

import errno
import fcntl
import fnmatch
import json
import os
import shutil
import sys
import time
import weakref
from typing import Callable, TypeVar

from .checkpoint import TMP_GLOB, prune_step_checkpoints, save_checkpoint, step_checkpoints, write_atomically
from .errors import CheckpointError, ConfigError, StorageError

T = TypeVar("T")

MARKER = ".asyncrl-run"
#: config.yaml's comment block of what each training session ran with (comments: not options)
PROVENANCE = "provenance"
PROVENANCE_NOTE = ("# asyncrl run configuration. What each training session in this folder ran with (versions,\n"
                   "# command line, host, git commit) is recorded in the comments below (asyncrl.run.read_config).\n")
MARKER_VERSION = 1
LOCK = ".asyncrl-lock"
#: everything asyncrl writes into a run folder (names and patterns): all that --overwrite removes
RUN_ENTRIES = ("config.yaml", "episodes.csv", "metrics.csv", "evaluations.csv", "faults.log", "eval.json",
               "learning_curve.png", "tb", "wandb", "checkpoints", "episodes.csv.after-*", "metrics.csv.after-*",
               "evaluations.csv.after-*", TMP_GLOB)


# --------------------------------------------------------------------------- the lock
class RunLock:
    """An exclusive flock on a run folder's .asyncrl-lock, held until release() (or until
    this process exits, however it exits). Forked children (hogwild workers, env
    subprocesses) close their copy of the file at once, so none of them keeps a dead
    run's folder locked."""

    _held: "weakref.WeakSet[RunLock]" = weakref.WeakSet()

    def __init__(self, run_dir: str, fd: int | None, created: bool = False):
        self.run_dir, self.fd, self.created = os.path.realpath(run_dir), fd, created
        if fd is not None:
            RunLock._held.add(self)

    def holds(self, run_dir: str) -> bool:
        return self.fd is not None and self.run_dir == os.path.realpath(run_dir)

    def release(self, undo: bool = False) -> None:
        """Unlock; `undo`: also remove the lock file if this lock created it (a run that was
        refused leaves nothing behind; lock_run_dir copes with a file removed under it)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        RunLock._held.discard(self)
        if undo and self.created:
            try:
                os.unlink(os.path.join(self.run_dir, LOCK))
            except OSError:
                pass
        os.close(fd)                    # closing the last descriptor releases the flock

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:               # at interpreter shutdown: the kernel releases it anyway
            pass

    @classmethod
    def _after_fork_in_child(cls) -> None:
        for lock in list(cls._held):    # close, never unlock: the parent's lock stays
            if lock.fd is not None:
                try:
                    os.close(lock.fd)
                except OSError:
                    pass
                lock.fd = None
        cls._held = weakref.WeakSet()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RunLock._after_fork_in_child)


def lock_run_dir(run_dir: str) -> RunLock:
    """Lock the (existing) run folder for this process, or ConfigError naming the process
    that holds it. Where the filesystem has no locks (some network filesystems) a warning
    says so and the run goes on unlocked."""
    path = os.path.join(run_dir, LOCK)
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            try:
                fd, created = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666), True
            except FileExistsError:
                fd, created = os.open(path, flags), False
        except FileNotFoundError:
            continue                    # removed between the two opens: try again
        except OSError as exc:
            raise ConfigError(f"cannot use run folder {run_dir!r}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {holder}" if holder else "another process"
                if holder == str(os.getpid()):
                    who += ": this process, another Agent, which holds it until its learn() ends"
                raise ConfigError(f"run folder {run_dir!r} is in use by another asyncrl run ({who}); wait for "
                                  f"it to end or choose another --run-dir") from None
            print(f"asyncrl: warning: cannot lock run folder {run_dir!r} ({exc.strerror or exc}); nothing "
                  f"stops a second run from writing it meanwhile", file=sys.stderr, flush=True)
            return RunLock(run_dir, None)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if not same:                    # the file was removed while we waited: lock the new one
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass                        # the pid is for messages only
        return RunLock(run_dir, fd, created)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


# --------------------------------------------------------------------------- making the folder
def is_marked(run_dir: str) -> bool:
    """The folder was made by asyncrl (it holds a readable .asyncrl-run)."""
    try:
        with open(os.path.join(run_dir, MARKER)) as fh:
            return fh.read(64).startswith("asyncrl-run")
    except (OSError, UnicodeDecodeError):
        return False


def mark_run_dir(run_dir: str) -> None:
    """Write the marker (a resumed folder from before markers existed gets one too)."""
    if not is_marked(run_dir):
        write_atomically(os.path.join(run_dir, MARKER),
                         f"asyncrl-run {MARKER_VERSION}\nThis folder was made by asyncrl; --overwrite removes only "
                         f"the files asyncrl writes.\n".encode())


def run_entries(run_dir: str) -> list[str]:
    """The entries of the folder that asyncrl writes (what --overwrite removes)."""
    return sorted(name for name in os.listdir(run_dir) if any(fnmatch.fnmatchcase(name, p) for p in RUN_ENTRIES))


def _special(run_dir: str) -> str | None:
    """What a folder that must never be a run folder is ('the root folder', ...), or None."""
    if run_dir.strip() == "~":
        return "the home folder"
    here = os.path.realpath(os.path.expanduser(run_dir))
    for name, folder in (("the root folder", os.path.abspath(os.sep)), ("the home folder", os.path.expanduser("~")),
                         ("the current folder", os.getcwd())):
        if here == os.path.realpath(folder):
            return name
    return None


def prepare_run_dir(run_dir: str, overwrite: bool) -> RunLock:
    """Make (or reuse) the run folder of a new run and lock it; ConfigError, with nothing
    changed, for a folder that must not be used. A folder that already holds a run is never
    reused silently: with `overwrite`, only what asyncrl wrote is removed, and only from a
    folder asyncrl marked; an unmarked folder that is not empty is refused; the root, home
    and current folders are refused."""
    special = _special(run_dir)
    if special:
        raise ConfigError(f"run folder {run_dir!r} is {special}; a run needs a folder of its own, such as runs/NAME")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"run folder {run_dir!r} exists and is not a folder")
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not is_marked(run_dir):
        how = ("so --overwrite deletes nothing in it" if overwrite else "so asyncrl will not write into it")
        old = all(os.path.exists(os.path.join(run_dir, n)) for n in ("config.yaml", "checkpoints"))
        hint = " (a run folder of an older asyncrl, which did not mark its folders: delete it yourself)" if old else ""
        raise ConfigError(f"run folder {run_dir!r} is not empty and was not made by asyncrl (it has no {MARKER}), "
                          f"{how}; choose a new or empty --run-dir{hint}")
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create run folder {run_dir!r}: {exc.strerror or exc}") from None
    lock = lock_run_dir(run_dir)
    try:
        found = run_entries(run_dir)
        if found and not overwrite:
            raise ConfigError(f"run folder {run_dir!r} already holds a run; choose another --run-dir or pass "
                              f"--overwrite to replace it")
        for name in found:
            path = os.path.join(run_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        mark_run_dir(run_dir)
    except OSError as exc:
        lock.release()
        raise StorageError(f"cannot prepare run folder {run_dir!r}: {exc}") from None
    except BaseException:
        lock.release(undo=True)
        raise
    return lock


# --------------------------------------------------------------------------- files
def write_config(run_dir: str, values: dict) -> None:
    """config.yaml: the run's resolved configuration, after a comment block that records one
    provenance entry per training session in this folder (the first run, then each resume or
    learn() call; provenance()): comments, so the file loads as a configuration as it is.
    Replaced atomically; the entries of the config.yaml it replaces are kept."""
    import yaml

    history = read_config(run_dir)[1] + [provenance()]
    block = yaml.safe_dump({PROVENANCE: history}, sort_keys=False, width=1_000_000)
    text = (PROVENANCE_NOTE + "".join("# " + line for line in block.splitlines(keepends=True))
            + yaml.safe_dump(values, sort_keys=False))
    write_atomically(os.path.join(run_dir, "config.yaml"), text.encode())


def read_config(run_dir: str) -> tuple[dict, list[dict]]:
    """A run folder's config.yaml as (the configuration, its provenance entries, oldest
    first). A config.yaml from before provenance was recorded has none ([]); one that is
    missing or cannot be read gives ({}, [])."""
    import yaml

    try:
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as fh:
            text = fh.read()
        values = yaml.safe_load(text)
        lines = text.splitlines(keepends=True)
        first = lines.index(f"# {PROVENANCE}:\n") if f"# {PROVENANCE}:\n" in lines else len(lines)
        block = []
        for line in lines[first:]:
            if not line.startswith("#"):
                break
            block.append(line[2:] if line.startswith("# ") else line[1:])
        entries = (yaml.safe_load("".join(block)) or {}).get(PROVENANCE) if block else []
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
        return {}, []
    return (values if isinstance(values, dict) else {}), [e for e in entries or [] if isinstance(e, dict)]


def provenance() -> dict:
    """What a training session ran with: the time it started, the versions of asyncrl,
    Python, torch, Gymnasium and NumPy, the command line, the host and, where the working
    directory is in a git checkout, its commit (git_commit). Never raises."""
    import platform
    import shlex
    import socket
    from importlib import metadata

    def version(name: str) -> str:
        found = getattr(sys.modules.get(name), "__version__", None)
        try:
            return str(found or metadata.version(name))
        except Exception:
            return "unknown"

    argv = list(sys.argv) or [""]
    if os.path.basename(argv[0]) == "asyncrl" or argv[0].endswith(os.path.join("asyncrl", "__main__.py")):
        argv[0] = "asyncrl"
    try:
        host = socket.gethostname()
    except OSError:
        host = "unknown"
    commit = git_commit(os.getcwd())
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "asyncrl": version("asyncrl"),
            "python": platform.python_version(), "torch": version("torch"), "gymnasium": version("gymnasium"),
            "numpy": version("numpy"), "command": shlex.join(argv), "host": host,
            **({"git_commit": commit} if commit else {})}


def git_commit(folder: str) -> str | None:
    """The commit checked out in the git work tree that holds `folder` (HEAD through loose and
    packed refs; a worktree's or submodule's .git file too), or None where there is none or
    it cannot be read. Reads files only: no git binary, nothing run."""
    def text(path: str, most: int = 4096) -> str:
        with open(path, encoding="utf-8") as fh:
            return fh.read(most).strip()

    try:
        here = os.path.abspath(folder)
        while not os.path.exists(os.path.join(here, ".git")):
            if os.path.dirname(here) == here:
                return None
            here = os.path.dirname(here)
        gitdir = os.path.join(here, ".git")
        if os.path.isfile(gitdir):                   # "gitdir: <path>"
            gitdir = os.path.join(here, text(gitdir).partition("gitdir:")[2].strip())
        common = gitdir
        if os.path.isfile(os.path.join(gitdir, "commondir")):
            common = os.path.join(gitdir, text(os.path.join(gitdir, "commondir")))
        head = text(os.path.join(gitdir, "HEAD"))
        for _ in range(5):                           # a symbolic ref may point at another
            if not head.startswith("ref:"):
                break
            ref = head[4:].strip()
            loose = [os.path.join(b, ref) for b in (gitdir, common) if os.path.isfile(os.path.join(b, ref))]
            packed = os.path.join(common, "packed-refs")
            lines = text(packed, -1).splitlines() if os.path.isfile(packed) else []
            head = text(loose[0]) if loose else next((ln.split()[0] for ln in lines if ln.endswith(" " + ref)), "")
        return head if len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head) else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def write_eval(run_dir: str, result: dict) -> None:
    """eval.json: the final evaluation (replaced atomically)."""
    write_atomically(os.path.join(run_dir, "eval.json"), json.dumps(result, indent=2).encode())


def save_run_checkpoint(run_dir: str, payload: dict, step: int, keep: int, final: bool = False,
                        best: bool = False) -> str:
    """Checkpoint the run folder at global step `step`: latest.pt; also step-<N>.pt (the newest
    `keep` kept), best.pt, and final.pt at the end. One file is written, the other names
    link to it. Returns the path written."""
    folder = os.path.join(run_dir, "checkpoints")
    names = ["final.pt"] if final else []
    if keep > 0:
        names.append(f"step-{step}.pt")
    names.append("latest.pt")
    if best:
        names.append("best.pt")
    paths = [os.path.join(folder, n) for n in names]
    save_checkpoint(paths[0], payload, also=tuple(paths[1:]))
    prune_step_checkpoints(folder, keep)
    return paths[0]


def hold_run_dir(run_dir: str, lock: RunLock | None) -> RunLock:
    """`lock` if it holds `run_dir`, else a new lock on it (the folder made and marked if need
    be: an agent loaded from a run folder that trains on in it)."""
    if lock is not None and lock.holds(run_dir):
        return lock
    os.makedirs(run_dir, exist_ok=True)
    lock = lock_run_dir(run_dir)
    mark_run_dir(run_dir)
    return lock


def load_resumable(run_dir: str, load: Callable[[str], T], check: Callable[[T], None]) -> tuple[T, RunLock]:
    """What a resume continues from, and the folder's lock, taken first (nothing is read or
    moved while another run may write the folder): checkpoints/latest.pt loaded with `load`,
    or, when that file is missing or unreadable (CheckpointError), the newest readable
    step-<N>.pt. Each loaded candidate passes `check` first (which raises to refuse it). An
    unreadable latest.pt is moved aside (latest.pt.corrupt-<time>), never overwritten, and a
    warning names both files. A refused folder is left as it was (its lock file too); an
    accepted one is marked as asyncrl's if it was not."""
    lock = lock_run_dir(run_dir)
    try:
        loaded = _load_resumable(run_dir, load, check)
        mark_run_dir(run_dir)
    except BaseException:
        lock.release(undo=True)
        raise
    return loaded, lock


def _load_resumable(run_dir: str, load: Callable[[str], T], check: Callable[[T], None]) -> T:
    folder = os.path.join(run_dir, "checkpoints")
    latest = os.path.join(folder, "latest.pt")
    candidates = [(None, latest)] + [(step, path) for step, path in reversed(step_checkpoints(folder))]
    problem = None
    for step, path in candidates:
        try:
            loaded = load(path)
        except CheckpointError as exc:
            problem = problem or exc
            continue
        check(loaded)
        if problem is not None:
            moved = ""
            if os.path.exists(latest):
                aside = f"{latest}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
                os.replace(latest, aside)
                moved = f" (moved aside to {aside})"
            print(f"asyncrl: warning: {problem}{moved}; resuming from {path} (step {step:,}) instead",
                  file=sys.stderr, flush=True)
        return loaded
    raise problem
