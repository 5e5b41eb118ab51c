"""End to end through the CLI: --net lstm and continuous (Gaussian) actions, under both
executors; train -> eval -> asyncrl.load -> act. Value-based methods refuse continuous
actions. MuJoCo (InvertedPendulum-v5) when the simulator is installed."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import asyncrl
from asyncrl import cli
from helpers import run_cli

EVAL_KEYS = ("episodes", "mean_return", "std_return", "min_return", "max_return", "mean_length", "returns",
             "seed")


def train(tmp_path, algo: str, env: str, *flags: str, steps: int = 2000) -> str:
    """Train through the CLI into tmp_path/run; assert exit 0; return the run folder."""
    run_dir = str(tmp_path / "run")
    p = run_cli("train", algo, "--env", env, "--steps", str(steps), "--run-dir", run_dir,
                "--eval-episodes", "2", "--log-interval", "0.2", "--quiet", "--hidden", "16", *flags)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    return run_dir


def eval_json(run_dir: str, capsys, *flags: str) -> dict:
    """`asyncrl eval RUN --episodes 2 --json` (in this process: no interpreter start-up)."""
    capsys.readouterr()
    assert cli.main(["eval", run_dir, "--episodes", "2", "--json", *flags]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return json.loads(out[0])


def check_run(run_dir: str, capsys, steps: int, net: str, continuous: bool, low=-2.0, high=2.0, obs_dim=3):
    """The run folder's eval.json and `eval --json` have the keys; the final checkpoint
    reloads with the architecture asked for; act() gives actions of the right kind."""
    with open(os.path.join(run_dir, "eval.json")) as fh:
        saved = json.load(fh)
    for key in EVAL_KEYS:
        assert key in saved, key
    assert saved["episodes"] == 2 and saved["step"] == steps
    out = eval_json(run_dir, capsys)
    for key in EVAL_KEYS + ("path", "algo", "env", "step", "greedy"):
        assert key in out, key
    assert out["episodes"] == 2 and out["greedy"] is True and out["step"] == steps
    assert out["min_return"] <= out["mean_return"] <= out["max_return"]
    stochastic = eval_json(run_dir, capsys, "--stochastic")
    assert stochastic["greedy"] is False

    for path in (run_dir, os.path.join(run_dir, "checkpoints", "final.pt")):
        agent = asyncrl.load(path)
        assert agent.global_step == steps
        assert agent.config.net == net and agent.model.recurrent == (net == "lstm")
        assert agent.model.continuous == continuous
        rng = np.random.default_rng(0)
        for i in range(5):
            obs = rng.uniform(-1, 1, obs_dim).astype(np.float32) * (5.0 if continuous else 0.1)
            for det in (True, False):
                a = agent.act(obs, deterministic=det)
                if continuous:
                    assert isinstance(a, np.ndarray) and a.shape == (1,) and a.dtype.kind == "f", a
                    assert np.all(np.isfinite(a)) and np.all(low <= a) and np.all(a <= high), a
                else:
                    assert isinstance(a, int) and a in (0, 1)
    return agent


def check_recurrent_eval_resets(agent, env_id: str) -> None:
    """evaluate() zeroes the LSTM state as each episode begins: the greedy policy's state
    before the first act() of every episode (found by its reset observation, seeds 7, 8,
    then 7 again) is zero, and nonzero before every later act(); repeating an evaluation
    after the state was left nonzero gives the same returns."""
    import gymnasium as gym

    calls: list[tuple[np.ndarray, torch.Tensor | None]] = []
    real_act = agent.act

    def act(obs, deterministic=True):
        actor = agent._actors.get((deterministic, agent.params.untyped_storage().data_ptr()))
        policy = None if actor is None else actor.policy
        calls.append((np.array(obs, copy=True), None if policy is None else policy.get_state()[0].clone()))
        return real_act(obs, deterministic)

    agent.act = act                       # evaluate() calls self.act
    try:
        first = agent.evaluate(2, seed=7)
        second = agent.evaluate(1, seed=7)
    finally:
        del agent.act
    assert first["returns"][0] == second["returns"][0]
    env = gym.make(env_id)
    firsts = [env.reset(seed=s)[0] for s in (7, 8, 7)]
    env.close()
    starts, i = [], 0
    for f in firsts:                       # each episode's first act, in order
        while not np.array_equal(calls[i][0], f):
            i += 1
        starts.append(i)
        i += 1
    assert starts[0] == 0 and len(calls) == round(2 * first["mean_length"] + second["mean_length"])
    for k, (_, h) in enumerate(calls):
        if k in starts:
            assert h is None or not h.any(), k          # None: the policy is built at the first act
        else:
            assert h.abs().sum() > 0, k


@pytest.mark.parametrize("algo,flags", [
    ("a3c", ("--executor", "hogwild", "--workers", "2")),
    ("a2c", ("--executor", "sync", "--workers", "4", "--device", "cpu")),
], ids=["hogwild", "sync"])
def test_lstm_cartpole_train_eval_load(algo, flags, tmp_path, capsys):
    """--net lstm on CartPole-v1 (LSTM 16): trains to the exact step count, evaluates
    (run folder's eval.json and eval --json), reloads as a recurrent model that acts."""
    steps = 2000
    run_dir = train(tmp_path, algo, "CartPole-v1", "--net", "lstm", "--lstm-size", "16", *flags, steps=steps)
    agent = check_run(run_dir, capsys, steps, "lstm", continuous=False, obs_dim=4)
    assert agent.model.core.hidden_size == 16
    check_recurrent_eval_resets(agent, "CartPole-v1")


@pytest.mark.parametrize("algo,flags", [
    ("a3c", ("--executor", "hogwild", "--workers", "2")),
    ("a3c", ("--executor", "sync", "--workers", "4", "--device", "cpu")),
    ("a3c", ("--executor", "hogwild", "--workers", "2", "--gaussian-mean", "tanh")),
], ids=["hogwild", "sync", "hogwild-tanh"])
def test_gaussian_pendulum_train_eval_load(algo, flags, tmp_path, capsys):
    """Pendulum-v1 (1-D Box in [-2, 2]) with the Gaussian policy: trains, evaluates, reloads;
    act() returns a float array of shape (1,) inside the bounds, greedy and sampled. With
    --gaussian-mean tanh the run's config.yaml records it and the reloaded model squashes its
    mean into [-2, 2] (center 0, half-width 2)."""
    steps = 2000
    run_dir = train(tmp_path, algo, "Pendulum-v1", *flags, steps=steps)
    agent = check_run(run_dir, capsys, steps, "auto", continuous=True)
    mean = "tanh" if "tanh" in flags else "linear"
    assert agent.config.gaussian_mean == mean
    with open(os.path.join(run_dir, "config.yaml")) as fh:
        assert f"\ngaussian_mean: {mean}\n" in fh.read()
    if mean == "tanh":
        assert [t.tolist() for t in agent.model.mean_squash] == [[0.0], [2.0]]
    else:
        assert agent.model.mean_squash is None


def test_lstm_gaussian_pendulum_sync(tmp_path, capsys):
    """--net lstm on Pendulum-v1 under the sync executor (A2C), with the mean squashed into the
    bounds (--gaussian-mean tanh: the recurrent acting path and the unrolled loss): a recurrent
    Gaussian policy that trains, evaluates, reloads and acts in bounds; evaluation resets its
    state per episode. (The linear mean's recurrent paths: tests/unit/test_lstm.py.)"""
    steps = 2000
    run_dir = train(tmp_path, "a2c", "Pendulum-v1", "--net", "lstm", "--lstm-size", "16", "--workers", "4",
                    "--device", "cpu", "--gaussian-mean", "tanh", steps=steps)
    agent = check_run(run_dir, capsys, steps, "lstm", continuous=True)
    assert [t.tolist() for t in agent.model.mean_squash] == [[0.0], [2.0]]
    check_recurrent_eval_resets(agent, "Pendulum-v1")


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lstm_gaussian_pendulum_sync_cuda(tmp_path, capsys):
    """--net lstm on Pendulum-v1 with the sync executor on CUDA (the torch acting path of
    RecurrentScores, resets by index on the device): trains, evaluates, reloads."""
    steps = 1000
    run_dir = train(tmp_path, "a2c", "Pendulum-v1", "--net", "lstm", "--lstm-size", "16", "--workers", "4",
                    "--device", "cuda", steps=steps)
    check_run(run_dir, capsys, steps, "lstm", continuous=True)


@pytest.mark.parametrize("algo", ["one-step-q", "one-step-sarsa", "n-step-q"])
def test_value_based_refuse_pendulum(algo, tmp_path):
    """A value-based method on Pendulum-v1 (continuous actions) exits 2 with one line naming
    the problem, no traceback, and starts no run."""
    p = run_cli("train", algo, "--env", "Pendulum-v1", "--steps", "100", "--run-dir", str(tmp_path / "r"),
                cwd=str(tmp_path))
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert f"{algo} is a value-based method and needs Discrete actions" in p.stderr, p.stderr
    assert "Pendulum-v1" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not os.path.exists(tmp_path / "r" / "checkpoints")


def _has_mujoco() -> bool:
    try:
        import mujoco  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _has_mujoco(), reason="mujoco is not installed (pip install '.[mujoco]')")
def test_mujoco_inverted_pendulum_a3c(tmp_path, capsys):
    """A3C with the Gaussian policy on MuJoCo's InvertedPendulum-v5 (2 workers, 3000 steps):
    trains, evaluates, reloads, and acts in [-3, 3] with shape (1,)."""
    steps = 3000
    run_dir = train(tmp_path, "a3c", "InvertedPendulum-v5", "--workers", "2", steps=steps)
    check_run(run_dir, capsys, steps, "auto", continuous=True, low=-3.0, high=3.0, obs_dim=4)
