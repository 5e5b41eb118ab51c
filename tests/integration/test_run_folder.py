"""The run folder is trusted with the user's files: marked as asyncrl's when made, never
emptied unless marked, locked while a run uses it, consistent after a crash and a resume,
and written with ordinary permissions, atomically (issue 28)."""
from __future__ import annotations

import csv
import glob
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

import asyncrl
from asyncrl.checkpoint import save_checkpoint
from asyncrl.errors import ConfigError
from asyncrl.procs import child_pids
from helpers import assert_refused_in_one_line, run_cli, run_cli_forked, train_cli, wait_for

MARKER = ".asyncrl-run"
LOCK = ".asyncrl-lock"


def read_rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def tree(folder) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = fh.read()
    return out


TRAIN = ["train", "a3c", "--env", "CartPole-v1", "--workers", "1", "--steps", "10", "--eval-episodes", "0"]


# --------------------------------------------------------------------------- --overwrite
def test_overwrite_refuses_folders_asyncrl_did_not_make(tmp_path, monkeypatch):
    """The issue's reproduction: a project folder holding checkpoints/ and src/code.py.
    `--run-dir . --overwrite` from inside it, `--run-dir P --overwrite`, `--run-dir P` alone,
    and the home folder (`~`, and by its path) are each refused with one line, exit 2, and
    not one file of theirs changes."""
    project = tmp_path / "P"
    (project / "checkpoints").mkdir(parents=True)
    (project / "src").mkdir()
    (project / "src" / "code.py").write_text("x\n")
    (project / "episodes.csv").write_text("mine\n")
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "todo.txt").write_text("keep me\n")
    (home / "checkpoints").mkdir()
    monkeypatch.setenv("HOME", str(home))
    other = tmp_path / "elsewhere"
    other.mkdir()
    cases = [
        ({"args": [*TRAIN, "--run-dir", ".", "--overwrite"], "cwd": str(project)}, "the current folder"),
        ({"args": [*TRAIN, "--run-dir", str(project), "--overwrite"], "cwd": str(other)}, "not made by asyncrl"),
        ({"args": [*TRAIN, "--run-dir", str(project)], "cwd": str(other)}, "not made by asyncrl"),
        ({"args": [*TRAIN, "--run-dir", "~", "--overwrite"], "cwd": str(other)}, "the home folder"),
        ({"args": [*TRAIN, "--run-dir", str(home), "--overwrite"], "cwd": str(other)}, "the home folder"),
    ]
    before = {str(project): tree(project), str(home): tree(home), str(other): tree(other)}
    results = run_cli_forked([c for c, _ in cases])
    for (case, expected), r in zip(cases, results):
        assert_refused_in_one_line(r["returncode"], r["stdout"], r["stderr"], expected)
    assert {str(project): tree(project), str(home): tree(home), str(other): tree(other)} == before
    assert not os.path.exists(other / "~")


def test_the_root_folder_is_never_a_run_folder(tmp_path):
    """`--run-dir / --overwrite` is refused with one line before anything is written."""
    r = run_cli(*TRAIN, "--run-dir", "/", "--overwrite", cwd=str(tmp_path))
    assert_refused_in_one_line(r.returncode, r.stdout, r.stderr, "'/'")     # (not root: not writable)
    assert os.geteuid() != 0 or "is the root folder" in r.stderr, r.stderr
    assert not os.path.exists("/config.yaml") or os.path.getmtime("/config.yaml") < time.time() - 60


