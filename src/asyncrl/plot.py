"""Learning curves: return against environment steps and against wall time."""
from __future__ import annotations

import csv
import os

import numpy as np

from .errors import CheckpointError, ConfigError
from .paths import check_output_file

#: the columns of episodes.csv a plot needs (Atari runs add frames)
COLUMNS = ("step", "wall_time", "return", "length")


def read_episodes(run_dir: str) -> dict[str, np.ndarray]:
    """The episodes of a run folder's episodes.csv, sorted by step. A last row cut short (a
    run killed while writing it) is left out, as a resume leaves it out; anything else that
    is not a row of numbers is a CheckpointError naming the file and the line."""
    path = os.path.join(run_dir, "episodes.csv")
    if not os.path.isfile(path):
        raise CheckpointError(f"{run_dir!r} is not a run folder (no episodes.csv)")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CheckpointError(f"{path!r} is not an episodes.csv asyncrl wrote: {_first_line(exc)}") from None
    except OSError as exc:
        raise CheckpointError(f"{path!r} cannot be read: {exc.strerror or type(exc).__name__}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CheckpointError(f"{path!r} is not an episodes.csv asyncrl wrote: no {missing[0]!r} column "
                              f"(its header: {','.join(str(h) for h in header)[:80]!r})")
    cols = COLUMNS + (("frames",) if "frames" in header else ())
    values = {c: [] for c in cols}
    for i, r in enumerate(rows):
        try:
            row = [float(r[c]) for c in cols]
        except (TypeError, ValueError):
            if i == len(rows) - 1:
                break               # the last line, cut short by a crash
            raise CheckpointError(f"{path!r} line {i + 2} is not a row of numbers: "
                                  f"{','.join(str(v) for v in r.values())[:80]!r}") from None
        for c, v in zip(cols, row):
            values[c].append(v)
    data = {c: np.array(v, dtype=np.float64) for c, v in values.items()}
    order = np.argsort(data["step"], kind="stable")
    return {c: v[order] for c, v in data.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start)."""
    if len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_runs(runs: list[str], out: str, window: int = 100) -> str:
    """Plot the runs' learning curves to the PNG file `out`. Every run is read and `out` is
    checked writable before anything is drawn (CheckpointError, ConfigError: one line)."""
    episodes = [read_episodes(run) for run in runs]
    problem = check_output_file(out, "plot file")
    if problem:
        raise ConfigError(problem)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    ext = os.path.splitext(out)[1].lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in formats:
        raise ConfigError(f"plot file {out!r}: .{ext} is not an image format matplotlib writes; use one of: "
                          f"{', '.join('.' + f for f in sorted(formats))}")

    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5))
    frames = True
    for run, d in zip(runs, episodes):
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
