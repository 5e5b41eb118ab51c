"""`asyncrl export RUN --format torchscript|onnx --out FILE` (issue 30, item 7): the exported
policies, loaded without asyncrl (torch.jit.load, ONNX Runtime), give the agent's actions on
200 observations from the environment, for a discrete MLP, a continuous Gaussian policy (its
mean linear, or squashed into the bounds by tanh), an LSTM policy (state in and out), a Q
network and the paper's Atari CNN; bad input is one line."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import asyncrl
from helpers import assert_refused_in_one_line, run_cli as asyncrl_cli

try:
    import onnx  # noqa: F401
    import onnxruntime
except ImportError:            # the onnx extra is not installed: the ONNX halves are skipped
    onnxruntime = None
needs_onnx = pytest.mark.skipif(onnxruntime is None, reason="the onnx extra (onnx, onnxruntime) is not installed: "
                                                            "pip install 'asyncrl[onnx]'")
N_OBS = 200

#: (id: algorithm, env, options): agents made, not trained (the export is of whatever weights
#: they hold)
CASES = {
    "discrete-mlp": ("a3c", "CartPole-v1", {}),
    "continuous": ("a3c", "Pendulum-v1", {}),
    "continuous-tanh": ("a3c", "Pendulum-v1", {"gaussian_mean": "tanh"}),     # the mean squashed, not clipped
    "lstm": ("a3c", "CartPole-v1", {"net": "lstm", "lstm_size": 32}),
    "q-network": ("n-step-q", "CartPole-v1", {}),
    "atari-cnn": ("a3c", "ALE/Pong-v5", {}),
}
#: every agent's weights are drawn at random (normal, std RANDOM_STD) and its biases zeroed
#: before the export, so that the greedy action depends on the observation (and the LSTM's
#: state) and a comparison of actions means something (a freshly initialised or briefly
#: trained policy often takes one action whatever it sees)
RANDOM_STD = 0.3


def cli_in_process(*args: str) -> tuple[int, str, str]:
    """`asyncrl ARGS` run by this process's asyncrl.cli.main (export starts no worker)."""
    from asyncrl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory):
    """An agent with random weights, saved, exported by the CLI's export command to TorchScript
    and (with the extra) ONNX. (test_export_replaces_only_with_overwrite runs `python -m
    asyncrl` on a trained run folder, as a user does.)"""
    if request.param == "atari-cnn":
        pytest.importorskip("ale_py", reason="the atari extra (ale-py) is not installed")
    folder = tmp_path_factory.mktemp(request.param)
    algo, env, options = CASES[request.param]
    agent = asyncrl.api.AGENTS[algo](env, workers=1, eval_episodes=0, **options)
    with torch.no_grad():
        agent.params.copy_(torch.randn(agent.params.shape, generator=torch.Generator().manual_seed(0)) * RANDOM_STD)
        for p in agent.model.parameters():      # views of agent.params
            if p.dim() == 1:
                p.zero_()                       # no biases: CartPole's small inputs then decide
    run = agent.save(str(folder / "randomised.pt"))
    files = {"torchscript": str(folder / "policy.pt")}
    if onnxruntime is not None:
        files["onnx"] = str(folder / "policy.onnx")
    for fmt, path in files.items():
        code, out, err = cli_in_process("export", run, "--format", fmt, "--out", path)
        assert code == 0, err
        assert out.startswith(f"asyncrl: wrote {path} ({fmt}; ") and "-> action" in out, out
    return request.param, run, files


def agent_trajectory(agent, steps: int = N_OBS, seed: int = 5):
    """200 preprocessed observations from the run's env, the agent acting greedily (act()),
    its actions and where episodes started."""
    env = agent.env_factory()
    obs, _ = env.reset(seed=seed)
    agent.reset_state()
    observations, actions, starts = [], [], []
    start = True
    for _ in range(steps):
        a = agent.act(obs)
        observations.append(np.asarray(obs))
        actions.append(a)
        starts.append(start)
        obs, _, terminated, truncated, _ = env.step(a)
        start = terminated or truncated
        if start:
            obs, _ = env.reset()
            agent.reset_state()
    env.close()
    return np.stack(observations), np.asarray(actions), starts


def run_exported(step, observations: np.ndarray, starts: list[bool], recurrent: bool, size: int) -> np.ndarray:
    """The exported policy's actions: the whole batch at once, or step by step carrying the
    LSTM state (zeros at each episode's start). `step` takes and returns NumPy arrays."""
    if not recurrent:
        return step(observations)[0]
    out = []
    h = c = np.zeros((1, size), np.float32)
    for obs, start in zip(observations, starts):
        if start:
            h = c = np.zeros((1, size), np.float32)
        a, h, c = step(obs[None], h, c)
        out.append(a[0])
    return np.stack(out)


