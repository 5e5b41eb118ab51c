"""The ray executor: actor-learners as Ray actors, gradients applied by the driver.

The algorithm's code is the hogwild worker's: with one actor-learner a ray run is the
hogwild run bit for bit. With several, the step count is exact, every worker's episodes
are logged, failures are replaced, and Ctrl-C leaves a checkpoint that resumes exactly.
"""
from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import asyncrl
from asyncrl.api import AGENTS
from asyncrl.errors import ConfigError, WorkerError
from asyncrl.executors.ray_cluster import WORKER_ENV
from asyncrl.executors.ray_cluster import other_cluster as _other_cluster
from asyncrl.executors.ray_executor import RayExecutor, _Slot
from subprocess_signals import sigint_as_at_a_terminal  # noqa: E402  (tests/ is on sys.path)
from toy_envs import FaultOnThirdEpisode

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One Ray for this module's API tests (the executor uses a Ray the caller started, and
    leaves it running); its actors import what this process can, toy_envs included. A new
    local Ray ("local"): never a running one, a user's or one another run left behind."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path),
                                       **WORKER_ENV}})
    yield ray
    ray.shutdown()


def _params_after(executor: str, algo: str, env: str, steps: int, **kw) -> tuple[torch.Tensor, "asyncrl.Agent"]:
    agent = AGENTS[algo](env, workers=1, executor=executor, seed=5, eval_episodes=0, **kw)
    agent.learn(steps)
    return agent.params.clone(), agent


@pytest.mark.parametrize("algo,env,steps,kw", [
    ("a3c", "CartPole-v1", 2_500, {}),
    ("a3c", "CartPole-v1", 2_500, {"net": "lstm", "lstm_size": 16}),
    ("one-step-q", "CartPole-v1", 2_500, {"target_update": 400}),
    ("n-step-q", "CartPole-v1", 2_500, {"target_update": 700, "optimizer": "rmsprop"}),
    ("a3c", "ALE/Pong-v5", 400, {"preset": "atari"}),
], ids=["a3c", "a3c-lstm", "one-step-q", "n-step-q", "a3c-pong-cnn"])
def test_one_ray_actor_learner_is_one_hogwild_worker_bit_for_bit(local_ray, algo, env, steps, kw):
    """Same seeds, same rollouts, same gradients, same optimiser arithmetic: one ray
    actor-learner leaves exactly the parameters (and target network, and optimiser
    statistics) that one hogwild worker does, recurrent state, target copies and the Atari
    CNN's replay of the acting forwards included."""
    hog, a = _params_after("hogwild", algo, env, steps, **kw)
    rayp, b = _params_after("ray", algo, env, steps, **kw)
    assert a.global_step == b.global_step == steps
    assert not torch.equal(hog, AGENTS[algo](env, workers=1, seed=5, **kw).params)   # it learned
    assert torch.equal(hog, rayp)
    if a.target_params is not None:
        assert torch.equal(a.target_params, b.target_params)
    for k, v in a.optimizer.state_dict().items():
        assert torch.equal(v, b.optimizer.state_dict()[k]), k


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_two_actor_learners_end_exactly_on_the_target_and_log_a_run(local_ray, tmp_path):
    """Two actor-learners: T ends exactly on the target, both workers' episodes are logged
    at increasing steps, metrics rows carry the losses, and the final checkpoint says ray."""
    run_dir = tmp_path / "run"
    agent = asyncrl.A3C("CartPole-v1", workers=2, executor="ray", run_dir=str(run_dir), eval_episodes=2,
                        log_interval=0.2)
    agent.learn(12_345)
    assert agent.global_step == 12_345
    episodes = _rows(run_dir / "episodes.csv")
    assert {r["worker"] for r in episodes} == {"0", "1"}
    steps = [int(r["step"]) for r in episodes]
    assert steps == sorted(steps) and steps[-1] <= 12_345
    metrics = _rows(run_dir / "metrics.csv")
    assert metrics and float(metrics[-1]["loss/value"]) == float(metrics[-1]["loss/value"])
    final = asyncrl.load(str(run_dir / "checkpoints" / "final.pt"))
    assert final.global_step == 12_345 and final.config.executor == "ray"
    assert torch.equal(final.params, agent.params)
    assert "executor: ray" in (run_dir / "config.yaml").read_text()


