"""What `asyncrl train` says when a run ends, every line true whatever happened: the
summary of a finished run (its rate, the final evaluation left out), an interruption (the
checkpoint it saved, or that there is none), a failure (its exit code, the latest
checkpoint and how to continue), and a finished run whose final evaluation was what was
interrupted or failed."""
from __future__ import annotations

import os
import sys

from .errors import (EXIT_INTERRUPTED, EXIT_IO_FAILED, EXIT_NONFINITE, EXIT_WORKER_FAILED, NonFiniteError,
                     WorkerError)


def run_and_report(train, agent, run_dir: str) -> int:
    """Call `train` (the agent's learn or resume), then report; returns the exit code:
    0, 130 (Ctrl-C/SIGTERM), 3, 4, or 5 (the run folder could not be written)."""
    start = agent.global_step
    latest = os.path.join(run_dir, "checkpoints", "latest.pt")
    final = os.path.join(run_dir, "checkpoints", "final.pt")
    try:
        train()
    except KeyboardInterrupt:
        if agent.finished:              # Ctrl-C during the final evaluation
            summary(agent, start, run_dir)
            print(f"asyncrl: training finished: {final} (step {agent.global_step:,}); the final evaluation was "
                  f"interrupted (no eval.json; asyncrl eval {run_dir} evaluates it)", file=sys.stderr)
        else:
            print(f"\nasyncrl: interrupted at step {agent.global_step:,}{_interrupted(agent, latest, run_dir)}",
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    except (WorkerError, NonFiniteError, OSError) as exc:
        code = EXIT_IO_FAILED if isinstance(exc, OSError) else \
            EXIT_WORKER_FAILED if isinstance(exc, WorkerError) else EXIT_NONFINITE
        print(f"asyncrl train: error: {exc}", file=sys.stderr)
        if agent.finished:              # the final evaluation failed, not the training
            print(f"asyncrl: training finished: {final} (step {agent.global_step:,}); no eval.json", file=sys.stderr)
            return code
        how = f"continue with: asyncrl train {agent.algo} --env {agent.config.env} --run-dir {run_dir} --resume"
        if isinstance(exc, NonFiniteError):
            how = "it holds the last parameters that were finite"
        elif isinstance(exc, OSError):
            how = f"once the folder can be written again (free some space), {how}"
        if os.path.isfile(latest):
            print(f"asyncrl: the latest checkpoint is {latest} (step {saved_step(latest)}); {how}", file=sys.stderr)
        else:
            print(f"asyncrl: no checkpoint was written ({latest} does not exist)", file=sys.stderr)
        return code
    summary(agent, start, run_dir)
    return 0


def _interrupted(agent, latest: str, run_dir: str) -> str:
    """What an interrupted run has saved: the checkpoint it wrote, or why there is none."""
    if agent.checkpoints_written:
        return f"; checkpoint saved to {latest} (step {agent.checkpoint_step:,})"
    if os.path.isfile(latest):
        return f" before a new checkpoint was written; the latest checkpoint is {latest} (step {saved_step(latest)})"
    return f" before any checkpoint was written; nothing to resume in {run_dir}"


def summary(agent, start: int, run_dir: str) -> None:
    """A finished run on stdout: its steps and their rate (the training alone, not the final
    evaluation), the training returns, the evaluation."""
    elapsed = max(agent.train_seconds, 1e-9)
    done = agent.global_step - start
    where = f", global step {agent.global_step:,}" if start else ""
    k = agent.frames_per_step
    frames = f" = {done * k:,} frames ({done * k / elapsed:,.0f} frames/s)" if k > 1 else ""
    restarts = f"; {agent.worker_restarts} worker restart{'s' * (agent.worker_restarts != 1)} " \
               f"(see faults.log)" if agent.worker_restarts else ""
    print(f"asyncrl: {done:,} steps in {agent.train_seconds:.1f} s ({done / elapsed:,.0f} steps/s){frames}{where}"
          f"; last-100 training episodes: mean return {agent.recent_return:.1f}{restarts}")
    if agent.last_eval:
        print(f"asyncrl: evaluation over {describe_eval(agent.last_eval)}")
    print(f"asyncrl: run folder {run_dir}: config.yaml episodes.csv metrics.csv tb/ checkpoints/final.pt")


def describe_eval(ev: dict, greedy: bool = True) -> str:
    how = ("greedy" if greedy else "stochastic") + (f", epsilon {ev['epsilon']:g}" if ev.get("epsilon") else "")
    episodes = f"{ev['episodes']} episode{'s' if ev['episodes'] != 1 else ''}"
    text = (f"{episodes} ({how}): mean return {ev['mean_return']:.2f} +/- {ev['std_return']:.2f} "
            f"(min {ev['min_return']:.1f}, max {ev['max_return']:.1f})")
    if ev.get("human_normalized") is not None:
        text += f"; human-normalised {100 * ev['human_normalized']:.1f}%"
    if ev.get("success_rate") is not None:
        text += f"; success rate {ev['success_rate']:.2f}"
    return text


def saved_step(path: str) -> str:
    """The global step of the checkpoint at `path`, for a message."""
    from .checkpoint import load_checkpoint
    from .errors import CheckpointError

    try:
        return f"{load_checkpoint(path)['global_step']:,}"
    except CheckpointError:
        return "unknown: the file is not readable"