def assert_same_actions(got: np.ndarray, want: np.ndarray, continuous: bool) -> None:
    if continuous:
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=0, atol=1e-5)
    else:
        assert got.dtype == np.int64 and np.array_equal(got, want), np.flatnonzero(got != want)


def test_exported_policies_act_as_the_agent(exported):
    name, run, files = exported
    agent = asyncrl.load(run)
    recurrent = name == "lstm"
    continuous = name.startswith("continuous")
    size = agent.model.core.hidden_size if recurrent else 0
    observations, actions, starts = agent_trajectory(agent)
    assert len(observations) == N_OBS and sum(starts) >= 1
    if name == "atari-cnn":
        assert observations.shape[1:] == (4, 84, 84) and observations.dtype == np.uint8
    if not continuous:
        assert len(set(actions.tolist())) > 1                               # not a constant policy

    ts = torch.jit.load(files["torchscript"])

    def ts_step(*arrays):
        with torch.no_grad():
            out = ts(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        return [t.numpy() for t in out] if isinstance(out, tuple) else [out.numpy()]

    assert_same_actions(run_exported(ts_step, observations, starts, recurrent, size), actions, continuous)
    if continuous:          # clipped to the bounds, as act() clips them
        got = ts_step(observations)[0]
        assert got.min() >= -2.0 and got.max() <= 2.0
        if name == "continuous-tanh":       # squashed: inside the bounds, not piled on them by the clip
            assert (np.abs(got) < 2.0).mean() > 0.9

    extra = {"asyncrl.json": ""}
    torch.jit.load(files["torchscript"], _extra_files=extra)
    info = json.loads(extra["asyncrl.json"])
    assert info["algo"] == agent.algo and info["step"] == agent.global_step and info["format"] == "torchscript"
    assert list(info["inputs"]) == (["obs", "h", "c"] if recurrent else ["obs"])

    if "onnx" in files:
        session = onnxruntime.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        assert names == list(info["inputs"])

        def onnx_step(*arrays):
            return session.run(None, dict(zip(names, arrays)))

        assert_same_actions(run_exported(onnx_step, observations, starts, recurrent, size), actions, continuous)
        meta = json.loads(session.get_modelmeta().custom_metadata_map["asyncrl"])
        assert meta["format"] == "onnx" and meta["outputs"] == info["outputs"]


@needs_onnx
def test_export_replaces_only_with_overwrite(tmp_path):
    """An existing --out is refused (one line, exit 2, the file as it was); --overwrite
    replaces it atomically; a folder as --out, an unknown format, a run folder with no
    checkpoint and an unwritable --out are refused the same way, with nothing written."""
    agent = asyncrl.A3C("CartPole-v1", workers=1)
    path = agent.save(str(tmp_path / "a.pt"))
    out = tmp_path / "policy.onnx"
    out.write_bytes(b"mine")
    r = asyncrl_cli("export", path, "--format", "onnx", "--out", str(out))
    assert_refused_in_one_line(r.returncode, r.stdout, r.stderr, f"--out '{out}' exists; choose another file or "
                                                                 f"pass --overwrite to replace it")
    assert out.read_bytes() == b"mine"
    r = asyncrl_cli("export", path, "--format", "onnx", "--out", str(out), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() != b"mine" and sorted(os.listdir(tmp_path)) == ["a.pt", "policy.onnx"]
    (tmp_path / "empty-run").mkdir()
    for args, said in ((["--out", str(tmp_path)], "is a folder; name the file to write"),
                       (["--format", "tflite", "--out", "p.pt"], "--format must be one of: torchscript, onnx, got "
                                                                 "'tflite'"),
                       (["--out", "/proc/p.pt"], "--out '/proc/p.pt' is on the kernel's /proc file system")):
        r = asyncrl_cli("export", path, *args, cwd=str(tmp_path))
        assert_refused_in_one_line(r.returncode, r.stdout, r.stderr, said)
    r = asyncrl_cli("export", str(tmp_path / "empty-run"), "--out", "p.pt", cwd=str(tmp_path))
    assert_refused_in_one_line(r.returncode, r.stdout, r.stderr, "has no checkpoint")
    assert sorted(os.listdir(tmp_path)) == ["a.pt", "empty-run", "policy.onnx"]


def test_onnx_without_the_extra_is_one_line(tmp_path):
    """Without the onnx package, --format onnx says which extra to install (exit 2)."""
    agent = asyncrl.A3C("CartPole-v1", workers=1)
    path = agent.save(str(tmp_path / "a.pt"))
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "onnx.py").write_text("raise ImportError('blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([sys.executable, "-m", "asyncrl", "export", path, "--format", "onnx", "--out",
                        str(tmp_path / "p.onnx")], capture_output=True, text=True, timeout=120, env=env)
    assert_refused_in_one_line(r.returncode, r.stdout, r.stderr, "--format onnx needs the onnx package: pip install "
                                                                 "'asyncrl[onnx]'")
    assert not (tmp_path / "p.onnx").exists()
