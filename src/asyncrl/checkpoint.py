"""Atomic, safe checkpoints.

Written to a temporary file in the same folder, flushed to disk, then renamed over the
old one: a crash mid-write leaves the previous checkpoint intact. Loaded with
`torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary
objects. A missing, truncated, corrupt or foreign file is a CheckpointError naming it.
"""
from __future__ import annotations

import os
import tempfile

import torch

from .errors import CheckpointError

FORMAT = "asyncrl-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "algo", "config", "model", "optimizer", "global_step",
            "observation_space", "action_space")


def save_checkpoint(path: str, payload: dict) -> str:
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
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
