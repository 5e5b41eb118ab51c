"""Atomic, safe checkpoints, and atomic writes of the run folder's other files.

Serialised in memory, written to a temporary file in the same folder (created with the
mode the umask gives any file), flushed to disk, renamed over the old one, and the folder
itself flushed: a crash or a full disk mid-write leaves the previous file intact, and an
I/O failure is an OSError (ENOSPC, EFBIG, ...), never a serialiser's error. Loaded with
`torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary
objects. A missing, truncated, corrupt or foreign file is a CheckpointError naming it.

A run folder's `checkpoints/` holds `latest.pt` (rewritten periodically and when the run
stops), the newest `keep_checkpoints` of the periodic ones as `step-<N>.pt`, `best.pt`
(the best by the run's measure) and `final.pt`. One file is serialised per checkpoint;
the other names are hard links to it (a copy where the filesystem has none), each put in
place by an atomic rename. Temporary files are named `.tmp-*`; one left by a process that
died mid-write is removed when the next run in the folder starts (clean_temp_files).
"""
from __future__ import annotations

import glob
import io
import os
import re
import shutil
import uuid

import torch

from .errors import CheckpointError
from .spaces import space_to_dict

FORMAT = "asyncrl-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "algo", "config", "model", "optimizer", "global_step",
            "observation_space", "action_space")
#: the prefix of every temporary file asyncrl writes before renaming it into place, and the
#: glob of their names (the prefix and 32 hex digits: nothing of the user's is taken for one)
TMP_PREFIX = ".tmp-"
TMP_GLOB = TMP_PREFIX + "[0-9a-f]" * 32 + "*"


_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def _temp_path(folder: str, suffix: str) -> str:
    return os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}{suffix}")


def fsync_folder(folder: str) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:                     # some filesystems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes, durable: bool = True) -> str:
    """Write `data` to `path` through a temporary file renamed over it: readers see the old
    file or the new one, never part of one. The file gets the umask's mode (0644 under
    umask 022). An OSError (a full disk) leaves `path` as it was and no temporary file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = _temp_path(folder, os.path.splitext(path)[1])
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    if durable:
        fsync_folder(folder)
    return path


def save_checkpoint(path: str, payload: dict, also: tuple[str, ...] = ()) -> str:
    """Write `payload` to `path` atomically, then put the same file in place under each of
    the names in `also` (atomically too)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    write_atomically(path, buf.getbuffer(), durable=True)
    for other in also:
        link_checkpoint(path, other)
    if also:
        fsync_folder(folder)
    return path


def link_checkpoint(src: str, dst: str) -> str:
    """`dst` becomes the same file as `src` (a hard link, else a copy), replaced atomically."""
    tmp = _temp_path(os.path.dirname(os.path.abspath(dst)), ".pt")
    try:
        try:
            os.link(src, tmp)
        except OSError:                 # no hard links here (some network filesystems)
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        _discard(tmp)
        raise
    return dst


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def clean_temp_files(*folders: str) -> list[str]:
    """Remove the `.tmp-*` files that a process which died mid-write left in `folders`
    (only while this process holds the run folder's lock: another run's are in use)."""
    removed = []
    for folder in folders:
        for path in glob.glob(os.path.join(glob.escape(folder), TMP_GLOB)):
            if os.path.isfile(path):
                _discard(path)
                removed.append(path)
    return removed


def step_checkpoints(folder: str) -> list[tuple[int, str]]:
    """The `step-<N>.pt` files of a checkpoints folder as (N, path), oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, name))
             for name in os.listdir(folder) if (m := _STEP_FILE.match(name))]
    return sorted(found)


def prune_step_checkpoints(folder: str, keep: int) -> None:
    """Delete all but the newest `keep` step-<N>.pt files."""
    found = step_checkpoints(folder)
    for _, path in found[:max(len(found) - keep, 0)]:
        os.unlink(path)


def nonfinite_parts(payload: dict) -> list[str]:
    """Which of the payload's model, optimizer and target hold an inf or nan."""
    bad = []
    for key in ("model", "optimizer", "target"):
        value = payload.get(key)
        tensors = value.values() if isinstance(value, dict) else [value]
        if any(isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())
               for t in tensors):
            bad.append(key)
    return bad


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file, or a run folder (its final checkpoint, else its latest)."""
    if os.path.isdir(path):
        for name in ("final.pt", "latest.pt"):
            candidate = os.path.join(path, "checkpoints", name)
            if os.path.isfile(candidate):
                return candidate
        raise CheckpointError(f"run folder {path!r} has no checkpoint (looked for checkpoints/final.pt "
                              f"and checkpoints/latest.pt)")
    if not os.path.exists(path):
        raise CheckpointError(f"no such checkpoint or run folder: {path!r}")
    return path


def load_checkpoint(path: str, algo: str | None = None) -> dict:
    path = resolve_checkpoint(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path!r} is not a readable asyncrl checkpoint ({reason[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not an asyncrl checkpoint (no '{FORMAT}' header)")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"{path!r} is an incomplete asyncrl checkpoint (missing {', '.join(missing)})")
    if data["version"] > VERSION:
        raise CheckpointError(f"{path!r} has checkpoint version {data['version']}; this asyncrl reads "
                              f"up to version {VERSION}")
    if algo is not None and data["algo"] != algo:
        raise CheckpointError(f"{path!r} holds a {data['algo']} agent, not {algo}")
    data["path"] = path
    return data


def agent_payload(agent) -> dict:
    """What a checkpoint holds of an agent (api.Agent): its algorithm and config, model,
    optimiser state, target network, global step, wall time so far, best measure,
    learning-rate schedule and spaces; restore_agent reads it back."""
    return {
        "algo": agent.algo,
        "config": agent.config.to_dict(),
        "model": {k: v.detach().clone() for k, v in agent.model.state_dict().items()},
        "optimizer": {k: v.detach().clone() for k, v in agent.optimizer.state_dict().items()},
        "target": None if agent.target_params is None else agent.target_params.detach().clone(),
        "global_step": int(agent.global_step),
        "wall_time": float(agent.wall_time),
        "best_return": float(agent.best_return),
        "schedule": [int(agent.schedule[0]), int(agent.schedule[1])],
        "observation_space": space_to_dict(agent.observation_space),
        "action_space": space_to_dict(agent.action_space),
    }


def restore_agent(agent, data: dict) -> None:
    """Put a loaded checkpoint's state (load_checkpoint) into an agent built from its config
    and spaces; CheckpointError if the tensors do not fit that agent."""
    try:
        agent.model.load_state_dict(data["model"])
        agent.optimizer.load_state_dict(data["optimizer"])
        if agent.target_params is not None:
            saved = data.get("target")
            if saved is None or saved.shape != agent.target_params.shape:
                raise ValueError("its target network is missing or has the wrong size")
            agent.target_params.copy_(saved)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{data['path']!r} does not match its own config: {str(exc).splitlines()[0]}") from None
    agent.global_step = agent.checkpoint_step = int(data["global_step"])
    agent.wall_time = float(data.get("wall_time", 0.0))
    agent.schedule = tuple(data.get("schedule", (0, agent.config.steps)))
    agent.best_return = float(data.get("best_return", float("nan")))
