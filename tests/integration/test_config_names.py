"""`--config NAME`: the configs shipped in the package, named from any folder, as a user runs it."""
from __future__ import annotations

import os
import subprocess

import yaml

from helpers import assert_refused_in_one_line, run_cli
from package_tree import shipped_config_names


def asyncrl(*args: str, cwd) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd, timeout=300)


def test_train_from_a_shipped_config_named_from_another_folder(tmp_path):
    p = asyncrl("train", "a3c", "--env", "CartPole-v1", "--config", "cartpole-novel-a3c-lstm", "--workers", "1",
                "--steps", "600", "--run-dir", "run", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "run" / "checkpoints" / "final.pt").is_file()
    with open(tmp_path / "run" / "config.yaml") as fh:
        cfg = yaml.safe_load(fh)
    assert (cfg["net"], cfg["lstm_size"], cfg["hidden"], cfg["steps"]) == ("lstm", 64, [64], 600)


def test_an_unknown_config_name_is_one_line_listing_the_shipped_ones(tmp_path):
    p = asyncrl("train", "a3c", "--env", "CartPole-v1", "--config", "cartpole", "--run-dir", "run", cwd=tmp_path)
    assert_refused_in_one_line(p.returncode, p.stdout, p.stderr,
                               "config 'cartpole' is neither a file nor a shipped config; the shipped configs: "
                               + ", ".join(shipped_config_names()))
    assert os.listdir(tmp_path) == []
