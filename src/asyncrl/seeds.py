"""`asyncrl train --seeds 0 1 2`: one run per seed, in <run-dir>/seed-<SEED>.

Every seed's configuration is checked before the first run starts (a bad one is one line,
exit 2, nothing made). The runs go one after another, in this process, unless the cores
allow several at once without oversubscribing them: a run takes as many cores as it has
hogwild or ray workers (`--workers`, the cores by default) and a sync run takes them all,
so on a small machine, or with the default number of workers, they are sequential. Runs
side by side each go in a process of their own, their output in <run-dir>/seed-<SEED>.log.
`--resume` (and `--resume auto`) continues each seed's folder. `asyncrl plot <run-dir>`
draws the seeds' mean and its 95% interval.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from typing import Callable

from .config import Config, coerce_field
from .config.limits import MAX_WORKERS
from .errors import EXIT_INTERRUPTED, ConfigError
from .system import available_cores

TrainIn = Callable[[argparse.Namespace, dict, str], int]


def seed_values(args: argparse.Namespace, values: dict) -> list[int]:
    """The seeds of --seeds, checked: whole numbers, no repeats, not with --seed, and each
    seed's configuration valid (ConfigError: one line)."""
    if "seed" in values:
        raise ConfigError("--seeds trains one run per seed; drop --seed")
    seeds = [coerce_field("seed", s, source="--seeds") for s in args.seeds]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"--seeds: seed {repeated[0]} is given twice; each seed is one run folder")
    if args.algo is not None and args.env is not None:
        for seed in seeds:
            found = Config.from_dict({**values, "algo": args.algo, "env": args.env, "seed": seed,
                                      "run_dir": values.get("run_dir") or "runs/x"}).validate()
            if found:
                raise ConfigError(found[0])
    return seeds


def at_once(args: argparse.Namespace, values: dict, cores: int | None = None) -> int:
    """How many seeds may train side by side: the cores over the cores one run takes."""
    cores = available_cores() if cores is None else cores
    executor = values.get("executor", "auto")
    if executor == "sync" or (executor == "auto" and args.algo == "a2c"):
        return 1                      # the sync executor's envs and learner use every core
    per_run = min(int(values.get("workers") or cores), MAX_WORKERS)
    return max(1, cores // max(1, per_run))


def train_seeds(args: argparse.Namespace, values: dict, train_in: TrainIn, cores: int | None = None) -> int:
    """Train (or resume) one run per seed; the first exit code that is not 0 ends it."""
    from .paths import default_run_dir

    seeds = seed_values(args, values)
    base = values.pop("run_dir", "")
    if not base:
        if args.algo is None or args.env is None:
            raise ConfigError("--seeds with --resume needs --run-dir DIR, the folder of the seeds' runs")
        base = default_run_dir(args.algo, args.env)
    runs = [(seed, os.path.join(base, f"seed-{seed}")) for seed in seeds]
    parallel = min(len(runs), at_once(args, values, cores))
    print(f"asyncrl: {len(runs)} seeds ({', '.join(map(str, seeds))}), {parallel} at a time -> "
          f"{os.path.join(base, 'seed-*')}", file=sys.stderr, flush=True)
    if parallel == 1:
        for seed, run_dir in runs:
            code = train_in(args, {**values, "seed": seed}, run_dir)
            if code != 0:
                return _stopped(seed, code)
        return 0
    return _side_by_side(args, values, runs, parallel, train_in)


def _stopped(seed: int, code: int) -> int:
    if code != EXIT_INTERRUPTED:
        print(f"asyncrl: seed {seed} ended with exit code {code}; the seeds after it were not trained",
              file=sys.stderr, flush=True)
    return code


def _side_by_side(args: argparse.Namespace, values: dict, runs: list[tuple[int, str]], parallel: int,
                  train_in: TrainIn) -> int:
    """Runs `parallel` at a time, each in a spawned process (its workers fork from it)."""
    ctx = multiprocessing.get_context("spawn")
    quiet = argparse.Namespace(**{**vars(args), "quiet": True})
    pending, running, first_failure = list(runs), [], 0
    try:
        while pending or running:
            while pending and len(running) < parallel and first_failure == 0:
                seed, run_dir = pending.pop(0)
                os.makedirs(os.path.dirname(os.path.abspath(run_dir)), exist_ok=True)
                proc = ctx.Process(target=_child, args=(train_in, quiet, {**values, "seed": seed}, run_dir,
                                                        run_dir + ".log"))
                proc.start()
                running.append((seed, proc))
            if not running:
                break
            seed, proc = running.pop(0)
            proc.join()
            if proc.exitcode != 0 and first_failure == 0:
                first_failure = _stopped(seed, proc.exitcode if proc.exitcode > 0 else EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        for _, proc in running:       # each saves its checkpoint on SIGINT (as Ctrl-C would)
            if proc.is_alive():
                os.kill(proc.pid, 2)
        for _, proc in running:
            proc.join()
        raise
    return first_failure


def _child(train_in: TrainIn, args: argparse.Namespace, values: dict, run_dir: str, log_path: str) -> None:
    from .errors import command_line_words, exit_code

    with command_line_words():
        try:
            with open(log_path, "a") as log:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
            code = train_in(args, values, run_dir)
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        except Exception as exc:      # one line and the exit code, as the command line's main says them
            print(f"asyncrl train: error: {' '.join(str(exc).splitlines())}", file=sys.stderr, flush=True)
            code = exit_code(exc)
    sys.exit(code)
