"""Learning curves: return against environment steps and against wall time."""
from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from .checkpoint import write_atomically
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
    return read_table(path, COLUMNS, ("frames",), "an episodes.csv")


def read_table(path: str, columns: tuple[str, ...], optional: tuple[str, ...] = (), what: str = "a CSV file",
               prefix: str | None = None) -> dict[str, np.ndarray]:
    """Columns of a CSV file asyncrl wrote, sorted by step: `columns` must be there, `optional`
    and those starting with `prefix` are read if there. Empty cells (a metrics row without
    updates) read as nan; a last row cut short is left out."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CheckpointError(f"{path!r} is not {what} asyncrl wrote: {_first_line(exc)}") from None
    except OSError as exc:
        raise CheckpointError(f"{path!r} cannot be read: {exc.strerror or type(exc).__name__}") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise CheckpointError(f"{path!r} is not {what} asyncrl wrote: no {missing[0]!r} column "
                              f"(its header: {','.join(str(h) for h in header)[:80]!r})")
    cols = columns + tuple(c for c in header if c in optional or (prefix and c.startswith(prefix)))
    values: dict[str, list[float]] = {c: [] for c in cols}
    for i, r in enumerate(rows):
        try:
            row = [math.nan if r[c] == "" and c not in columns else float(r[c]) for c in cols]
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


#: what `asyncrl plot --panels` may draw: training returns against steps and wall time,
#: periodic evaluations (evaluations.csv) and the losses (metrics.csv)
PANELS = ("train", "time", "eval", "loss")


def plot_runs(runs: list[str], out: str, window: int = 100, group: str = "auto", labels: list[str] | None = None,
              panels: tuple[str, ...] | None = None) -> str:
    """Plot the learning curves of `runs` (run folders, or folders of them such as `--seeds`
    makes) to the image file `out`. Runs of one configuration are one group (curves.group_runs):
    a group of several runs is drawn as the mean across them with its 95% interval, a run on
    its own as its moving average over `window` episodes with each episode a dot. `panels`:
    some of PANELS (default: train and time, and eval where a run has evaluations). Every run
    is read and `out` checked writable before anything is drawn (CheckpointError,
    ConfigError: one line)."""
    from .curves import group_runs

    bad = [p for p in (panels or ()) if p not in PANELS]
    if bad:
        raise ConfigError(f"--panels: {bad[0]!r} is not a panel; choose from {', '.join(PANELS)}")
    groups = group_runs(runs, group, labels)
    data = {run: _read_run(run, window) for _, members in groups for run in members}
    if panels is None:
        panels = ("train", "time") + (("eval",) if any("eval" in d for d in data.values()) else ())
    problem = check_output_file(out, "plot file")
    if problem:
        raise ConfigError(problem)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    ext = os.path.splitext(out)[1].lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in formats:
        raise ConfigError(f"plot file {out!r}: .{ext} is not an image format matplotlib writes; use one of: "
                          f"{', '.join('.' + f for f in sorted(formats))}")
    fig = draw(groups, data, panels, window)
    buf = io.BytesIO()             # the image appears whole or not at all (an old one stays if the write fails)
    fig.savefig(buf, format=ext or None, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_atomically(out, buf.getbuffer(), durable=False)
    return out


def _read_run(run: str, window: int) -> dict[str, dict[str, np.ndarray]]:
    """A run's curves: episodes (with the moving average), evaluations and metrics where present."""
    d = {"episodes": read_episodes(run)}
    d["episodes"]["ma"] = moving_average(d["episodes"]["return"], window)
    path = os.path.join(run, "evaluations.csv")
    if os.path.isfile(path):
        ev = read_table(path, ("step", "wall_time", "mean_return"), what="an evaluations.csv")
        if len(ev["step"]):
            d["eval"] = ev
    path = os.path.join(run, "metrics.csv")
    if os.path.isfile(path):
        d["metrics"] = read_table(path, ("step",), what="a metrics.csv", prefix="loss/")
    return d


def _loss_columns(data: dict) -> list[str]:
    return sorted({c for d in data.values() for c in d.get("metrics", {}) if c.startswith("loss/")})


def draw(groups: list[tuple[str, list[str]]], data: dict, panels: tuple[str, ...], window: int):
    """The figure: one row of panels, one colour and one legend entry per group."""
    import matplotlib.pyplot as plt

    from .curves import CARRY, mean_and_interval

    frames = all("frames" in data[run]["episodes"] for _, members in groups for run in members)
    steps_label = ("emulator frames (all workers; agent steps x action repeat)" if frames
                   else "environment steps (all workers)")
    specs = []      # (title, x label, y label, [(group index, run) -> (x, y) or None])
    for p in panels:
        if p == "train":
            specs.append((f"training return (mean of last {window} episodes)", steps_label, "return",
                          lambda d: (d["episodes"]["frames" if frames else "step"], d["episodes"]["ma"])))
        elif p == "time":
            specs.append((f"training return (mean of last {window} episodes)", "wall time (s)", "return",
                          lambda d: (d["episodes"]["wall_time"], d["episodes"]["ma"])))
        elif p == "eval":
            specs.append(("evaluation return (periodic, in the background)", "environment steps (all workers)",
                          "mean return", lambda d: (d["eval"]["step"], d["eval"]["mean_return"]) if "eval" in d
                          else None))
        elif p == "loss":
            for col in _loss_columns(data):
                specs.append((col, "environment steps (all workers)", col.split("/", 1)[1] + " loss",
                              lambda d, col=col: _finite(d["metrics"]["step"], d["metrics"][col])
                              if col in d.get("metrics", {}) else None))
    fig, axes = plt.subplots(1, max(1, len(specs)), figsize=(5.2 * max(1, len(specs)), 4.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, xlabel, ylabel, curve) in zip(axes[0], specs):
        for gi, (label, members) in enumerate(groups):
            colour = colours[gi % len(colours)]
            curves = [c for c in (curve(data[run]) for run in members) if c is not None and len(c[0])]
            if not curves:
                continue
            if len(curves) == 1:
                ax.plot(*curves[0], color=colour, label=label)
                if "return" in title and "training" in title:
                    x = curves[0][0]
                    raw = data[members[0]]["episodes"]["return"]
                    ax.scatter(x, raw, s=2, alpha=0.15, color=colour)
                continue
            agg = mean_and_interval(curves, carry=1.0 if xlabel.startswith("wall") else CARRY)
            ax.plot(agg["x"], agg["mean"], color=colour, label=f"{label} (mean of {len(curves)}, 95% interval)")
            ax.fill_between(agg["x"], agg["low"], agg["high"], color=colour, alpha=0.2, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    seen: dict[str, object] = {}
    for ax in axes[0]:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(name, handle)
    names, handles = list(seen), list(seen.values())
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=min(3, len(handles)), fontsize=9,
                   bbox_to_anchor=(0.5, -0.02 - 0.05 * ((len(handles) - 1) // 3)))
    fig.suptitle("asyncrl learning curves")
    fig.tight_layout(rect=(0, 0.08 + 0.05 * ((len(handles) - 1) // 3), 1, 1))
    return fig


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(y)
    return x[keep], y[keep]
