"""Interrupting a run loses nothing: SIGINT/SIGTERM -> workers stop, checkpoint, exit 130."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import asyncrl
from helpers import run_cli
from subprocess_signals import sigint_as_at_a_terminal  # noqa: E402  (tests/ is on sys.path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_leaves_a_loadable_checkpoint(tmp_path, sig):
    run_dir = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "CartPole-v1",
                          "--workers", "2", "--steps", "10000000", "--run-dir", str(run_dir), "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=sigint_as_at_a_terminal)
    episodes = run_dir / "episodes.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (episodes.exists() and episodes.stat().st_size > 200):
        time.sleep(0.2)
    time.sleep(0.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    assert "interrupted at step" in err and "Traceback" not in err, err
    ckpt = run_dir / "checkpoints" / "latest.pt"
    assert ckpt.exists()
    agent = asyncrl.load(str(ckpt))
    assert 0 < agent.global_step < 10_000_000
    assert not (run_dir / "checkpoints" / "final.pt").exists()
    # no worker outlives the run
    out = subprocess.run(["pgrep", "-f", f"run-dir {run_dir}"], capture_output=True, text=True).stdout
    assert out.strip() == ""


def _csv_rows(path) -> list[list[str]]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("algo,sig", [("a3c", signal.SIGINT), ("n-step-q", signal.SIGTERM)])
def test_interrupt_then_resume_reaches_the_target_with_continuous_state(tmp_path, algo, sig):
    """SIGINT/SIGTERM mid-run, then `asyncrl train ALGO --run-dir D --resume`: the run continues
    from the checkpoint's global step with the saved optimiser statistics (and target network)
    and the same learning-rate schedule, ends exactly on the original --steps, and appends
    to episodes.csv and metrics.csv (one header each, steps not going back, the episode
    count going on from where it was)."""
    run_dir = tmp_path / "run"
    target = 60_000
    p = subprocess.Popen([sys.executable, "-m", "asyncrl", "train", algo, "--env", "CartPole-v1",
                          "--workers", "2", "--steps", str(target), "--run-dir", str(run_dir), "--quiet",
                          "--log-interval", "0.5", "--eval-episodes", "1", "--target-update", "1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=sigint_as_at_a_terminal)
    metrics = run_dir / "metrics.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and len(_csv_rows(metrics)) >= 2):
        time.sleep(0.1)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    saved = asyncrl.load(str(run_dir / "checkpoints" / "latest.pt"))
    assert 0 < saved.global_step < target and saved.schedule == (0, target)
    n_episodes = len(_csv_rows(run_dir / "episodes.csv"))

    # the agent that resumes starts from exactly the saved state
    again = asyncrl.load(str(run_dir / "checkpoints" / "latest.pt"))
    for k, v in saved.optimizer.state_dict().items():
        assert torch.equal(v, again.optimizer.state_dict()[k])
    if saved.target_params is not None:
        assert torch.equal(saved.target_params, again.target_params)

    r = run_cli("train", algo, "--env", "CartPole-v1", "--run-dir", str(run_dir), "--resume", "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"resuming {algo} on CartPole-v1 at step {saved.global_step:,} of {target:,}" in r.stderr
    final = asyncrl.load(str(run_dir / "checkpoints" / "final.pt"))
    assert final.global_step == target and final.schedule == (0, target)
    assert not torch.equal(final.optimizer.state_dict()[next(iter(final.optimizer.state_dict()))],
                           saved.optimizer.state_dict()[next(iter(saved.optimizer.state_dict()))])
    episodes = _csv_rows(run_dir / "episodes.csv")
    assert len(episodes) > n_episodes and sum(row[0] == "step" for row in episodes) == 1
    rows = _csv_rows(metrics)
    assert sum(row[0] == "step" for row in rows) == 1
    steps = [int(row[0]) for row in rows[1:]]
    assert steps == sorted(steps) and steps[-1] == target
    counts = [int(row[3]) for row in rows[1:]]          # the `episodes` column
    assert counts == sorted(counts) and counts[-1] == len(episodes) - 1
    assert any(s <= saved.global_step for s in steps) and any(s > saved.global_step for s in steps)


# --------------------------------------------------------------------------- every status line true
def _train_fault_after_final(tmp_path, fault: str, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """`asyncrl train` on toy_envs:FaultAfterFile-v0: `fault` strikes in the final evaluation
    (the env misbehaves once checkpoints/final.pt exists). Returns the process and its wall time."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "TOY_FAULT": fault, "TOY_FAULT_FILE": str(run_dir / "checkpoints" / "final.pt")}
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "toy_envs:FaultAfterFile-v0",
                        "--workers", "1", "--steps", "600", "--run-dir", str(run_dir), "--quiet", *extra],
                       capture_output=True, text=True, timeout=120, env=env, preexec_fn=sigint_as_at_a_terminal)
    return r, time.time() - t0