def test_an_actor_whose_env_raises_is_replaced(local_ray, tmp_path, capsys):
    """An env that raises once: that actor is killed and replaced on the current parameters
    (the failure and the remote traceback reported), and the run ends exactly on its target."""
    marker = str(tmp_path / "raised")
    agent = asyncrl.A3C(lambda: FaultOnThirdEpisode(marker), workers=2, executor="ray", eval_episodes=0,
                        run_dir=str(tmp_path / "run"))
    agent.learn(4_000)
    assert os.path.exists(marker)
    assert agent.global_step == 4_000 and agent.worker_restarts == 1
    err = capsys.readouterr().err
    assert re.search(r"worker \d failed: RuntimeError: flaky env: 3rd episode; restarting it on the current "
                     r"parameters \(restart 1 of at most 10\)", err), err
    assert "in reset" in err                       # the actor's traceback
    assert "flaky env: 3rd episode" in (tmp_path / "run" / "faults.log").read_text()


def test_a_segment_that_finished_while_the_driver_was_busy_is_not_hung():
    """Hang detection (worker-timeout 3 s): of two actors whose segments were sent 5 s ago,
    the one whose result is ready (the driver was busy starting a replacement, say) is left
    alone; the one still running is marked hung and killed; one sent 1 s ago is not late."""
    from asyncrl.config import Config

    class FakeRay:
        killed: list = []

        @staticmethod
        def wait(refs, num_returns, timeout):
            assert timeout == 0 and num_returns == len(refs)
            return [r for r in refs if r.startswith("done")], [r for r in refs if not r.startswith("done")]

        @staticmethod
        def kill(handle, no_restart):
            FakeRay.killed.append(handle)

    ex = RayExecutor(Config(env="CartPole-v1", executor="ray", workers=3, worker_timeout=3))
    now = time.monotonic()
    slots = [_Slot(r) for r in range(3)]
    for s, ref, age in zip(slots, ("done-0", "running-1", "running-2"), (5.0, 5.0, 1.0)):
        s.handle, s.ref, s.since = f"actor-{s.rank}", ref, now - age
    ex._kill_hung(FakeRay, slots)
    assert FakeRay.killed == ["actor-1"]
    assert [s.hung for s in slots] == [False, True, False]


def test_a_hung_actor_is_killed_and_replaced(local_ray, tmp_path, capsys):
    """An actor whose env hangs finishes no segment: after worker-timeout seconds it is
    killed, its reserved steps go back, a replacement trains on, and T ends on the target."""
    marker = str(tmp_path / "hung")
    agent = asyncrl.A3C(lambda: FaultOnThirdEpisode(marker, fault="hang"), workers=2, executor="ray",
                        eval_episodes=0, worker_timeout=3)
    t0 = time.time()
    agent.learn(4_000)
    assert os.path.exists(marker)
    assert agent.global_step == 4_000 and agent.worker_restarts == 1
    assert time.time() - t0 < 90
    assert re.search(r"worker \d finished no segment for 3 s \(hung; killed\); restarting it",
                     capsys.readouterr().err)


class _OnlyInTheDriver:
    """An env factory that works in this process (so the agent's spaces are probed) and fails
    in every other: an actor that cannot build its env."""

    def __init__(self):
        self.pid = os.getpid()

    def __call__(self):
        import gymnasium as gym

        if os.getpid() != self.pid:
            raise RuntimeError("no such env on this node")
        return gym.make("CartPole-v1")


class _GoneAfterAFault:
    """CartPole that raises once (FaultOnThirdEpisode), after which no actor can build it: each
    replacement fails in its constructor."""

    def __init__(self, marker: str):
        self.marker, self.pid = marker, os.getpid()

    def __call__(self):
        if os.getpid() != self.pid and os.path.exists(self.marker):
            raise RuntimeError("env gone after the fault")
        return FaultOnThirdEpisode(self.marker)


def test_replacements_that_cannot_start_count_as_failures_up_to_the_limit(local_ray, tmp_path, capsys):
    """A replacement whose env does not build is one more failure, reported with its cause;
    after max-worker-restarts of them the run stops with a WorkerError, its step count intact."""
    marker = str(tmp_path / "raised")
    agent = asyncrl.A3C(_GoneAfterAFault(marker), workers=2, executor="ray", eval_episodes=0,
                        max_worker_restarts=2)
    with pytest.raises(WorkerError, match=r"worker (\d) could not start as a ray actor: RuntimeError: env gone "
                                          r"after the fault at step [\d,]+; the run stops: 2 worker restarts "
                                          r"already \(max-worker-restarts 2\)"):
        agent.learn(50_000)
    err = capsys.readouterr().err
    assert re.search(r"worker \d failed: RuntimeError: flaky env: 3rd episode; restarting it .*\(restart 1 ", err)
    assert re.search(r"worker \d could not start as a ray actor: RuntimeError: env gone after the fault; "
                     r"restarting it .*\(restart 2 ", err), err
    assert 0 < agent.global_step < 50_000


