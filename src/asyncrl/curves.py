"""Experiments over seeds, for `asyncrl plot`: which runs belong together, what tells the
groups apart, and a group's mean curve with its 95% confidence interval.

A group is the runs of one configuration (seeds of one experiment). With `group="auto"`
runs whose config.yaml agree on everything that changes what is learned (not the seed,
the folder, logging, checkpoints or fault handling) are one group, labelled by the values
in which the groups differ ("a2c", "lr=0.001, t_max=5"); `group="run"` draws every
run on its own; explicit labels name one group per folder given.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import ConfigError

#: config.yaml keys that do not change what a run learns: they never split or name a group
NOT_THE_EXPERIMENT = frozenset((
    "seed", "run_dir", "log_interval", "log_steps", "checkpoint_interval", "keep_checkpoints",
    "max_worker_restarts", "worker_timeout", "max_nonfinite_updates", "eval_episodes", "eval_every",
    "start_method", "torch_threads", "ray_address", "fused_optimizer", "vec_env", "device", "steps",
    "stop_return", "stop_eval_return", "preset",
))

def is_run(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "episodes.csv"))


def expand(path: str) -> list[str]:
    """A run folder is itself; a folder of run folders (`--seeds` makes seed-0, seed-1, ...
    under the run dir) is its runs, in name order. Anything else is returned as given, for
    the reader to refuse with its own message."""
    if is_run(path) or not os.path.isdir(path):
        return [path]
    subs = sorted((e for e in os.listdir(path) if is_run(os.path.join(path, e))), key=_natural)
    return [os.path.join(path, e) for e in subs] or [path]


def _natural(name: str) -> tuple:
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1, name)


def read_config(run: str) -> dict | None:
    """A run's config.yaml as a flat dict of its scalar and list values (None without one)."""
    import yaml

    path = os.path.join(run, "config.yaml")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    return _flat(data)


def _flat(values: dict) -> dict:
    """The scalar and list values of a config (lists as tuples, so they compare and hash), the
    nested dicts left out: what grouping compares."""
    return {str(k): (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if not isinstance(v, dict)}


def _with_defaults(config: dict | None) -> dict | None:
    """A config.yaml's values with every Config field it lacks at that field's default: a run
    recorded before a field existed ran with its default, and a field that does not apply is
    the same default on both sides, so neither splits a group."""
    if config is None:
        return None
    from dataclasses import MISSING, fields

    from .config import Config

    defaults = {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(Config)}
    return {**_flat(defaults), **config}


def _experiment(config: dict | None) -> tuple | None:
    if config is None:
        return None
    return tuple(sorted((k, v) for k, v in config.items() if k not in NOT_THE_EXPERIMENT))


def short_names(paths: list[str]) -> list[str]:
    """The shortest trailing parts of the paths that tell them apart (`a3c/seed-0`, not `seed-0`)."""
    parts = [os.path.normpath(os.path.abspath(p)).split(os.sep) for p in paths]
    for n in range(1, max((len(p) for p in parts), default=1) + 1):
        names = [os.sep.join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [os.path.normpath(p) for p in paths]


def _value(v) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def group_runs(paths: list[str], group: str = "auto", labels: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """[(label, runs)] in the order first met. `paths` are run folders or folders of them
    (expand). `labels`: one per path, each path's runs one group. group: "auto" or "run"."""
    if labels is not None:
        if len(labels) != len(paths):
            raise ConfigError(f"--labels: {len(labels)} label(s) for {len(paths)} run folder(s); give one per folder")
        merged: dict[str, list[str]] = {}
        for label, path in zip(labels, paths):
            merged.setdefault(label, []).extend(expand(path))
        return list(merged.items())
    runs = [run for path in paths for run in expand(path)]
    if group == "run":
        return [(name, [run]) for name, run in zip(short_names(runs), runs)]
    if group != "auto":
        raise ConfigError(f"--group must be auto or run, got {group!r}")
    configs = [_with_defaults(read_config(run)) for run in runs]
    keys: dict = {}
    for run, config, name in zip(runs, configs, short_names(runs)):
        key = _experiment(config)
        keys.setdefault(key if key is not None else ("run", name), []).append((run, config))
    groups = list(keys.values())
    return [(label, [run for run, _ in members]) for label, members in zip(_labels(groups, runs), groups)]


def _labels(groups: list[list[tuple[str, dict | None]]], runs: list[str]) -> list[str]:
    """What tells the groups apart: the fewest configuration values (algo and env first, then
    by name) that give every group a different label; `algo on env` for one group."""
    firsts = [members[0][1] for members in groups]
    known = [c for c in firsts if c is not None]
    if len(known) == 1 and len(groups) == 1:
        c = known[0]
        return [f"{c.get('algo', '?')} on {c.get('env', '?')}"]
    differing = sorted({k for c in known for k in c if k not in NOT_THE_EXPERIMENT
                        and len({_value(x.get(k)) for x in known}) > 1},
                       key=lambda k: (k not in ("algo", "env"), k != "algo", k))
    chosen: list[str] = []
    for key in differing:                     # add keys until the labels tell every group apart
        chosen.append(key)
        if len({tuple(_value(c.get(k)) for k in chosen) for c in known}) == len(known):
            break
    names = short_names([members[0][0] for members in groups])
    out = []
    for members, c, name in zip(groups, firsts, names):
        if c is None or not chosen:
            out.append(name if len(members) == 1 else os.path.dirname(name) or name)
        else:
            out.append(", ".join(_value(c.get(k)) if k in ("algo", "env") else f"{k}={_value(c.get(k))}"
                                 for k in chosen))
    return out


#: a run that ends within this fraction of the group's longest counts on to its end with its
#: last value (runs differ in where their last episode ends); a shorter run stops counting
CARRY = 0.1


def mean_and_interval(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 200, resamples: int = 2000,
                      seed: int = 0, carry: float = CARRY) -> dict[str, np.ndarray]:
    """The mean of several curves (x, y: x increasing) on a common grid of x, and a 95%
    percentile-bootstrap interval of that mean over the curves that cover each x (as rliable
    does for few seeds: it stays within what the runs reached; no interval where one curve
    does). A curve counts from its first x to its last (to the end, with its last value, if
    it ends within `carry` of the longest: 1 carries every run on, as against wall time, where
    a run that finished sooner keeps what it reached). Returns {x, mean, low, high, n}."""
    curves = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in curves if len(x)]
    if not curves:
        empty = np.zeros(0)
        return {"x": empty, "mean": empty, "low": empty, "high": empty, "n": empty.astype(int)}
    lo = min(float(x[0]) for x, _ in curves)
    hi = max(float(x[-1]) for x, _ in curves)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    ys = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        end = hi if x[-1] >= hi - carry * (hi - lo) else x[-1]
        inside = (grid >= x[0]) & (grid <= end)
        ys[i, inside] = np.interp(grid[inside], x, y)       # np.interp holds the last value beyond x[-1]
    n = np.sum(~np.isnan(ys), axis=0)
    keep = n > 0
    grid, ys, n = grid[keep], ys[:, keep], n[keep]
    mean = np.nanmean(ys, axis=0)
    low, high = mean.copy(), mean.copy()
    rng = np.random.default_rng(seed)
    for j in np.nonzero(n >= 2)[0]:
        col = ys[~np.isnan(ys[:, j]), j]
        means = col[rng.integers(0, len(col), size=(resamples, len(col)))].mean(axis=1)
        low[j], high[j] = np.percentile(means, [2.5, 97.5])
    return {"x": grid, "mean": mean, "low": low, "high": high, "n": n}
