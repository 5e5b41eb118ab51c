"""Resume by folder (issue 30, item 5): `asyncrl train --resume --run-dir D` continues with
what the folder stores; the original command with `--resume` is accepted, a changed value
is refused naming its stored value, `--steps` may be raised (the learning rate then anneals
to 0 over the new total, as for a run started with it), `--resume auto` resumes or starts."""
from __future__ import annotations

import csv
import signal
import subprocess
import sys

import asyncrl
from helpers import assert_refused_in_one_line, run_cli as asyncrl_cli, run_cli_forked, wait_for
from subprocess_signals import sigint_as_at_a_terminal  # noqa: E402  (tests/ is on sys.path)

from asyncrl.checkpoint import load_checkpoint


def metrics_rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_original_command_with_resume_continues_an_interrupted_run(tmp_path):
    """Train with `--workers 2 --seed 3 --steps N`, interrupt it, then the very same command
    plus `--resume`: accepted (the repeated values are the stored ones), and the run ends on N."""
    run_dir = tmp_path / "run"
    target = 40_000
    command = ["train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--seed", "3", "--steps", str(target),
               "--run-dir", str(run_dir), "--quiet", "--log-interval", "0.3", "--eval-episodes", "1"]
    p = subprocess.Popen([sys.executable, "-m", "asyncrl", *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=sigint_as_at_a_terminal)
    wait_for(lambda: (run_dir / "metrics.csv").exists() and len(metrics_rows(run_dir)) >= 1, timeout=180,
             what="a metrics row (training under way)")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    saved = load_checkpoint(str(run_dir / "checkpoints" / "latest.pt"))["global_step"]
    assert 0 < saved < target

    r = asyncrl_cli(*command, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resuming a3c on CartPole-v1 at step {saved:,} of {target:,}" in r.stderr
    final = asyncrl.load(str(run_dir / "checkpoints" / "final.pt"))
    assert final.global_step == target and final.schedule == (0, target)
    assert final.config.workers == 2 and final.config.seed == 3


def test_resume_with_the_folder_alone_and_a_changed_value_refused(tmp_path):
    """`asyncrl train --resume --run-dir D` needs neither ALGO nor --env; a value that differs
    from the stored one is one line naming it and its stored value, exit 2, the folder unchanged;
    a finished run at its target resumes to nothing (exit 0)."""
    run_dir = tmp_path / "run"
    r = asyncrl_cli("train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--seed", "3", "--steps", "2000",
                    "--run-dir", str(run_dir), "--quiet", "--eval-episodes", "0")
    assert r.returncode == 0, r.stderr
    cases = [(["--workers", "3"], "--workers 3 differs from the run's stored value 2 in"),
             (["--seed", "4"], "--seed 4 differs from the run's stored value 3 in"),
             (["--lr", "0.5"], "--lr 0.5 differs from the run's stored value 0.002 in"),
             (["--hidden", "32", "32"], "--hidden 32 32 differs from the run's stored value 64 64 in"),
             (["--steps", "1000"], "--steps 1000 is below the run's target of 2000 steps"),
             (["--env", "Acrobot-v1"], "holds a run of a3c on CartPole-v1, not a3c on Acrobot-v1"),
             (["--overwrite"], "--overwrite would replace it")]
    before = sorted(p.name for p in run_dir.rglob("*"))
    runs = run_cli_forked([{"args": ["train", "--resume", "--run-dir", str(run_dir), *flags], "cwd": str(tmp_path),
                            "watch": None} for flags, _ in cases]
                          + [{"args": ["train", "n-step-q", "--resume", "--run-dir", str(run_dir)],
                              "cwd": str(tmp_path), "watch": None}])
    for (_, said), q in zip(cases + [(None, "holds a run of a3c on CartPole-v1, not n-step-q")], runs):
        assert_refused_in_one_line(q["returncode"], q["stdout"], q["stderr"], said)
    assert sorted(p.name for p in run_dir.rglob("*")) == before
    # the stored values and `auto` values that resolve to them are the original run
    q = asyncrl_cli("train", "--resume", "--run-dir", str(run_dir), "--workers", "2", "--preset", "auto",
                    "--executor", "auto", "--lr", "0.002", "--steps", "2000")
    assert q.returncode == 0, q.stderr
    assert f"{run_dir} already reached its target of 2,000 steps; nothing to do" in q.stderr


def test_raising_steps_trains_on_and_the_learning_rate_anneals_over_the_new_total(tmp_path):
    """A finished 3000-step run resumed with --steps 6000 trains to 6000; its learning rate,
    0 at the end of the first run, follows lr * (1 - step / 6000) after the resume: the
    paper's linear schedule over the new total (what a run started with --steps 6000 has).
    (a2c: the sync loop logs a metrics row every --log-steps exactly.)"""
    run_dir = tmp_path / "run"
    common = ["--workers", "2", "--run-dir", str(run_dir), "--quiet", "--eval-episodes", "0", "--log-steps", "500"]
    r = asyncrl_cli("train", "a2c", "--env", "CartPole-v1", "--steps", "3000", *common)
    assert r.returncode == 0, r.stderr
    first = metrics_rows(run_dir)
    r = asyncrl_cli("train", "--resume", "--steps", "6000", *common)
    assert r.returncode == 0, r.stderr
    assert "resuming a2c on CartPole-v1 at step 3,000 of 6,000" in r.stderr
    data = load_checkpoint(str(run_dir / "checkpoints" / "final.pt"))
    assert data["global_step"] == 6000 and data["schedule"] == [0, 6000] and data["config"]["steps"] == 6000
    lr0 = data["config"]["lr"]
    rows = metrics_rows(run_dir)
    before = [r for r in rows if int(r["step"]) <= 3000]
    after = [r for r in rows if int(r["step"]) > 3000 and r["lr"] not in ("", "nan")]   # no update in the row
    assert len(before) == len(first) >= 4 and len(after) >= 4
    assert float(before[-1]["lr"]) < lr0 * 0.02                     # annealed to (about) 0 at 3000
    for row in after:       # the lr of the last update before the row: a few segments back at most
        step, lr = int(row["step"]), float(row["lr"])
        assert abs(lr - lr0 * (1 - step / 6000)) <= lr0 * 100 / 6000, (step, lr)
    assert float(after[0]["lr"]) > lr0 * 0.3
    assert "steps: 6000" in (run_dir / "config.yaml").read_text()


def test_resume_auto_starts_a_new_run_then_resumes_it(tmp_path):
    """For preemptible jobs: `--resume auto` starts a new run where the folder holds no
    checkpoint (also one asyncrl made that a job left before its first checkpoint), and
    resumes where it holds one; with no checkpoint and no ALGO it says what is missing."""
    run_dir = tmp_path / "run"
    q = asyncrl_cli("train", "--resume", "auto", "--run-dir", str(run_dir))
    assert_refused_in_one_line(q.returncode, q.stdout, q.stderr,
                               f"ALGO is required to start a run ('{run_dir}' holds no checkpoint to resume)")
    assert not run_dir.exists()
    command = ["train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--run-dir", str(run_dir), "--quiet",
               "--eval-episodes", "0", "--resume", "auto"]
    r = asyncrl_cli(*command, "--steps", "1000")
    assert r.returncode == 0, r.stderr
    assert "asyncrl: training a3c on CartPole-v1" in r.stderr
    assert load_checkpoint(str(run_dir / "checkpoints" / "final.pt"))["global_step"] == 1000
    r = asyncrl_cli(*command, "--steps", "2000")
    assert r.returncode == 0, r.stderr
    assert "resuming a3c on CartPole-v1 at step 1,000 of 2,000" in r.stderr
    assert load_checkpoint(str(run_dir / "checkpoints" / "final.pt"))["global_step"] == 2000
    # a run of asyncrl's that wrote no checkpoint yet (preempted early): started afresh
    for path in sorted((run_dir / "checkpoints").iterdir()):
        path.unlink()
    (run_dir / "mine.txt").write_text("the user's")
    r = asyncrl_cli(*command, "--steps", "1000")
    assert r.returncode == 0, r.stderr
    assert "asyncrl: training a3c" in r.stderr
    assert load_checkpoint(str(run_dir / "checkpoints" / "final.pt"))["global_step"] == 1000
    assert (run_dir / "mine.txt").read_text() == "the user's"


def test_resume_of_a_module_env_needs_the_env_named(tmp_path):
    """A checkpoint is data: a run on a `module:Id` env resumes by folder only when the user
    names the env (making it imports the module)."""
    run_dir = tmp_path / "run"
    r = asyncrl_cli("train", "a3c", "--env", "toy_envs:Chain-v0", "--workers", "1", "--steps", "300",
                    "--run-dir", str(run_dir), "--quiet", "--eval-episodes", "0")
    assert r.returncode == 0, r.stderr
    q = asyncrl_cli("train", "--resume", "--run-dir", str(run_dir), "--steps", "600")
    assert_refused_in_one_line(q.returncode, q.stdout, q.stderr, "which imports module 'toy_envs' (and runs its "
                               "code); a checkpoint is data, so name the env yourself if you trust that module: "
                               "--env toy_envs:Chain-v0")
    q = asyncrl_cli("train", "--resume", "--run-dir", str(run_dir), "--steps", "600", "--env", "toy_envs:Chain-v0")
    assert q.returncode == 0, q.stderr
    assert load_checkpoint(str(run_dir / "checkpoints" / "final.pt"))["global_step"] == 600
