"""Faults done for real: workers killed, envs that raise or hang, checkpoints cut in half,
non-finite updates. Nothing learned is lost and the global step count stays exact."""
from __future__ import annotations

import csv
import os
import re
import signal
import time

import pytest
import torch

import asyncrl
from asyncrl.errors import CheckpointError
from asyncrl.procs import child_pids
from helpers import run_cli, train_cli, wait_for
from toy_envs import FaultOnThirdEpisode


def episodes_logged(run_dir, n: int = 5) -> bool:
    path = run_dir / "episodes.csv"
    return path.exists() and len(path.read_text().splitlines()) > n


def read_rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- worker faults
def test_sigkill_of_a_worker_mid_run_is_survived_with_the_exact_step_count(tmp_path):
    """SIGKILL one of two hogwild workers mid-run: the main process reports it, gives the
    worker's reserved steps back, starts a replacement with the same rank on the current
    parameters, and the run ends exactly on --steps (exit 0), the replacement training on."""
    run_dir, target = tmp_path / "run", 40_000
    p = train_cli("a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", str(target),
                  "--run-dir", str(run_dir), "--eval-episodes", "0")
    wait_for(lambda: episodes_logged(run_dir) and len(child_pids(p.pid)) == 2, what="two training workers")
    victim = child_pids(p.pid)[0]
    os.kill(victim, signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    m = re.search(r"asyncrl: step ([\d,]+): worker (\d) was killed by SIGKILL; restarting it on the current "
                  r"parameters \(restart 1 of at most 10\)", err)
    assert m, err
    killed_at, rank = int(m.group(1).replace(",", "")), m.group(2)
    assert 0 < killed_at < target
    assert "1 worker restart" in out
    assert asyncrl.load(str(run_dir)).global_step == target
    assert asyncrl.load(str(run_dir / "checkpoints" / "final.pt")).global_step == target
    # the replacement (same rank) finished episodes after the kill
    assert any(r["worker"] == rank and int(r["step"]) > killed_at for r in read_rows(run_dir / "episodes.csv"))
    assert "was killed by SIGKILL" in (run_dir / "faults.log").read_text()


def test_env_failing_on_its_third_episode_is_restarted_and_reported(tmp_path, capsys):
    """An env that raises at the start of its 3rd episode takes its worker down; the worker
    is restarted (its traceback reported on stderr and in faults.log) and the run completes
    with the exact step count."""
    marker = str(tmp_path / "raised")
    agent = asyncrl.A3C(lambda: FaultOnThirdEpisode(marker), workers=2, eval_episodes=0,
                        run_dir=str(tmp_path / "run"))
    agent.learn(6_000)
    assert os.path.exists(marker)
    assert agent.global_step == 6_000 and agent.worker_restarts == 1
    err = capsys.readouterr().err
    assert re.search(r"worker \d failed: RuntimeError: flaky env: 3rd episode; restarting it", err), err
    assert "Traceback (most recent call last)" in err and "in reset" in err
    log = (tmp_path / "run" / "faults.log").read_text()
    assert "flaky env: 3rd episode" in log and "restart 1 of at most 10" in log


def test_a_hung_worker_is_killed_and_replaced(tmp_path, capsys):
    """A worker whose env hangs (sleeps in reset) finishes no segment: after worker-timeout
    seconds the main process kills it, gives its reserved steps back and replaces it; the
    run ends exactly on its target instead of waiting forever."""
    marker = str(tmp_path / "hung")
    agent = asyncrl.A3C(lambda: FaultOnThirdEpisode(marker, fault="hang"), workers=2, eval_episodes=0,
                        worker_timeout=4)
    t0 = time.time()
    agent.learn(6_000)
    assert os.path.exists(marker)
    assert agent.global_step == 6_000 and agent.worker_restarts == 1
    assert time.time() - t0 < 60
    assert re.search(r"worker \d finished no segment for 4 s \(hung; killed\); restarting it",
                     capsys.readouterr().err)


def test_env_failing_on_every_reset_stops_after_the_bounded_restarts(tmp_path):
    """An env that raises on every reset: each replacement dies too; after
    --max-worker-restarts restarts the run stops with exit code 3, the worker's traceback,
    and a loadable checkpoint the message names."""
    run_dir = tmp_path / "run"
    p = train_cli("a3c", "--env", "toy_envs:FailingReset-v0", "--workers", "2", "--steps", "1000",
                  "--max-worker-restarts", "2", "--run-dir", str(run_dir))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    assert re.search(r"asyncrl train: error: worker \d failed: RuntimeError: this env fails on every reset "
                     r"at step 0; the run stops: 2 worker restarts already \(max-worker-restarts 2\)", err), err
    assert err.count("restarting it on the current parameters") == 2
    assert "raise RuntimeError(\"this env fails on every reset\")" in err          # the traceback
    latest = run_dir / "checkpoints" / "latest.pt"
    assert f"the latest checkpoint is {latest} (step 0)" in err and "--resume" in err
    assert asyncrl.load(str(latest)).global_step == 0
    assert not (run_dir / "checkpoints" / "final.pt").exists()
    assert "the run stops" in (run_dir / "faults.log").read_text()
    # the failed run resumes, and a resume may change the bound
    r = run_cli("train", "a3c", "--env", "toy_envs:FailingReset-v0", "--run-dir", str(run_dir), "--resume",
                "--max-worker-restarts", "1", "--quiet", timeout=120)
    assert r.returncode == 3, r.stderr
    assert "resuming a3c on toy_envs:FailingReset-v0 at step 0 of 1,000" in r.stderr
    assert "the run stops: 1 worker restart already (max-worker-restarts 1)" in r.stderr


def test_killing_the_training_process_takes_its_workers_with_it(tmp_path):
    """SIGKILL to the training process itself (no chance to clean up): the kernel kills its
    workers too (PR_SET_PDEATHSIG), so no orphan goes on training."""
    run_dir = tmp_path / "run"
    p = train_cli("a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "10000000",
                  "--run-dir", str(run_dir))
    wait_for(lambda: episodes_logged(run_dir) and len(child_pids(p.pid)) == 2, what="two training workers")
    workers = child_pids(p.pid)
    p.kill()
    p.communicate(timeout=30)
    wait_for(lambda: not any(os.path.exists(f"/proc/{w}") and _state(w) != "Z" for w in workers),
             timeout=10, what="the workers to exit")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


# --------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpointed_run(tmp_path_factory):
    """A CLI run that checkpoints every 0.2 s and keeps the newest 2 step-<N>.pt files."""
    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    p = train_cli("a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "30000",
                  "--checkpoint-interval", "0.2", "--keep-checkpoints", "2", "--eval-episodes", "0",
                  "--run-dir", str(run_dir))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return run_dir


def test_the_last_k_periodic_checkpoints_and_the_best_are_kept(checkpointed_run):
    """checkpoints/ holds latest.pt, final.pt, best.pt and only the newest 2 step-<N>.pt
    (N their global step; the last one is the final step). best.pt holds the best mean
    return of 100 consecutive training episodes seen at a checkpoint: that window really
    occurs in episodes.csv, ending before best.pt's step, and it is at least the mean of
    the last 100 episodes (the measure at the final checkpoint)."""
    folder = checkpointed_run / "checkpoints"
    steps = sorted(int(f[5:-3]) for f in os.listdir(folder) if f.startswith("step-"))
    assert len(steps) == 2 and steps[-1] == 30_000, os.listdir(folder)
    for s in steps:
        assert asyncrl.load(str(folder / f"step-{s}.pt")).global_step == s
    best, latest = asyncrl.load(str(folder / "best.pt")), asyncrl.load(str(folder / "latest.pt"))
    assert best.best_return == latest.best_return and best.global_step <= latest.global_step
    rows = read_rows(checkpointed_run / "episodes.csv")
    returns = [float(r["return"]) for r in rows]
    means = [(sum(returns[i - 100:i]) / 100, int(rows[i - 1]["step"])) for i in range(100, len(returns) + 1)]
    assert any(abs(m - best.best_return) < 1e-3 and s <= best.global_step for m, s in means)
    assert best.best_return >= means[-1][0] - 1e-3


def test_a_checkpoint_truncated_to_half_is_refused_naming_it(checkpointed_run, tmp_path):
    """A checkpoint cut to half its bytes: load() and `asyncrl eval` refuse it with one line
    naming the file, and the file is left as it was."""
    half = tmp_path / "half.pt"
    data = (checkpointed_run / "checkpoints" / "final.pt").read_bytes()
    half.write_bytes(data[: len(data) // 2])
    before = half.read_bytes()
    with pytest.raises(CheckpointError, match=re.escape(repr(str(half))) + " is not a readable asyncrl checkpoint"):
        asyncrl.load(str(half))
    p = run_cli("eval", str(half), timeout=60)
    assert p.returncode == 2 and str(half) in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert half.read_bytes() == before


def test_resume_after_latest_is_corrupted_falls_back_to_the_newest_step_checkpoint(tmp_path):
    """SIGTERM mid-run, then latest.pt is cut in half (a disk fault): --resume warns, moves
    the bad file aside (not overwritten), continues from the newest readable step-<N>.pt,
    and ends exactly on the original target."""
    run_dir, target = tmp_path / "run", 30_000
    p = train_cli("a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", str(target),
                  "--checkpoint-interval", "0.3", "--eval-episodes", "0", "--run-dir", str(run_dir))
    folder = run_dir / "checkpoints"
    wait_for(lambda: len([f for f in os.listdir(folder) if f.startswith("step-")]) >= 2
             if folder.exists() else False, what="two periodic checkpoints")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    latest = folder / "latest.pt"
    data = latest.read_bytes()
    latest.unlink()                      # latest.pt is a hard link to the last step-<N>.pt: cut only it
    latest.write_bytes(data[: len(data) // 2])
    newest = max(int(f[5:-3]) for f in os.listdir(folder) if f.startswith("step-"))
    r = run_cli("train", "a3c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--resume", "--quiet", timeout=180)
    assert r.returncode == 0, r.stderr
    assert f"{str(latest)!r} is not a readable asyncrl checkpoint" in r.stderr
    assert f"resuming from {folder / f'step-{newest}.pt'} (step {newest:,}) instead" in r.stderr
    assert f"resuming a3c on CartPole-v1 at step {newest:,} of {target:,}" in r.stderr
    aside = [f for f in os.listdir(folder) if f.startswith("latest.pt.corrupt-")]
    assert len(aside) == 1 and (folder / aside[0]).read_bytes() == data[: len(data) // 2]
    assert asyncrl.load(str(run_dir)).global_step == target


# --------------------------------------------------------------------------- numerical faults
def test_an_injected_nan_gradient_is_skipped_and_the_parameters_stay_finite(tmp_path):
    """Each worker's env gives one nan reward (its 30th step): the segment holding it has a
    non-finite loss and gradient, which is skipped and counted (2 workers: 2 skipped
    updates in metrics.csv), never applied; the run completes with finite parameters."""
    run_dir = tmp_path / "run"
    p = train_cli("a3c", "--env", "toy_envs:NaNRewardOnce-v0", "--workers", "2", "--steps", "3000",
                  "--eval-episodes", "0", "--run-dir", str(run_dir))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    rows = read_rows(run_dir / "metrics.csv")
    assert sum(int(r["skipped_updates"]) for r in rows) == 2
    assert sum(int(r["updates"]) for r in rows) > 100
    agent = asyncrl.load(str(run_dir))
    assert agent.global_step == 3000 and torch.isfinite(agent.params).all()


@pytest.mark.parametrize("executor", ["hogwild", "sync"])
def test_too_many_nonfinite_updates_in_a_row_stop_the_run_with_a_checkpoint(tmp_path, executor):
    """Every reward nan: every update is skipped; after --max-nonfinite-updates in a row the
    run stops with exit code 4 and one clear message, and latest.pt holds the last good
    parameters: exactly the initial ones, since no update was ever applied."""
    run_dir = tmp_path / "run"
    p = train_cli("a3c", "--env", "toy_envs:NaNRewardAlways-v0", "--workers", "2", "--steps", "100000",
                  "--executor", executor, "--max-nonfinite-updates", "20", "--run-dir", str(run_dir))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 4, err
    assert re.search(r"asyncrl train: error: (worker \d: )?20 non-finite updates in a row "
                     r"\(max-nonfinite-updates 20\) at step [\d,]+", err), err
    assert "Traceback" not in err
    saved = asyncrl.load(str(run_dir / "checkpoints" / "latest.pt"))
    initial = asyncrl.A3C("toy_envs:NaNRewardAlways-v0", workers=2, executor=executor)
    assert torch.equal(saved.params, initial.params)
    assert 0 < saved.global_step < 100_000