def test_overwrite_removes_only_what_asyncrl_made(tmp_path):
    """A folder asyncrl made is marked (.asyncrl-run, with its format version); --overwrite
    replaces the run in it (its config, logs, TensorBoard events and checkpoints) but keeps
    every file the user put there."""
    run_dir = tmp_path / "run"
    r = run_cli("train", "a3c", "--env", "CartPole-v1", "--workers", "1", "--steps", "300", "--eval-episodes", "1",
                "--run-dir", str(run_dir), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (run_dir / MARKER).read_text().startswith("asyncrl-run 1")
    (run_dir / "notes.txt").write_text("mine\n")
    (run_dir / "analysis").mkdir()
    (run_dir / "analysis" / "fig.py").write_text("print(1)\n")
    old_episodes = (run_dir / "episodes.csv").read_text()
    # what a run with --eval-every and --wandb writes is asyncrl's too
    (run_dir / "evaluations.csv").write_text("step,wall_time,mean_return\n100,1.0,9.0\n")
    (run_dir / "wandb" / "offline-run-x").mkdir(parents=True)
    r = run_cli("train", "a3c", "--env", "CartPole-v1", "--workers", "1", "--steps", "200", "--eval-episodes", "0",
                "--run-dir", str(run_dir), "--overwrite", "--quiet")
    assert r.returncode == 0, r.stderr
    assert not (run_dir / "evaluations.csv").exists() and not (run_dir / "wandb").exists()
    assert (run_dir / "notes.txt").read_text() == "mine\n"
    assert (run_dir / "analysis" / "fig.py").read_text() == "print(1)\n"
    assert not (run_dir / "eval.json").exists()                  # the old run's, removed
    assert (run_dir / "episodes.csv").read_text() != old_episodes
    assert asyncrl.load(str(run_dir)).global_step == 200
    assert (run_dir / MARKER).exists()


# --------------------------------------------------------------------------- the lock
def test_a_second_training_in_a_folder_in_use_is_refused_and_a_killed_holder_frees_it(tmp_path):
    """While a training runs in a folder, a second one there (resume, or --overwrite) exits
    2 with one line naming the pid that holds the folder, and changes nothing. The lock is
    the kernel's (flock): its workers do not hold the lock file open, and once the training
    process is SIGKILLed the folder is free at once."""
    run_dir = tmp_path / "run"
    p = train_cli("a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "10000000",
                  "--checkpoint-interval", "0.5", "--run-dir", str(run_dir))
    try:
        wait_for(lambda: (run_dir / "checkpoints" / "latest.pt").exists() and len(child_pids(p.pid)) == 2,
                 what="a checkpoint and two workers")
        lock = os.path.realpath(run_dir / LOCK)
        for w in child_pids(p.pid):         # the workers do not keep the lock file open
            fds = os.listdir(f"/proc/{w}/fd")
            held = [os.path.realpath(f"/proc/{w}/fd/{fd}") for fd in fds if os.path.exists(f"/proc/{w}/fd/{fd}")]
            assert lock not in held, (w, held)
        for extra in (["--resume"], ["--overwrite", "--steps", "100"]):
            r = run_cli("train", "a3c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--quiet", *extra)
            assert_refused_in_one_line(r.returncode, r.stdout, r.stderr, f"in use by another asyncrl run (pid {p.pid})")
        assert p.poll() is None and (run_dir / "checkpoints" / "latest.pt").exists()
    finally:
        p.kill()
        p.communicate(timeout=30)
    from asyncrl.run import lock_run_dir

    held = lock_run_dir(str(run_dir))        # free at once: the kernel released it
    held.release()
    r = subprocess.Popen([sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "CartPole-v1",
                          "--run-dir", str(run_dir), "--resume", "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(child_pids(r.pid)) == 2, what="the resumed run's workers")
    r.send_signal(signal.SIGTERM)
    _, err = r.communicate(timeout=60)
    assert r.returncode == 130, err


def test_an_agent_holds_its_run_folder_until_its_training_ends(tmp_path):
    """In Python too: a second Agent on a folder that another one is about to train in is
    refused (ConfigError naming this process); once the first has trained, the folder is free."""
    run_dir = str(tmp_path / "run")
    first = asyncrl.A3C("CartPole-v1", workers=1, run_dir=run_dir, eval_episodes=0)
    with pytest.raises(ConfigError, match=rf"in use by another asyncrl run \(pid {os.getpid()}: this process"):
        asyncrl.A3C("CartPole-v1", workers=1, run_dir=run_dir, overwrite=True)
    first.learn(100)
    again = asyncrl.A3C("CartPole-v1", workers=1, run_dir=run_dir, overwrite=True, eval_episodes=0)
    again.learn(50)
    assert asyncrl.load(run_dir).global_step == 50


# --------------------------------------------------------------------------- crash, then resume
def test_kill9_then_resume_leaves_consistent_logs(tmp_path):
    """The issue's reproduction: --checkpoint-interval 1, SIGKILL of the main process about
    0.6 s after the first checkpoint, --resume. Every checkpoint carries the wall time so far;
    the rows logged past the checkpoint's step are moved aside (episodes.csv.after-<step>-...,
    not deleted), so that after the resume the CSVs hold one run: metrics steps strictly
    increasing, wall time never going back, the episode count equal to the episodes logged;
    TensorBoard's scalars likewise (the resumed writer purges the discarded stretch).
    Orphaned temporary files of an interrupted checkpoint are removed at the start."""
    run_dir, target = tmp_path / "run", 30_000
    p = train_cli("a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", str(target),
                  "--checkpoint-interval", "1", "--log-interval", "0.2", "--eval-episodes", "0",
                  "--run-dir", str(run_dir))
    latest = run_dir / "checkpoints" / "latest.pt"
    wait_for(lambda: latest.exists() and asyncrl.load(str(latest)).global_step > 0,
             what="the first periodic checkpoint of a run under way")
    time.sleep(0.6)                      # between that checkpoint and the next
    p.kill()
    p.communicate(timeout=30)
    saved = asyncrl.load(str(latest))
    step, wall = saved.global_step, saved.wall_time
    assert 0 < step < target
    assert wall > 0.5, wall                          # not 0.0: the time so far
    rows = read_rows(run_dir / "episodes.csv")
    past = [r for r in rows if r["step"] and r["step"].isdigit() and int(r["step"]) > step]
    assert past, "the run was killed before it logged past its checkpoint; the test needs a later kill"
    orphan = run_dir / "checkpoints" / ".tmp-0123456789abcdef0123456789abcdef.pt"
    orphan.write_bytes(b"half a checkpoint")

    r = run_cli("train", "a3c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert not orphan.exists()
    aside = glob.glob(str(run_dir / f"episodes.csv.after-{step}-*"))
    assert len(aside) == 1, os.listdir(run_dir)
    moved = {(x["step"], x["worker"], x["return"]) for x in read_rows(aside[0])}
    assert {(x["step"], x["worker"], x["return"]) for x in past} <= moved
    assert glob.glob(str(run_dir / f"metrics.csv.after-{step}-*"))
    episodes = read_rows(run_dir / "episodes.csv")
    metrics = read_rows(run_dir / "metrics.csv")
    steps = [int(m["step"]) for m in metrics]
    walls = [float(m["wall_time"]) for m in metrics]
    assert steps == sorted(set(steps)) and steps[-1] == target
    assert walls == sorted(walls), walls
    assert int(metrics[-1]["episodes"]) == len(episodes)
    final = asyncrl.load(str(run_dir / "checkpoints" / "final.pt"))
    assert final.global_step == target and final.wall_time > wall
    assert walls[-1] <= final.wall_time + 1.0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tb_steps = [e.step for e in acc.Scalars("time/sps")]
    assert tb_steps == sorted(set(tb_steps)) and tb_steps[-1] == target


# --------------------------------------------------------------------------- how files are written
def test_checkpoints_get_the_folders_permissions_and_the_rename_is_made_durable(tmp_path, monkeypatch):
    """A checkpoint is created with the mode the umask gives every other file (0644 under
    umask 022, not mkstemp's 0600), and after the rename the folder itself is fsynced."""
    old = os.umask(0o022)
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    try:
        monkeypatch.setattr(os, "fsync", spy)
        path = save_checkpoint(str(tmp_path / "c" / "x.pt"), {"algo": "a3c", "w": torch.zeros(2)},
                               also=(str(tmp_path / "c" / "y.pt"),))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert synced and synced[0] is False and True in synced[1:], synced
    assert sorted(os.listdir(tmp_path / "c")) == ["x.pt", "y.pt"]


def test_config_yaml_is_replaced_atomically(tmp_path, monkeypatch):
    """A config.yaml whose write fails half-way (disk full) leaves the previous one whole
    and no temporary file behind."""
    import yaml

    from asyncrl.run import write_config

    write_config(str(tmp_path), {"lr": 0.1, "t_max": 5})
    before = (tmp_path / "config.yaml").read_text()

    def failing(data, stream=None, **kw):
        text = yaml.dump(data, **kw)
        if stream is None:
            raise OSError(28, "No space left on device")
        stream.write(text[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(yaml, "safe_dump", failing)
    with pytest.raises(OSError):
        write_config(str(tmp_path), {"lr": 0.2, "t_max": 5})
    assert (tmp_path / "config.yaml").read_text() == before
    assert os.listdir(tmp_path) == ["config.yaml"]


# --------------------------------------------------------------------------- provenance
def fake_checkout(folder, sha: str, packed: bool = False):
    """A git checkout as git leaves it on disk (no git binary needed): HEAD naming a branch
    whose commit is a loose ref, or a line of packed-refs."""
    git = folder / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    if packed:
        (git / "packed-refs").write_text(f"# pack-refs with: peeled fully-peeled sorted\n{'1' * 40} refs/heads/other\n"
                                         f"{sha} refs/heads/main\n")
    else:
        (git / "refs" / "heads" / "main").write_text(sha + "\n")
    return folder


def test_config_yaml_records_provenance_of_each_session(tmp_path):
    """config.yaml records what each training session ran with: the versions of asyncrl,
    Python, torch, Gymnasium and NumPy, the command line, the host, and the commit of the git
    checkout it ran in; a resume (the original command repeated) adds an entry and is not
    taken for a change of configuration; the file still loads as a configuration."""
    import platform
    import socket

    import gymnasium
    import numpy

    from asyncrl import Config
    from asyncrl.run import read_config

    sha = "0123456789abcdef0123456789abcdef01234567"
    work = fake_checkout(tmp_path / "project", sha)
    (work / "sub").mkdir()
    command = ["train", "a3c", "--env", "CartPole-v1", "--workers", "1", "--steps", "300", "--run-dir", "../run",
               "--eval-episodes", "0", "--quiet"]
    r = run_cli(*command, cwd=str(work / "sub"))                      # the checkout's root is found from below
    assert r.returncode == 0, r.stderr
    run = work / "run"
    values, entries = read_config(str(run))
    assert values["algo"] == "a3c" and values["steps"] == 300 and "provenance" not in values
    [first] = entries
    assert first["asyncrl"] == asyncrl.__version__ and first["python"] == platform.python_version()
    assert (first["torch"], first["gymnasium"], first["numpy"]) == (torch.__version__, gymnasium.__version__,
                                                                    numpy.__version__)
    assert first["command"] == "asyncrl " + " ".join(command)
    assert first["host"] == socket.gethostname() and first["git_commit"] == sha
    assert Config.from_yaml(str(run / "config.yaml")).steps == 300

    r = run_cli(*command[:7], "600", *command[8:], "--resume", cwd=str(work / "sub"))
    assert r.returncode == 0, r.stderr
    values, entries = read_config(str(run))
    assert values["steps"] == 600 and len(entries) == 2
    assert entries[0] == first and entries[1]["command"].endswith("--resume")


def test_provenance_never_fails_a_run_and_old_config_yaml_reads(tmp_path, monkeypatch):
    """Outside a git checkout there is no git_commit; a .git that cannot be read leaves it out;
    packed refs and a worktree's .git file are read; a config.yaml from before provenance
    reads with no entries."""
    import yaml

    from asyncrl.run import git_commit, provenance, read_config, write_config

    sha = "89abcdef0123456789abcdef0123456789abcdef"
    assert git_commit(str(fake_checkout(tmp_path / "packed", sha, packed=True))) == sha
    main = fake_checkout(tmp_path / "main", "f" * 40)
    (main / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (main / ".git" / "worktrees" / "wt" / "HEAD").write_text(sha + "\n")        # detached
    (main / ".git" / "worktrees" / "wt" / "commondir").write_text("../..\n")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'wt'}\n")
    assert git_commit(str(tmp_path / "wt")) == sha
    broken = tmp_path / "broken"
    (broken / ".git").mkdir(parents=True)
    (broken / ".git" / "HEAD").write_text("ref: refs/heads/gone\n")
    assert git_commit(str(broken)) is None
    (broken / ".git" / "HEAD").write_bytes(b"\xff\xfe")
    assert git_commit(str(broken)) is None
    monkeypatch.chdir(broken)
    assert "git_commit" not in provenance() and provenance()["asyncrl"] == asyncrl.__version__

    old = tmp_path / "old"
    old.mkdir()
    (old / "config.yaml").write_text(yaml.safe_dump({"algo": "a3c", "env": "CartPole-v1", "lr": 0.001}))
    assert read_config(str(old)) == ({"algo": "a3c", "env": "CartPole-v1", "lr": 0.001}, [])
    write_config(str(old), {"algo": "a3c", "env": "CartPole-v1", "lr": 0.001})
    values, entries = read_config(str(old))
    assert values == {"algo": "a3c", "env": "CartPole-v1", "lr": 0.001} and len(entries) == 1
    assert read_config(str(tmp_path / "nothing")) == ({}, [])
