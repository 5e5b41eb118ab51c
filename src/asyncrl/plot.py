"""Learning curves: return against environment steps and against wall time."""
from __future__ import annotations

import csv
import os

import numpy as np

from .errors import CheckpointError


def read_episodes(run_dir: str) -> dict[str, np.ndarray]:
    path = os.path.join(run_dir, "episodes.csv")
    if not os.path.isfile(path):
        raise CheckpointError(f"{run_dir!r} is not a run folder (no episodes.csv)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = ("step", "wall_time", "return", "length") + (("frames",) if rows and "frames" in rows[0] else ())
    data = {c: np.array([float(r[c]) for r in rows], dtype=np.float64) for c in cols}
    order = np.argsort(data["step"], kind="stable")
    return {c: v[order] for c, v in data.items()}


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start)."""
    if len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_runs(runs: list[str], out: str, window: int = 100) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5))
    frames = True
    for run in runs:
        d = read_episodes(run)
        frames = frames and "frames" in d          # Atari: x in emulator frames
        label = os.path.basename(os.path.normpath(run))
        ma = moving_average(d["return"], window)
        for ax, x in ((ax_s, d["frames"] if "frames" in d else d["step"]), (ax_t, d["wall_time"])):
            line, = ax.plot(x, ma, label=label)
            ax.scatter(x, d["return"], s=2, alpha=0.15, color=line.get_color())
    ax_s.set_xlabel("emulator frames (all workers; agent steps x action repeat)" if frames
                    else "environment steps (all workers)")
    ax_t.set_xlabel("wall time (s)")
    for ax in (ax_s, ax_t):
        ax.set_ylabel(f"episode return (dots) and mean of last {window}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("asyncrl learning curves")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
