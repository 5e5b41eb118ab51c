"""The logging fan-out (asyncrl.loggers): every scalar goes to each backend; Weights & Biases
offline writes its files into the run folder, and a continued run keeps its W&B run."""
from __future__ import annotations

import csv
import glob
import importlib.util
import os

import pytest

import asyncrl
from asyncrl.errors import ConfigError
from asyncrl.loggers import WANDB_ID_FILE, Backend, WandbBackend
from asyncrl.metrics import RunLogger
from helpers import assert_refused_in_one_line, run_cli_forked


class Recorder(Backend):
    def __init__(self):
        self.calls, self.opened, self.closed = [], 0, 0

    def open(self):
        self.opened += 1

    def scalar(self, tag, value, step):
        self.calls.append((tag, value, step))

    def close(self):
        self.closed += 1


def test_every_backend_gets_every_scalar_once_opened(tmp_path):
    a, b = Recorder(), Recorder()
    log = RunLogger(str(tmp_path), ("loss/value",), 0, 100, 0.0, 0.0, False, backends=[a, b])
    log.episode(0, 10, 0.5, 7.0, 10)
    log.stats(0, 2, 0, 3.0, {"loss/value": 4.0}, 1e-3)
    log.tick(20, force=True)
    log.scalar("eval/mean_return", 9.0, 20)
    log.close()
    assert a.calls == b.calls and a.opened == b.opened == 1 and a.closed == b.closed == 1
    tags = [t for t, _, _ in a.calls]
    assert tags[:2] == ["episode/return", "episode/length"] and ("loss/value", 2.0, 20) in a.calls
    assert ("train/lr", 1e-3, 20) in a.calls and ("eval/mean_return", 9.0, 20) == a.calls[-1]
    assert ("train/grad_norm", 1.5, 20) in a.calls


def test_no_run_folder_no_backends_and_tensorboard_by_default(tmp_path):
    log = RunLogger(None, (), 0, 10, 0.0, 1.0, False)
    log.scalar("x", 1.0, 1)           # nowhere to go: nothing happens
    log.close()
    log = RunLogger(str(tmp_path), (), 0, 10, 0.0, 1.0, False)
    log.scalar("x", 1.0, 1)
    log.close()
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="the wandb extra is not installed")
def test_wandb_offline_writes_its_files_and_a_continued_run_keeps_its_id(tmp_path, monkeypatch):
    """A2C on CartPole with --wandb (no account, no network): the W&B backend receives each
    episode and each metrics row at its global step, its offline run lands in <run>/wandb,
    and a second learn() continues the same W&B run id."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    seen = []
    original = WandbBackend.scalar

    def spy(self, tag, value, step):
        seen.append((tag, step))
        original(self, tag, value, step)

    monkeypatch.setattr(WandbBackend, "scalar", spy)
    run = tmp_path / "run"
    agent = asyncrl.A2C("CartPole-v1", workers=2, run_dir=str(run), wandb=True, wandb_project="asyncrl-test",
                        log_steps=200, eval_episodes=0, device="cpu")
    agent.learn(1000)
    with open(run / "episodes.csv") as fh:
        episodes = [int(r["step"]) for r in csv.DictReader(fh)]
    with open(run / "metrics.csv") as fh:
        rows = [int(r["step"]) for r in csv.DictReader(fh)]
    assert [s for t, s in seen if t == "episode/return"] == episodes
    assert [s for t, s in seen if t == "time/sps"] == rows and rows[-1] == 1000
    run_id = (run / WANDB_ID_FILE).read_text().strip()
    first = glob.glob(str(run / "wandb" / f"offline-run-*-{run_id}" / f"run-{run_id}.wandb"))
    assert len(first) == 1 and os.path.getsize(first[0]) > 0
    assert "wandb_project" in (run / "config.yaml").read_text()

    agent.learn(1000)                   # continues: the same W&B run id, its steps go on
    assert (run / WANDB_ID_FILE).read_text().strip() == run_id
    assert [s for t, s in seen if t == "time/sps"][-1] == 2000


def test_wandb_needs_a_run_folder_and_the_package(monkeypatch):
    with pytest.raises(ConfigError, match="wandb writes into the run folder: give run_dir"):
        asyncrl.A3C("CartPole-v1", wandb=True)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"wandb needs the wandb package: pip install 'asyncrl\[wandb\]'"):
        asyncrl.A3C("CartPole-v1", wandb=True, run_dir="never-made")
    assert not os.path.exists("never-made")


def test_cli_wandb_project_bad_input(tmp_path):
    [p] = run_cli_forked([{"args": ["train", "a3c", "--env", "CartPole-v1", "--wandb", "--wandb-project", "a/b",
                                    "--run-dir", str(tmp_path / "r")], "cwd": str(tmp_path), "watch": None}])
    assert_refused_in_one_line(p["returncode"], p["stdout"], p["stderr"],
                               "wandb-project must be a name of 1 to 128 characters without / \\ # ? % :, got 'a/b'")
    assert not (tmp_path / "r").exists()


def test_a_wandb_project_without_wandb_is_refused():
    with pytest.raises(ConfigError, match="wandb_project 'mine' names the W&B project of a run that logs there: "
                                          "add wandb=True"):
        asyncrl.A3C("CartPole-v1", wandb_project="mine")
