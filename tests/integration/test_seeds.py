"""`asyncrl train --seeds`: one run folder per seed, sequential on a small machine, side by
side where the cores allow; bad seeds refused before anything is made; `asyncrl plot` on the
folder groups the seeds."""
from __future__ import annotations

import argparse
import os

import pytest
import yaml

from asyncrl.cli_train import train_in
from asyncrl.curves import group_runs
from asyncrl.errors import ConfigError
from asyncrl.seeds import at_once, train_seeds
from helpers import assert_refused_in_one_line, run_cli_forked

COMMON = ["--steps", "1500", "--workers", "2", "--eval-episodes", "0", "--quiet", "--t-max", "5"]


def _seed_of(run_dir) -> int:
    return yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))["seed"]


def test_seeds_make_one_run_folder_each_and_plot_groups_them(tmp_path):
    base = tmp_path / "exp"
    [p] = run_cli_forked([{"args": ["train", "a3c", "--env", "CartPole-v1", "--seeds", "3", "1", "--run-dir",
                                    str(base), *COMMON], "cwd": str(tmp_path), "watch": None}])
    assert p["returncode"] == 0, p["stderr"]
    assert "2 seeds (3, 1), 1 at a time" in p["stderr"]
    assert sorted(os.listdir(base)) == ["seed-1", "seed-3"]
    for seed in (1, 3):
        run = base / f"seed-{seed}"
        assert _seed_of(run) == seed and (run / "checkpoints" / "final.pt").is_file()
    [(label, runs)] = group_runs([str(base)])
    assert label == "a3c on CartPole-v1" and [os.path.basename(r) for r in runs] == ["seed-1", "seed-3"]
    out = tmp_path / "seeds.png"
    [q] = run_cli_forked([{"args": ["plot", str(base), "--out", str(out), "--panels", "train", "loss"],
                           "cwd": str(tmp_path), "watch": None}])
    assert q["returncode"] == 0, q["stderr"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BAD = [
    (["--seeds", "0", "0"], "--seeds: seed 0 is given twice; each seed is one run folder"),
    (["--seeds", "0", "1", "--seed", "4"], "--seeds trains one run per seed; drop --seed"),
    (["--seeds", "1", "-2"], "seed must be >= 0, got -2"),
    (["--seeds", "1", "x"], "--seeds"),
    (["--seeds", "1", "4294967295", "--workers", "2"], "seed must be at most 4,294,937,294 with workers 2"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_seeds_are_refused_before_any_folder_is_made(tmp_path, extra, message):
    [p] = run_cli_forked([{"args": ["train", "a3c", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "exp"),
                                    *extra], "cwd": str(tmp_path), "watch": None}])
    assert_refused_in_one_line(p["returncode"], p["stdout"], p["stderr"], message)
    assert os.listdir(tmp_path) == []


def test_plot_labels_must_match_the_folders(tmp_path):
    [p] = run_cli_forked([{"args": ["plot", str(tmp_path), str(tmp_path), "--labels", "one"],
                           "cwd": str(tmp_path), "watch": None}])
    assert_refused_in_one_line(p["returncode"], p["stdout"], p["stderr"],
                               "--labels: 1 label(s) for 2 run folder(s); give one per folder")


def _args(**kw) -> argparse.Namespace:
    base = dict(algo="a3c", env="CartPole-v1", resume=None, overwrite=False, quiet=True, seeds=["0", "1"])
    return argparse.Namespace(**{**base, **kw})


def test_how_many_seeds_train_at_once():
    assert at_once(_args(), {"workers": 4}, cores=16) == 4
    assert at_once(_args(), {"workers": 3}, cores=8) == 2
    assert at_once(_args(), {}, cores=16) == 1                 # the default: every core per run
    assert at_once(_args(algo="a2c"), {"workers": 2}, cores=16) == 1      # sync takes them all
    assert at_once(_args(), {"workers": 2, "executor": "sync"}, cores=16) == 1
    assert at_once(_args(), {"workers": 4}, cores=2) == 1


def test_seeds_side_by_side_each_in_its_own_process(tmp_path):
    """With cores for two runs (as a 16-core machine has for --workers 8), the seeds train at
    once in spawned processes, each writing its output to seed-<N>.log beside its folder."""
    values = {"steps": 1500, "workers": 1, "eval_episodes": 0, "t_max": 5, "run_dir": str(tmp_path / "exp")}
    code = train_seeds(_args(seeds=["0", "1"]), values, train_in, cores=2)
    assert code == 0
    for seed in (0, 1):
        run = tmp_path / "exp" / f"seed-{seed}"
        assert _seed_of(run) == seed and (run / "checkpoints" / "final.pt").is_file()
        assert "asyncrl: training a3c on CartPole-v1" in (tmp_path / "exp" / f"seed-{seed}.log").read_text()


def test_seeds_resume_needs_the_folder():
    with pytest.raises(ConfigError, match="--seeds with --resume needs --run-dir DIR"):
        train_seeds(_args(algo=None, env=None, resume="yes"), {}, train_in)
