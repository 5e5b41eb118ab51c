"""The run folder: made or refused before a run starts, its config.yaml, its checkpoints'
names (latest, step-N, best, final) and pruning, and what a resume loads from it."""
from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Callable, TypeVar

from .checkpoint import prune_step_checkpoints, save_checkpoint, step_checkpoints
from .errors import CheckpointError, ConfigError

T = TypeVar("T")


def prepare_run_dir(run_dir: str, overwrite: bool) -> None:
    """A run folder that already holds a run is never reused silently."""
    if os.path.exists(os.path.join(run_dir, "checkpoints")) or os.path.exists(os.path.join(run_dir, "episodes.csv")):
        if not overwrite:
            raise ConfigError(f"run folder {run_dir!r} already holds a run; choose another --run-dir "
                              f"or pass --overwrite to replace it")
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)


def write_config(run_dir: str, values: dict) -> None:
    """config.yaml: the run's resolved configuration."""
    import yaml

    with open(os.path.join(run_dir, "config.yaml"), "w") as fh:
        yaml.safe_dump(values, fh, sort_keys=False)


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


def load_resumable(run_dir: str, load: Callable[[str], T], check: Callable[[T], None]) -> T:
    """What a resume continues from: checkpoints/latest.pt loaded with `load`, or, when that
    file is missing or unreadable (CheckpointError), the newest readable step-<N>.pt. Each
    loaded candidate passes `check` first (which raises to refuse it). An unreadable
    latest.pt is moved aside (latest.pt.corrupt-<time>), never overwritten, and a warning
    names both files."""
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
