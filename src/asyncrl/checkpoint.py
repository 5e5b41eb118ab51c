"""Atomic, safe checkpoints.

Written to a temporary file in the same folder, flushed to disk, then renamed over the
old one: a crash mid-write leaves the previous checkpoint intact. Loaded with
`torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary
objects. A missing, truncated, corrupt or foreign file is a CheckpointError naming it.

A run folder's `checkpoints/` holds `latest.pt` (rewritten periodically and when the run
stops), the newest `keep_checkpoints` of the periodic ones as `step-<N>.pt`, `best.pt`
(the best by the run's measure) and `final.pt`. One file is serialised per checkpoint;
the other names are hard links to it (a copy where the filesystem has none), each put in
place by an atomic rename.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid

import torch

from .errors import CheckpointError

FORMAT = "asyncrl-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "algo", "config", "model", "optimizer", "global_step",
            "observation_space", "action_space")


_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def save_checkpoint(path: str, payload: dict, also: tuple[str, ...] = ()) -> str:
    """Write `payload` to `path` atomically, then put the same file in place under each of
    the names in `also` (atomically too)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
    for other in also:
        link_checkpoint(path, other)
    return path


def link_checkpoint(src: str, dst: str) -> str:
    """`dst` becomes the same file as `src` (a hard link, else a copy), replaced atomically."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(dst)), f".tmp-{uuid.uuid4().hex}.pt")
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
    if os.path.exists(tmp):
        os.unlink(tmp)


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
