"""`asyncrl train`: start a run, resume one (by its folder), or run several seeds."""
from __future__ import annotations

import argparse
import sys

from .cli_args import config_values
from .status import run_and_report


def cmd_train(args: argparse.Namespace) -> int:
    """`asyncrl train` (an OSError from it is exit code 5 in `cli.main`, as for every command)."""
    _resume_mode(args)
    values = config_values(args)
    if args.seeds is not None:
        from .seeds import train_seeds

        return train_seeds(args, values, train_in)
    return train_in(args, values, values.pop("run_dir", ""))


def train_in(args: argparse.Namespace, values: dict, run_dir: str) -> int:
    """Start (or with --resume continue) the run of `args` and `values` in `run_dir` ("": a new
    folder under runs/)."""
    from .api import AGENTS
    from .errors import ConfigError
    from .executors import make_executor
    from .resume import has_checkpoint
    from .paths import default_run_dir
    from .run import is_marked

    if args.resume:
        if args.overwrite:
            raise ConfigError("--resume continues the run in --run-dir and --overwrite would replace it; give one")
        if not run_dir:
            raise ConfigError("--resume needs --run-dir DIR, the run folder to continue")
        if args.resume == "yes" or has_checkpoint(run_dir):
            return _resume(args, values, run_dir)
    if args.algo is None or args.env is None:
        what = "ALGO" if args.algo is None else "--env ENV"
        raise ConfigError(f"{what} is required to start a run"
                          + (f" ({run_dir!r} holds no checkpoint to resume)" if args.resume else ""))
    run_dir = run_dir or default_run_dir(args.algo, args.env)
    # --resume auto, no checkpoint: a run stopped before its first checkpoint starts afresh
    # (only from a folder asyncrl made, and only asyncrl's files are replaced)
    overwrite = args.overwrite or (args.resume == "auto" and is_marked(run_dir))
    workers = values.pop("workers", None)
    agent = AGENTS[args.algo](args.env, workers=workers, run_dir=run_dir, overwrite=overwrite,
                              progress=False if args.quiet else None, **values)
    cfg = agent.config
    how = make_executor(cfg).describe()
    frames = f" ({cfg.steps * agent.frames_per_step:,} emulator frames)" if agent.frames_per_step > 1 else ""
    print(f"asyncrl: training {cfg.algo} on {cfg.env} with {how} for {cfg.steps:,} agent steps{frames} "
          f"-> {run_dir}", file=sys.stderr, flush=True)
    return run_and_report(agent.learn, agent, run_dir)


def _resume_mode(args: argparse.Namespace) -> None:
    """--resume takes no value or `auto`; `--resume ALGO ...` (argparse gives ALGO to --resume) is ALGO."""
    from .config import ALGOS
    from .errors import ConfigError

    if args.resume in (None, "yes", "auto"):
        return
    if args.algo is None and args.resume in ALGOS:
        args.algo, args.resume = args.resume, "yes"
        return
    raise ConfigError(f"--resume takes no value or 'auto', got {args.resume!r}")


def _resume(args: argparse.Namespace, values: dict, run_dir: str) -> int:
    from .errors import ConfigError
    from .resume import has_checkpoint, load_for_resume

    if not has_checkpoint(run_dir):
        raise ConfigError(f"--resume: {run_dir!r} has no checkpoints/latest.pt to continue from "
                          f"(--resume auto starts a new run then)")
    agent = load_for_resume(run_dir, args.algo, args.env, values, progress=False if args.quiet else None)
    start, target = agent.global_step, agent.schedule[1]
    if start >= target:
        print(f"asyncrl: {run_dir} already reached its target of {target:,} steps; nothing to do (raise --steps "
              f"to train longer)", file=sys.stderr, flush=True)
        return 0
    print(f"asyncrl: resuming {agent.algo} on {agent.config.env} at step {start:,} of {target:,} "
          f"-> {run_dir}", file=sys.stderr, flush=True)
    return run_and_report(agent.resume, agent, run_dir)


