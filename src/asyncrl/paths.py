"""Paths asyncrl is about to write, checked before any work starts: a run folder, a plot, a
video. Each check returns one line naming the path and what is wrong with it (None when it
can be written), and leaves nothing behind: the probe it writes is removed at once.

Permissions alone do not say whether a folder can be written (root may write anywhere,
except on the kernel's file systems and on read-only mounts), so the checks try: a file in
a folder that exists, else a folder in the nearest one that does."""
from __future__ import annotations

import os
import time
import tempfile

#: the kernel's file systems: nothing asyncrl writes belongs there, whatever the permissions
PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
#: except the memory file system under /dev
WRITABLE_UNDER_PSEUDO = ("/dev/shm",)
PROBE_PREFIX = ".asyncrl-write-test-"


def check_run_dir(path: str) -> str | None:
    """Why the run folder `path` (existing, or to be made with its parents) cannot be
    written, or None."""
    return _folder_problem(os.path.abspath(path), f"run-dir {path!r}")


def existing_output(path: str, flag: str, overwrite: bool) -> str | None:
    """The refusal of an output file the user named (`flag`) that exists, unless `overwrite`:
    asyncrl replaces nothing it did not make without being told to."""
    if os.path.isdir(path):
        return f"{flag} {path!r} is a folder; name the file to write"
    if overwrite or not os.path.lexists(path):
        return None
    return f"{flag} {path!r} exists; choose another file or pass --overwrite to replace it"


def check_output_file(path: str, what: str = "output file") -> str | None:
    """Why the file `path` (its folder made if need be) cannot be written, or None. `what`
    names it in the message (e.g. "plot file", "video file")."""
    label = f"{what} {path!r}"
    full = os.path.abspath(path)
    if os.path.isdir(full):
        return f"{label} is a folder, not a file"
    problem = _folder_problem(os.path.dirname(full), label, file=full)
    if problem is None and os.path.exists(full) and not os.access(full, os.W_OK):
        return f"{label} cannot be written: permission denied"
    return problem


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _pseudo_root(real: str) -> str | None:
    def under(root: str) -> bool:
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    if any(under(w) for w in WRITABLE_UNDER_PSEUDO):
        return None
    return next((root for root in PSEUDO_ROOTS if under(root)), None)


def _folder_problem(full: str, label: str, file: str | None = None) -> str | None:
    """Why folder `full` cannot be made (if missing) and written; `label` says what is to be
    written there (the folder itself, or `file` in it)."""
    existing = _nearest_existing(full)
    if os.path.islink(existing) and not os.path.exists(existing):
        return f"{label}: {existing!r} is a broken symbolic link"
    if not os.path.isdir(existing):
        if existing == full and file is None:
            return f"{label} is a file, not a folder"
        return f"{label}: {existing!r} is a file, not a folder"
    root = _pseudo_root(os.path.realpath(file or full))
    if root is not None:
        return (f"{label} is on the kernel's {root} file system, where nothing can be written; "
                f"choose a folder on disk")
    try:
        if existing == full:
            fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=full)
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=existing))
    except OSError as exc:
        return f"{label} cannot be written: {existing!r}: {exc.strerror or type(exc).__name__}"
    return None


def default_run_dir(algo: str, env: str) -> str:
    """runs/<algo>-<env>-<time>: a run folder when none is named."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in env)
    return os.path.join("runs", f"{algo}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}")
