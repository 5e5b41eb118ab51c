"""One writer, in the main process: episodes.csv, metrics.csv, the scalar backends
(TensorBoard, W&B: loggers.py), progress bar.

Workers send plain tuples over a queue; nothing here runs in an actor-learner.
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time
from collections import deque
from typing import Callable

from .checkpoint import write_atomically

EPISODE_COLUMNS = ("step", "wall_time", "worker", "return", "length")
BASE_METRIC_COLUMNS = ("step", "wall_time", "steps_per_s", "episodes", "return_mean_100",
                       "lr", "updates", "skipped_updates", "grad_norm")


class RunLogger:
    def __init__(self, run_dir: str | None, stat_keys: tuple[str, ...], start_step: int,
                 target_step: int, time_origin: float, log_interval: float, progress: bool | None,
                 log_steps: int = 0, frames_per_step: int = 1, backends: list | None = None,
                 success: Callable[[float], bool] | None = None):
        self.run_dir = run_dir
        self.stat_keys = tuple(stat_keys)
        self.time_origin = time_origin
        self.log_interval = log_interval
        self.log_steps = log_steps      # > 0: a row per this many steps instead of per interval
        self.returns: deque[float] = deque(maxlen=100)
        #: the scenario's success rule over an episode's raw return (asyncrl.success), if it has
        #: one: episodes.csv gets `success` (0/1) and metrics.csv `success_rate_100`
        self.success = success
        self.successes: deque[bool] = deque(maxlen=100)
        self.episodes = 0
        self.worker_restarts = 0
        self._sums = dict.fromkeys(self.stat_keys, 0.0)
        self._updates = self._skipped = 0
        self._norm_sum = 0.0
        self._lr = float("nan")
        self._last_step, self._last_time = start_step, time.monotonic()
        self._ep_file = self._metrics_file = None
        #: loggers.Backend instances, opened on first use (default: TensorBoard in the run folder)
        if backends is None and run_dir:
            from .loggers import TensorBoardBackend

            backends = [TensorBoardBackend(run_dir, start_step)]
        self._backends, self._n_open = list(backends or ()), 0
        # Atari: `step` counts agent steps; `frames` = emulator frames (step x action repeat)
        self.frames_per_step = frames_per_step
        frames = ("frames",) if frames_per_step > 1 else ()
        said = ("success",) if success else ()
        self.episode_columns = EPISODE_COLUMNS[:1] + frames + EPISODE_COLUMNS[1:] + said
        self.metric_columns = BASE_METRIC_COLUMNS[:1] + frames + BASE_METRIC_COLUMNS[1:3] \
            + (("frames_per_s",) if frames else ()) + BASE_METRIC_COLUMNS[3:5] \
            + (("success_rate_100",) if success else ()) + BASE_METRIC_COLUMNS[5:] + self.stat_keys
        if run_dir:
            os.makedirs(run_dir, exist_ok=True)
            for name in ("episodes.csv", "metrics.csv", "evaluations.csv"):   # a resume continues from start_step
                cut_back(os.path.join(run_dir, name), start_step)
            self._continue_episodes(os.path.join(run_dir, "episodes.csv"))
            self._ep_file, self._ep_csv, self.episode_columns = open_csv(
                os.path.join(run_dir, "episodes.csv"), self.episode_columns)
            self._metrics_file, self._metrics_csv, self.metric_columns = open_csv(
                os.path.join(run_dir, "metrics.csv"), self.metric_columns)
        self._bar = None
        self._progress, self._start_step, self._target_step = progress, start_step, target_step
        self._started = False
        #: training.TrainingSession of the learn() call: told each episode, row and tick; its
        #: stop_requested and checkpoint_requested are what the executors see (through here)
        self.observer = None
        self.last_eval: float | None = None    # the last periodic evaluation's mean, for the bar

    def _start(self) -> None:
        """The backends' writers (TensorBoard's, W&B's) and tqdm's monitor are threads: they are
        created here, on first use, which executors guarantee is after their worker processes
        are forked. Marked started only once all exist: a Ctrl-C that lands in the middle
        (importing TensorBoard takes a second) leaves the rest to the next call."""
        while self._n_open < len(self._backends):
            self._backends[self._n_open].open()
            self._n_open += 1
        if self._progress is not False and self._bar is None:
            from tqdm.auto import tqdm          # a widget in a notebook, text in a terminal

            show = interactive() if self._progress is None else bool(self._progress)
            self._bar = tqdm(total=self._target_step, initial=self._start_step, unit="step", dynamic_ncols=True,
                             disable=not show, smoothing=0.1)
        self._started = True

    def _continue_episodes(self, path: str) -> None:
        """A resumed run goes on from its episodes.csv: the episode count and the last 100
        returns (the recent mean, --stop-return and best.pt carry on where they were)."""
        if not os.path.isfile(path):
            return
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    ret = float(row["return"])
                except (KeyError, TypeError, ValueError):
                    continue            # a line cut short by a crash
                self.returns.append(ret)
                if self.success is not None:
                    self.successes.append(bool(self.success(ret)))
                self.episodes += 1

    # ------------------------------------------------------------------ inputs
    def episode(self, worker: int, step: int, wall_time: float, ret: float, length: int) -> None:
        if not self._started:
            self._start()
        self.returns.append(ret)
        self.episodes += 1
        row = {"step": step, "wall_time": wall_time, "worker": worker, "return": ret, "length": length}
        if self.success is not None:
            row["success"] = success = bool(self.success(ret))
            self.successes.append(success)
        if self._ep_file:
            cells = {**row, "frames": step * self.frames_per_step, "wall_time": f"{wall_time:.3f}",
                     "return": f"{ret:.6g}", "success": int(row.get("success", False))}
            self._ep_csv.writerow([cells.get(c, "") for c in self.episode_columns])
            self._scalar("episode/return", ret, step)
            self._scalar("episode/length", length, step)
        if self.observer is not None:
            self.observer.episode(row)

    def stats(self, worker: int, updates: int, skipped: int, norm_sum: float, sums: dict, lr: float) -> None:
        self._updates += updates
        self._skipped += skipped
        self._norm_sum += norm_sum
        for k in self.stat_keys:
            self._sums[k] += sums.get(k, 0.0)
        self._lr = lr

    def fault(self, message: str, step: int, restart: bool = False, echo: bool = True) -> None:
        """A worker failure, restart or refused checkpoint: `asyncrl: step N: message` on
        stderr (above the progress bar; not with echo=False, for a failure the caller raises),
        a line in the run's faults.log, restarts counted in TensorBoard."""
        if restart:
            self.worker_restarts += 1
        line = f"asyncrl: step {step:,}: {message}"
        if echo and self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        elif echo:
            print(line, file=sys.stderr, flush=True)
        if self.run_dir:
            try:                        # a full disk must not turn a warning into a crash
                with open(os.path.join(self.run_dir, "faults.log"), "a") as fh:
                    fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} step {step}: {message}\n")
            except OSError:
                pass
        if restart:
            self._scalar("faults/worker_restarts", self.worker_restarts, step)

    # ------------------------------------------------------------------ outputs
    @property
    def recent_mean(self) -> float:
        return sum(self.returns) / len(self.returns) if self.returns else float("nan")

    @property
    def success_rate(self) -> float:
        """The share of the last 100 training episodes (fewer at first) that succeeded by the
        scenario's rule; nan without a rule or an episode."""
        return sum(self.successes) / len(self.successes) if self.successes else float("nan")

    @property
    def mean_100(self) -> float:
        """Mean return of the last 100 training episodes; nan until there are 100."""
        return self.recent_mean if len(self.returns) == self.returns.maxlen else float("nan")

    def solved(self, threshold: float) -> bool:
        """Mean of the last 100 training episodes has reached `threshold` (inf: never)."""
        return not math.isinf(threshold) and self.mean_100 >= threshold

    @property
    def stop_requested(self) -> bool:
        """A callback or an evaluation asked training to stop."""
        return self.observer is not None and self.observer.stop_requested

    def take_checkpoint_request(self) -> bool:
        """A callback asked for a checkpoint now (the request is taken: once)."""
        if self.observer is None or not self.observer.checkpoint_requested:
            return False
        self.observer.checkpoint_requested = False
        return True

    def tick(self, step: int, force: bool = False) -> None:
        """The training loop's heartbeat: the progress bar, a metrics row when one is due,
        and the observer's tick (not for the forced tick after training)."""
        row = self._row(step, force)
        if self.observer is not None:
            if row is not None:
                self.observer.metrics(row)
            if not force:
                self.observer.tick(step)

    def _row(self, step: int, force: bool) -> dict | None:
        if not self._started:
            self._start()
        now = time.monotonic()
        if self._bar is not None:
            self._bar.n = step
            evaluated = "" if self.last_eval is None else f" eval={self.last_eval:.1f}"
            succeeded = f" success={self.success_rate:.2f}" if self.successes else ""
            self._bar.set_postfix_str(f"ret={self.recent_mean:.1f}{succeeded} eps={self.episodes}{evaluated}",
                                      refresh=False)
            self._bar.refresh() if force else self._bar.update(0)
        dt = now - self._last_time
        if self.log_steps > 0:
            due = step // self.log_steps > self._last_step // self.log_steps
        else:
            due = dt >= self.log_interval
        if not force and (not due or step >= self._target_step):
            return None                 # the target's row is the forced one after training:
                                        # the workers' last statistics arrive before it
        if step == self._last_step:
            # One row per step: the steps are the file's key (a resume cuts back by step).
            # Statistics that arrive after their step's row (after an interrupted run's
            # last periodic row) stay out of the CSV rather than repeat the step.
            return None
        sps = (step - self._last_step) / dt if dt > 0 else 0.0
        n = max(self._updates, 1)
        row = {"step": step, "wall_time": time.time() - self.time_origin, "steps_per_s": sps,
               "episodes": self.episodes, "return_mean_100": self.recent_mean, "lr": self._lr,
               "updates": self._updates, "skipped_updates": self._skipped,
               "grad_norm": self._norm_sum / n if self._updates else float("nan"),
               "frames": step * self.frames_per_step, "frames_per_s": sps * self.frames_per_step}
        for k in self.stat_keys:
            row[k] = self._sums[k] / n if self._updates else float("nan")
        if self.success is not None:
            row["success_rate_100"] = self.success_rate
        if self._metrics_file:
            self._metrics_csv.writerow([_fmt(row.get(c, float("nan"))) for c in self.metric_columns])
            self._metrics_file.flush()
            self._ep_file.flush()
        self._scalar("time/sps", sps, step)
        if self.frames_per_step > 1:
            self._scalar("time/frames_per_s", row["frames_per_s"], step)
        self._scalar("episode/return_mean_100", row["return_mean_100"], step)
        if self.successes:
            self._scalar("episode/success_rate_100", row["success_rate_100"], step)
        for k in ("lr", "grad_norm", *self.stat_keys):
            if not math.isnan(row[k]):
                self._scalar(k if "/" in k else f"train/{k}", row[k], step)
        self._sums = dict.fromkeys(self.stat_keys, 0.0)
        self._updates = self._skipped = 0
        self._norm_sum = 0.0
        self._last_step, self._last_time = step, now
        return row

    def scalar(self, tag: str, value: float, step: int) -> None:
        if not self._started:
            self._start()
        self._scalar(tag, value, step)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        for backend in self._backends[:self._n_open]:
            backend.scalar(tag, value, step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        for fh in (self._ep_file, self._metrics_file):
            if fh:
                fh.close()
        for backend in self._backends[:self._n_open]:
            backend.close()


def open_csv(path: str, columns: tuple[str, ...]):
    """The CSV file `path` opened to append, its writer and its columns: `columns`, written as
    the header of a new file, or an existing file's own header (a file begun by an earlier
    version keeps its columns when a resume appends to it)."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    if not new:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), None)
        columns = tuple(header) if header else columns
    fh = open(path, "a", newline="")
    writer = csv.writer(fh)
    if new:
        writer.writerow(columns)
        fh.flush()
    return fh, writer, columns


def interactive() -> bool:
    """Whether a person is watching: stderr is a terminal, or this runs in a Jupyter kernel."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):      # a replaced or closed stream
        pass
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _fmt(v) -> str:
    """A CSV cell: a float to 6 significant digits, no value (an update mean of no updates, the
    mean return before any episode) left empty rather than written as nan."""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.6g}"
    return str(v)