def test_an_actor_that_cannot_start_stops_the_run_before_any_step(local_ray):
    agent = asyncrl.A3C(_OnlyInTheDriver(), workers=2, executor="ray", eval_episodes=0)
    with pytest.raises(WorkerError, match=r"worker [01] could not start as a ray actor: RuntimeError: no such env on this node"):
        agent.learn(1_000)
    assert agent.global_step == 0


def test_more_workers_than_the_cluster_has_cpus_is_a_clear_error(local_ray):
    agent = asyncrl.A3C("CartPole-v1", workers=3, executor="ray", eval_episodes=0)
    with pytest.raises(ConfigError, match=r"workers 3: the Ray cluster has 2 CPUs and each actor-learner "
                                          r"takes one; use --workers 2 or fewer"):
        agent.learn(1_000)


def test_a_ray_address_other_than_the_callers_ray_is_warned_of_and_not_used(local_ray):
    """The caller's Ray is used as is; a ray-address naming another cluster (here: a port where
    something listens, so the address check passes) gets a warning that names both."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        agent = asyncrl.A3C("CartPole-v1", workers=1, executor="ray", ray_address=address, eval_episodes=0)
        current = ray.get_runtime_context().gcs_address
        with pytest.warns(UserWarning, match=rf"ray-address '{re.escape(address)}' is not used: this process "
                                             rf"is already connected to the Ray at {re.escape(current)}"):
            agent.learn(300)
    assert agent.global_step == 300


@pytest.mark.parametrize("address,other", [
    ("10.1.2.3:6379", None), ("127.0.0.1:6379", None), ("localhost:6379", None),
    ("10.1.2.3:6380", "10.1.2.3:6379"), ("127.0.0.1:1", "10.1.2.3:6379"), ("10.9.9.9:6379", "10.1.2.3:6379"),
    ("auto", None), ("", None), ("ray://10.9.9.9:10001", None)])
def test_which_ray_addresses_name_another_cluster(address, other):
    class Context:
        gcs_address = "10.1.2.3:6379"

    class FakeRay:
        @staticmethod
        def get_runtime_context():
            return Context()

    assert _other_cluster(FakeRay, address) == other


def test_cli_ray_run_interrupted_then_resumed_ends_on_the_target(tmp_path):
    """As a user runs it, with a local Ray the run starts itself: Ctrl-C (SIGINT to the whole
    process group, as at a terminal) -> exit 130 and a checkpoint, Ray's processes gone;
    --resume -> exactly --steps, episodes.csv continued."""
    run_dir, target = tmp_path / "run", 20_000
    cmd = [sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "CartPole-v1", "--workers", "2",
           "--executor", "ray", "--steps", str(target), "--run-dir", str(run_dir), "--quiet",
           "--eval-episodes", "0"]

    def own_group():
        sigint_as_at_a_terminal()
        os.setpgid(0, 0)

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=own_group)
    episodes = run_dir / "episodes.csv"
    deadline = time.time() + 90
    while time.time() < deadline and not (episodes.exists() and episodes.stat().st_size > 300):
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=90)
    assert p.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err, err
    stopped = asyncrl.load(str(run_dir / "checkpoints" / "latest.pt"))
    assert 0 < stopped.global_step < target
    n_before = len(_rows(episodes))
    r = subprocess.run([sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "CartPole-v1", "--resume",
                        "--run-dir", str(run_dir), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert asyncrl.load(str(run_dir / "checkpoints" / "final.pt")).global_step == target
    rows = _rows(episodes)
    assert len(rows) > n_before and int(rows[-1]["step"]) <= target


def test_starting_a_local_ray_keeps_the_callers_sigterm_handler():
    """ray.init installs a SIGTERM handler of its own; the executor puts the caller's back
    (the CLI's turns SIGTERM into an interrupt that leaves a checkpoint, also while actors
    start or after training). Run in a fresh process: this module's Ray is already up."""
    code = (
        "import signal, ray\n"
        "from asyncrl.config import Config\n"
        "from asyncrl.executors.ray_cluster import connect\n"
        "def mine(*a): pass\n"
        "signal.signal(signal.SIGTERM, mine)\n"
        "assert connect(ray, Config(env='CartPole-v1', executor='ray', workers=1))\n"
        "print(signal.getsignal(signal.SIGTERM) is mine)\n"
        "ray.shutdown()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True", r.stdout
