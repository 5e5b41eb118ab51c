"""Atari games through the CLI, as a user runs them: train (hogwild A3C, sync A2C on
ale-py's vector env or subprocesses, a value-based method with --preset atari) -> eval
(raw score, human-normalised score, epsilon) -> load and act; and the bad inputs.

Budgets are tiny (2,000-3,000 agent steps; a random Pong game is ~800-1,000 steps), so
nothing here learns: these check the plumbing, the logs and the numbers that can be
derived by hand (frames = 4 x steps, the human-normalised formula).
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

import asyncrl  # noqa: E402
from asyncrl.atari import REFERENCE_SCORES, AtariOptions, make_atari  # noqa: E402
from asyncrl.nets import AtariCNN, QNetwork  # noqa: E402
from helpers import assert_refused_in_one_line, run_cli_forked  # noqa: E402
from test_cli import run_cli  # noqa: E402  (tests/integration/test_cli.py)

PONG = "ALE/Pong-v5"


def read_csv(path: str) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_config(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "config.yaml")) as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory):
    """A3C on Pong, 2 hogwild workers, 3,000 agent steps (each worker finishes a game)."""
    run_dir = str(tmp_path_factory.mktemp("atari") / "pong")
    p = run_cli("train", "a3c", "--env", PONG, "--workers", "2", "--steps", "3000", "--eval-episodes", "0",
                "--log-interval", "0.5", "--run-dir", run_dir, "--quiet")
    assert p.returncode == 0, p.stderr
    return run_dir, p


def test_train_logs_frames_and_records_the_atari_options(pong_run):
    """episodes.csv and metrics.csv carry `frames` = 4 x step (action repeat 4); config.yaml
    records the preprocessing; the summary lines count frames."""
    run_dir, p = pong_run
    episodes = read_csv(os.path.join(run_dir, "episodes.csv"))
    assert list(episodes[0]) == ["step", "frames", "wall_time", "worker", "return", "length"]
    assert {r["worker"] for r in episodes} == {"0", "1"}
    for r in episodes:
        assert int(r["frames"]) == 4 * int(r["step"])
        ret = float(r["return"])
        assert ret == int(ret) and -21 <= ret <= 21          # a raw Pong score, not clipped or scaled
    metrics = read_csv(os.path.join(run_dir, "metrics.csv"))
    assert list(metrics[0])[:5] == ["step", "frames", "wall_time", "steps_per_s", "frames_per_s"]
    for r in metrics:
        assert int(r["frames"]) == 4 * int(r["step"])
        assert float(r["frames_per_s"]) == pytest.approx(4 * float(r["steps_per_s"]), rel=2e-5)  # %g
    assert (int(metrics[-1]["step"]), int(metrics[-1]["frames"])) == (3000, 12000)
    cfg = read_config(run_dir)
    # no --preset: auto picks the paper's Atari settings for images (clip_rewards yes, as the paper)
    want = {"env": PONG, "preset": "paper", "noop_max": 30, "frame_skip": 4, "frame_stack": 4, "screen_size": 84,
            "sticky_actions": 0.0, "life_loss_terminal": False, "clip_rewards": "yes", "eval_epsilon": 0.0,
            "net": "auto", "executor": "hogwild", "workers": 2}
    assert {k: cfg[k] for k in want} == want
    # the paper's CNN (678K parameters) gets the compiled RMSProp update where a compiler is
    # found; the hogwild workers forked with it (a failed compile would warn and record off)
    from asyncrl.optim import _cpp_compiler

    assert cfg["fused_optimizer"] == ("on" if _cpp_compiler() else "off")
    assert "RuntimeWarning" not in p.stderr
    assert "3,000 agent steps (12,000 emulator frames)" in p.stderr
    assert "3,000 steps" in p.stdout and "= 12,000 frames" in p.stdout
    from asyncrl.plot import read_episodes

    d = read_episodes(run_dir)
    np.testing.assert_array_equal(d["frames"], 4 * d["step"])


def test_eval_gives_a_raw_pong_score_and_its_human_normalised_value(pong_run):
    """eval --json: one whole game's raw score in [-21, 21], game 'pong', the human-normalised
    score (score - (-20.7)) / (9.3 - (-20.7)), greedy with epsilon 0 (the a3c default)."""
    run_dir, _ = pong_run
    p = run_cli("eval", run_dir, "--episodes", "1", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    score = out["mean_return"]
    assert out["returns"] == [score] and score == int(score) and -21 <= score <= 21
    assert out["game"] == "pong" and out["env"] == PONG and out["step"] == 3000
    assert REFERENCE_SCORES["pong"] == (-20.7, 14.6)            # DQN Zoo's table of the 57 games
    assert out["human_normalized"] == pytest.approx((score + 20.7) / 35.3)
    assert "DQN Zoo" in out["reference_scores"]
    assert out["epsilon"] == 0.0 and out["greedy"] is True


def test_eval_epsilon_is_recorded(pong_run):
    run_dir, _ = pong_run
    p = run_cli("eval", run_dir, "--episodes", "1", "--epsilon", "0.05", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["epsilon"] == 0.05 and -21 <= out["mean_return"] <= 21
    assert out["human_normalized"] == pytest.approx((out["mean_return"] + 20.7) / 35.3)


def test_eval_epsilon_out_of_range_is_one_line(pong_run):
    run_dir, _ = pong_run
    p = run_cli("eval", run_dir, "--episodes", "1", "--epsilon", "2")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.strip().splitlines() == ["asyncrl eval: error: --epsilon must be a number in [0, 1], got '2'"]


def test_load_and_act_on_a_pong_observation(pong_run):
    """asyncrl.load(run).act(obs) on make_atari's observations: an int in range(6), the
    argmax of the policy logits (greedy); frames_per_step is the action repeat."""
    run_dir, _ = pong_run
    agent = asyncrl.load(run_dir)
    assert agent.frames_per_step == 4 and agent.global_step == 3000
    assert isinstance(agent.model.torso, AtariCNN)
    env = make_atari(PONG, AtariOptions())
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        a = agent.act(obs)
        assert isinstance(a, int) and a in range(6)
        with torch.no_grad():
            logits, _ = agent.model(torch.from_numpy(obs.reshape(1, -1)))
        assert a == int(logits.argmax())
        obs, *_ = env.step(a)
    env.close()


@pytest.mark.slow          # a training run of its own: 4 envs x 40 segments, or 20
@pytest.mark.parametrize("vec_env,resolved,steps", [(None, "inline", 800), ("ale", "ale", 400),
                                                     ("envpool", "envpool", 400)])
def test_a2c_on_pong(vec_env, resolved, steps, tmp_path):
    """Sync A2C on Pong with 4 environments: vec-env auto resolves to inline (the same
    AtariPreprocessed envs as hogwild; config.yaml records it), --vec-env ale and envpool work
    too; the step counter lands on the target, frames = 4 x steps."""
    if vec_env == "envpool":
        pytest.importorskip("envpool", reason="EnvPool is optional: pip install 'asyncrl[envpool]'")
    run_dir = str(tmp_path / "run")
    extra = ["--vec-env", vec_env] if vec_env else []
    p = run_cli("train", "a2c", "--env", PONG, "--steps", str(steps), "--workers", "4", "--eval-episodes", "0",
                "--run-dir", run_dir, "--quiet", *extra)
    assert p.returncode == 0, p.stderr
    cfg = read_config(run_dir)
    assert (cfg["executor"], cfg["vec_env"], cfg["workers"]) == ("sync", resolved, 4)
    last = read_csv(os.path.join(run_dir, "metrics.csv"))[-1]
    assert (int(last["step"]), int(last["frames"])) == (steps, 4 * steps)
    assert asyncrl.load(run_dir).global_step == steps


@pytest.mark.slow          # ~7 s here (a training run of its own)
def test_value_based_on_pong_with_the_atari_preset(tmp_path):
    """n-step Q with --preset atari: the paper's values except those given (steps, workers),
    a Q network on the CNN, a target network, evaluation epsilon 0.05."""
    run_dir = str(tmp_path / "run")
    p = run_cli("train", "n-step-q", "--env", PONG, "--preset", "atari", "--steps", "2000", "--workers", "2",
                "--eval-episodes", "0", "--run-dir", run_dir, "--quiet")
    assert p.returncode == 0, p.stderr
    cfg = read_config(run_dir)
    want = {"preset": "atari", "steps": 2000, "workers": 2, "t_max": 5, "lr": 7e-4, "rms_eps": 0.1,
            "max_grad_norm": 40.0, "target_update": 10000, "clip_rewards": "yes", "eval_epsilon": 0.05}
    assert {k: cfg[k] for k in want} == want
    agent = asyncrl.load(run_dir)
    assert isinstance(agent.model, QNetwork) and isinstance(agent.model.torso, AtariCNN)
    assert agent.target_params is not None and agent.global_step == 2000
    assert agent.config.clips_rewards


BAD_INPUTS = [
    (["a2c", "--env", "CartPole-v1", "--vec-env", "ale"], "vec-env 'ale' steps Atari games only"),
    (["a2c", "--env", "CartPole-v1", "--vec-env", "envpool"], "vec-env 'envpool' steps Atari games only"),
    (["a2c", "--env", PONG, "--vec-env", "envpool", "--noop-max", "0"], "vec-env 'envpool' needs noop-max >= 1, got 0"),
    (["a2c", "--env", PONG, "--vec-env", "envpool", "--frame-skip", "1"], "vec-env 'envpool' needs frame-skip >= 2, got 1"),
    (["a3c", "--env", "CartPole-v1", "--net", "cnn"], "net 'cnn' needs image observations"),
    (["a3c", "--env", PONG, "--sticky-actions", "1.5"], "sticky-actions must be a probability in [0, 1], got 1.5"),
    (["a3c", "--env", PONG, "--preset", "nonsense"], "preset 'nonsense' is not one of: auto, classic, continuous, paper, atari, none"),
    # refused by Config.validate, before the run folder or any env exists
    (["a2c", "--env", PONG, "--vec-env", "ale", "--life-loss-terminal", "--workers", "2", "--steps", "100"],
     "vec-env 'ale' cannot end episodes on a lost life"),
    # found once the env exists: ale-py's banner must not add lines to the error
    (["a3c", "--env", PONG, "--screen-size", "30"], "are too small for the paper's CNN"),
]


def _check_refused(returncode: int | None, stdout: str, stderr: str, expected: str, run_dir) -> None:
    assert_refused_in_one_line(returncode, stdout, stderr, expected)
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "episodes.csv").exists()


@pytest.fixture(scope="module")
def bad_atari_runs(tmp_path_factory):
    """Every BAD_INPUTS case as `asyncrl train ARGS --run-dir ...`, each in its own process
    forked from one interpreter that has imported asyncrl.cli (tests/cli_forks.py)."""
    works = [tmp_path_factory.mktemp(f"bad{i}") for i in range(len(BAD_INPUTS))]
    cases = [{"args": ["train", *args, "--run-dir", str(w / "r")], "cwd": str(w)}
             for (args, _), w in zip(BAD_INPUTS, works)]
    return works, run_cli_forked(cases)


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)), ids=[" ".join(c[0]) for c in BAD_INPUTS])
def test_bad_atari_input_is_one_clear_line(case, bad_atari_runs):
    """Exit 2, one line naming the problem, no traceback, no run started (as test_cli.py's
    bad inputs: an empty run folder may be left, no checkpoints or logs)."""
    works, runs = bad_atari_runs
    p = runs[case]
    _check_refused(p["returncode"], p["stdout"], p["stderr"], BAD_INPUTS[case][1], works[case] / "r")


def test_a_too_small_screen_is_one_line_from_python_m_asyncrl(tmp_path):
    """The last case through `python -m asyncrl` itself: the env is made before the error,
    and ale-py's banner must not add a line to it."""
    args, expected = BAD_INPUTS[-1]
    assert "--screen-size" in args
    p = run_cli("train", *args, "--run-dir", str(tmp_path / "r"), cwd=str(tmp_path))
    _check_refused(p.returncode, p.stdout, p.stderr, expected, tmp_path / "r")