def cut_back(path: str, step: int) -> str | None:
    """A run continues from global step `step` (a resume from a checkpoint there): the rows
    of its CSV `path` logged past that step belong to a stretch that a crash discarded, and
    are moved (not deleted) into a file beside it, `<name>.after-<step>-<time>`, with the
    header; a last line cut short by the crash goes with them. The episode count, the
    last-100 mean and best.pt's measure then go on from the checkpoint's state. Returns the
    file the rows were moved to (None: nothing to move)."""
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as fh:
        lines = fh.read().splitlines(keepends=True)
    if len(lines) < 2:
        return None
    keep, moved = [lines[0]], []
    for line in lines[1:]:
        try:
            ok = line.endswith("\n") and int(line.split(",", 1)[0]) <= step
        except ValueError:
            ok = False
        (keep if ok else moved).append(line)
    if not moved:
        return None
    stem = f"{path}.after-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, n = stem, 1
    while os.path.exists(aside):
        n += 1
        aside = f"{stem}-{n}"
    rows = [line if line.endswith("\n") else line + "\n" for line in moved]
    write_atomically(aside, "".join([lines[0], *rows]).encode())
    write_atomically(path, "".join(keep).encode())
    print(f"asyncrl: {len(moved):,} row{'s' * (len(moved) != 1)} of {os.path.basename(path)} logged past step "
          f"{step:,} (the stretch after the checkpoint resumed from) moved to {aside}", file=sys.stderr, flush=True)
    return aside