def test_sigint_during_the_final_evaluation_reports_a_finished_run(tmp_path):
    """Ctrl-C during the final evaluation: the training had finished (final.pt, the summary
    of its steps on stdout), and that is what is said; only the evaluation was interrupted
    (no eval.json), exit 130 as for any Ctrl-C."""
    r, _ = _train_fault_after_final(tmp_path, "sigint", "--eval-episodes", "3")
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "interrupted at step" not in r.stderr, r.stderr
    assert "600 steps in" in r.stdout, r.stdout
    final = tmp_path / "run" / "checkpoints" / "final.pt"
    assert f"training finished: {final} (step 600); the final evaluation was interrupted (no eval.json" \
        in r.stderr, r.stderr
    assert asyncrl.load(str(final)).global_step == 600
    assert not (tmp_path / "run" / "eval.json").exists()


def test_the_summary_rate_leaves_the_evaluation_out(tmp_path):
    """'N steps in T s (R steps/s)' times the training alone: an evaluation that takes 8 s
    (its env sleeps) is not in T."""
    r, _ = _train_fault_after_final(tmp_path, "sleep:8", "--eval-episodes", "1")
    assert r.returncode == 0, r.stderr
    m = re.search(r"600 steps in ([\d.]+) s \(([\d,]+) steps/s\)", r.stdout)
    assert m, r.stdout
    assert float(m.group(1)) < 7.0, r.stdout
    assert (tmp_path / "run" / "eval.json").exists()


def test_sigint_before_training_starts_says_nothing_was_saved(tmp_path):
    """Ctrl-C right after start, before the first step or checkpoint (here: as the run's logger
    is made): exit 130, and the message does not claim a checkpoint that was never written."""
    run_dir = tmp_path / "run"
    script = f"""
import os, signal, sys
import asyncrl.metrics as metrics
real = metrics.RunLogger.__init__
def early(self, *a, **k):
    os.kill(os.getpid(), signal.SIGINT)
    real(self, *a, **k)
metrics.RunLogger.__init__ = early
from asyncrl.cli import main
sys.exit(main(["train", "a3c", "--env", "CartPole-v1", "--workers", "1", "--steps", "1000",
               "--run-dir", {str(run_dir)!r}, "--quiet"]))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       preexec_fn=sigint_as_at_a_terminal)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    latest = run_dir / "checkpoints" / "latest.pt"
    assert not latest.exists()
    assert "checkpoint saved" not in r.stderr, r.stderr
    assert "interrupted at step 0 before any checkpoint was written; nothing to resume" in r.stderr, r.stderr


def test_sigterm_as_the_workers_start_stops_them_and_says_what_was_saved(tmp_path):
    """SIGTERM while the hogwild workers are being started (here: right after the first one):
    the started ones are stopped and the run exits 130 promptly, saying which checkpoint it
    saved, and no worker outlives it."""
    run_dir = tmp_path / "run"
    script = f"""
import os, signal, sys
import asyncrl.executors.hogwild as hogwild
real = hogwild._Worker.start
def start(self):
    out = real(self)
    if self.rank == 0:
        os.kill(os.getpid(), signal.SIGTERM)
    return out
hogwild._Worker.start = start
from asyncrl.cli import main
sys.exit(main(["train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "10000000",
               "--run-dir", {str(run_dir)!r}, "--quiet"]))
"""
    _interrupted_with_its_checkpoint(script, run_dir)
    time.sleep(1.0)
    left = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout
    assert left.strip() == "", left


def test_sigterm_while_the_logger_opens_tensorboard_waits_for_the_open_to_finish(tmp_path):
    """A SIGTERM that lands while the main process opens TensorBoard (its first import, done
    when the first episode is logged) is read between the supervision loop's steps: the open
    finishes, then the run stops, exit 130. Raised inside it, the signal had left a
    half-imported module (`partially initialized module 'fsspec'`) that failed the shutdown
    with exit 1 and a traceback. Here the open is counted as it starts and as it ends."""
    run_dir, marks = tmp_path / "run", tmp_path / "opens.txt"
    script = f"""
import os, signal, sys
import asyncrl.loggers as loggers
real = loggers.TensorBoardBackend.open
def open_(self):
    with open({str(marks)!r}, "a") as f:
        f.write("start\\n")
    os.kill(os.getpid(), signal.SIGTERM)
    real(self)
    with open({str(marks)!r}, "a") as f:
        f.write("end\\n")
loggers.TensorBoardBackend.open = open_
from asyncrl.cli import main
sys.exit(main(["train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "10000000",
               "--run-dir", {str(run_dir)!r}, "--quiet"]))
"""
    _interrupted_with_its_checkpoint(script, run_dir)
    assert marks.read_text().split() == ["start", "end"], marks.read_text()


def _interrupted_with_its_checkpoint(script: str, run_dir) -> None:
    """Run `script` (a training it interrupts): exit 130, no traceback, and the message names
    the checkpoint it saved, at the step that checkpoint holds."""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    latest = run_dir / "checkpoints" / "latest.pt"
    step = asyncrl.load(str(latest)).global_step
    assert f"interrupted at step {step:,}; checkpoint saved to {latest} (step {step:,})" in r.stderr, r.stderr
