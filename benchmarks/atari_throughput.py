"""Atari throughput on Pong with the paper's CNN, in one run on this machine. Prints one JSON
object (and writes it with --out).

  (a) the environment alone: the same preprocessing (asyncrl.atari.make_atari), uniformly
      random actions, one process per core: the limit any learner can reach
      (also: Gymnasium's AtariPreprocessing + FrameStackObservation chain, for reference)
  (b) asyncrl A3C, hogwild, 2 workers, --preset atari (t_max 5, shared RMSProp)
  (c) asyncrl A2C, sync executor, 16 environments, --preset atari: with the default
      --vec-env (inline: the same envs as (b) and evaluation), and with each other way of
      stepping them: in threads, in ale-py's C++ vector env, and in EnvPool (when
      installed: pip install 'asyncrl[envpool]')
  (d) Stable-Baselines3 A2C, 16 environments in one process (DummyVecEnv) on the same
      preprocessed env, n_steps 5: with its default CnnPolicy (NatureCNN) and with the
      paper's CNN as its features extractor (the like-for-like peer of (c))
  (e) PFRL 0.4 A3C, 2 processes, set up as PFRL's Atari A3C reproduction script
      (examples/atari/reproduction/a3c/train_a3c.py: the paper's CNN, t_max 5, beta 0.01,
      SharedRMSpropEpsInsideSqrt lr 7e-4 alpha 0.99 eps 0.1, gradient norm 40, lr decay
      hook, OMP_NUM_THREADS=1) on the same preprocessed env as (b), behind gym's old API,
      rewards clipped as its wrap_deepmind does: the like-for-like peer of (b)

Emulator frames/s = agent steps/s x 4 (action repeat). The learners' figures are steady
state: measured from their first logged second to their last (start-up excluded; asyncrl
from metrics.csv rows, SB3 from a callback after its first rollout, PFRL from a global-step
hook, from a tenth of its steps to the last), with learning on.

    python benchmarks/atari_throughput.py [--steps 40000] [--env-steps 20000] [--skip-sb3] [--skip-pfrl] [--pairs 4]

--pairs N then runs N interleaved pairs of A2C (inline) against (d) with the paper's CNN and
of A3C against (e), each run in a fresh interpreter, one right after the other (the order
alternating, ABBA), as benchmarks/a3c_pairs.py --peer does: the ratios of these pairs hold
up against the machine's drift, which the single rows above, minutes apart, do not.

The peers come with `pip install -e '.[bench]'` (`make bench`).

Do not run anything else on the machine meanwhile: these are wall-clock timings.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ROOT, emit, header  # noqa: E402

from asyncrl.bench import random_actions_rate, steady_rate  # noqa: E402

ENV = "ALE/Pong-v5"
FRAMES = 4
# PFRL 0.4 A3C (paper CNN, t_max 5, 2 processes) with PFRL's own Atari wrappers, measured on
# this machine before the Atari work (issue 6); row (e) measures it in the same run
PFRL_A3C_FRAMES_PER_S_BEFORE = (2600, 2700)
#: A2C's other ways of stepping its 16 environments (--vec-env), measured beside the default
#: (row (c)), and their JSON keys: c_asyncrl_a2c_sync_KEY
A2C_VEC_ENVS = {"inline": "inline", "split": "split", "threads": "threads", "ale": "ale_vec_env",
                "envpool": "envpool"}


def _env_alone(args: tuple[str, int, int]) -> float:
    import torch

    torch.set_num_threads(1)
    kind, steps, seed = args
    from asyncrl.atari import AtariOptions, make_atari, make_atari_reference

    make = make_atari if kind == "asyncrl" else make_atari_reference
    env = make(ENV, AtariOptions())
    try:
        return random_actions_rate(env, steps, seed)
    finally:
        env.close()


def env_alone(kind: str, steps: int, procs: int) -> dict:
    with mp.get_context("spawn").Pool(procs) as pool:
        rates = pool.map(_env_alone, [(kind, steps, i) for i in range(procs)])
    total = sum(rates)
    return {"processes": procs, "steps_per_s": round(total), "frames_per_s": round(total * FRAMES),
            "per_process_steps_per_s": [round(r) for r in rates]}


def paper_cnn_body(channels: int, features: int = 256) -> list:
    """The paper's network body as plain torch layers (asyncrl's AtariCNN computes the same),
    for the peers: conv 16 8x8/4, ReLU, conv 32 4x4/2, ReLU, flatten, fc 256, ReLU."""
    from torch import nn

    return [nn.Conv2d(channels, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 9 * 9, features), nn.ReLU()]


def run_asyncrl(algo: str, steps: int, workers: int, **overrides) -> dict:
    from asyncrl.api import AGENTS

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        agent = AGENTS[algo](ENV, workers=workers, run_dir=os.path.join(tmp, "run"), preset="atari",
                             steps=steps, eval_episodes=0, log_interval=1.0, seed=0, **overrides)
        agent.learn()
        total = time.perf_counter() - t0
        rate, rows = steady_rate(os.path.join(tmp, "run", "metrics.csv"))
        resolved = dict(getattr(agent, "resolved", {}))
    return {"algo": algo, "workers": workers, "steps": agent.global_step, "seconds_total": round(total, 1),
            "steps_per_s": round(rate), "frames_per_s": round(rate * FRAMES),
            "frames_per_s_with_startup": round(agent.global_step * FRAMES / total),
            "metrics_rows": rows, **resolved, **overrides}


def run_sb3(steps: int, n_envs: int, paper_cnn: bool) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from asyncrl.atari import AtariOptions, make_atari

    class PaperCNN(BaseFeaturesExtractor):
        """The paper's network body, as SB3 features (same layers as asyncrl's AtariCNN)."""

        def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 256):
            super().__init__(observation_space, features_dim)
            self.net = torch.nn.Sequential(*paper_cnn_body(observation_space.shape[0], features_dim))

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(obs)

    class Clock(BaseCallback):
        def __init__(self):
            super().__init__()
            self.t = self.step = None

        def _on_rollout_end(self) -> None:
            if self.t is None:                     # start the clock after the first rollout
                self.t, self.step = time.perf_counter(), self.num_timesteps

        def _on_step(self) -> bool:
            return True

    venv = DummyVecEnv([lambda: make_atari(ENV, AtariOptions())] * n_envs)
    kwargs = {"policy_kwargs": {"features_extractor_class": PaperCNN}} if paper_cnn else {}
    # SB3's Atari A2C (RL-Zoo): RMSprop eps 1e-5, n_steps 5, vf_coef 0.25, ent_coef 0.01
    model = A2C("CnnPolicy", venv, n_steps=5, ent_coef=0.01, vf_coef=0.25, seed=0, device="cpu", **kwargs)
    clock = Clock()
    t0 = time.perf_counter()
    model.learn(steps, callback=clock)
    end = time.perf_counter()
    rate = (model.num_timesteps - clock.step) / (end - clock.t)
    venv.close()
    return {"policy": "paper CNN" if paper_cnn else "CnnPolicy (NatureCNN)", "envs": n_envs,
            "steps": model.num_timesteps, "seconds_total": round(end - t0, 1), "steps_per_s": round(rate),
            "frames_per_s": round(rate * FRAMES), "torch_threads": torch.get_num_threads()}


def run_pfrl(steps: int, processes: int) -> dict:
    """Row (e), in a child process that starts with OMP_NUM_THREADS=1, as PFRL's script does
    before it imports torch (without it PFRL's forked workers share one OpenMP pool)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--pfrl-child", str(steps), str(processes)],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the PFRL run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pfrl_child(steps: int, processes: int) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import pfrl
    import torch
    import torch.multiprocessing as torch_mp
    from pfrl.agents import a3c
    from pfrl.optimizers import SharedRMSpropEpsInsideSqrt
    from pfrl.policies import SoftmaxCategoricalHead
    from torch import nn

    from asyncrl.atari import AtariOptions, make_atari

    class OldGymEnv:
        """Our preprocessed Pong behind the gym API PFRL 0.4 speaks: reset() -> obs,
        step(a) -> (obs, reward, done, info), with rewards clipped to their sign for learning
        (wrap_deepmind's clip_rewards)."""

        def __init__(self, seed: int):
            self.env = make_atari(ENV, AtariOptions())
            self.observation_space, self.action_space = self.env.observation_space, self.env.action_space
            self.seed: int | None = seed

        def reset(self):
            obs, _ = self.env.reset(seed=self.seed)
            self.seed = None
            return obs

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(int(action))
            return obs, float(np.sign(reward)), terminated or truncated, info

        def close(self) -> None:
            self.env.close()

    sample = OldGymEnv(0)
    channels, n_actions = sample.observation_space.shape[0], sample.action_space.n
    sample.close()
    torch.manual_seed(0)
    model = nn.Sequential(
        *paper_cnn_body(channels),
        pfrl.nn.Branched(nn.Sequential(nn.Linear(256, n_actions), SoftmaxCategoricalHead()), nn.Linear(256, 1)))
    opt = SharedRMSpropEpsInsideSqrt(model.parameters(), lr=7e-4, eps=1e-1, alpha=0.99)
    agent = a3c.A3C(model, opt, t_max=5, gamma=0.99, beta=1e-2, max_grad_norm=40.0,
                    phi=lambda x: np.asarray(x, dtype=np.float32) / 255)

    def lr_setter(env, agent, value):
        for group in agent.optimizer.param_groups:
            group["lr"] = value

    start = max(1, steps // 10)
    clock = torch_mp.Array("d", 2)          # wall times at global steps `start` and `steps`

    def timer(env, agent, step):
        if step == start:
            clock[0] = time.perf_counter()
        elif step == steps:
            clock[1] = time.perf_counter()

    with tempfile.TemporaryDirectory() as outdir:
        t0 = time.perf_counter()
        pfrl.experiments.train_agent_async(
            agent=agent, outdir=outdir, processes=processes, make_env=lambda idx, test: OldGymEnv(idx),
            steps=steps, eval_interval=None,
            # Python ints: PFRL's default seeds are NumPy ints, which Python 3.11's random.seed refuses
            random_seeds=list(range(processes)),
            global_step_hooks=[pfrl.experiments.LinearInterpolationHook(steps, 7e-4, 0, lr_setter), timer])
        total = time.perf_counter() - t0
    if not (clock[0] and clock[1]):     # its workers failed (PFRL only warns of that)
        raise RuntimeError(f"PFRL's workers did not reach step {steps:,}")
    rate = (steps - start) / (clock[1] - clock[0])
    print(json.dumps({"processes": processes, "steps": steps, "seconds_total": round(total, 1),
                      "steps_per_s": round(rate), "frames_per_s": round(rate * FRAMES),
                      "torch_threads": torch.get_num_threads(), "pfrl": "0.4.0"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40_000, help="agent steps per learner run")
    ap.add_argument("--env-steps", type=int, default=20_000, help="agent steps per env-alone process")
    ap.add_argument("--workers", type=int, default=2, help="hogwild workers / env-alone processes")
    ap.add_argument("--skip-sb3", action="store_true")
    ap.add_argument("--skip-pfrl", action="store_true")
    ap.add_argument("--pairs", type=int, default=0,
                    help="then N interleaved pairs (ABBA, fresh interpreters) of each asyncrl row against its "
                         "peer: A2C inline against (d) with the paper's CNN, A3C against (e)")
    ap.add_argument("--pfrl-child", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.pfrl_child:
        _pfrl_child(*args.pfrl_child)
        return
    if args.pairs < 0:
        sys.exit(f"--pairs must be 0 (none) or more, got {args.pairs}")
    for name, skipped, flag in (("stable_baselines3", args.skip_sb3, "--skip-sb3"),
                                ("pfrl", args.skip_pfrl, "--skip-pfrl")):
        if not skipped and importlib.util.find_spec(name) is None:
            sys.exit(f"{name} is not installed: `make bench` (pip install -e '.[bench]') installs it; or {flag}")

    res = header("atari_throughput")
    res.update(env=ENV, frames_per_agent_step=FRAMES)
    res["a_env_alone"] = env_alone("asyncrl", args.env_steps, args.workers)
    res["a_env_alone_gymnasium_wrappers"] = env_alone("reference", args.env_steps, args.workers)
    res["b_asyncrl_a3c_hogwild"] = run_asyncrl("a3c", args.steps, args.workers)
    res["c_asyncrl_a2c_sync"] = run_asyncrl("a2c", args.steps, 16)          # vec-env auto
    for mode, key in A2C_VEC_ENVS.items():
        if mode != res["c_asyncrl_a2c_sync"]["vec_env"] and (mode != "envpool" or importlib.util.find_spec("envpool")):
            res[f"c_asyncrl_a2c_sync_{key}"] = run_asyncrl("a2c", args.steps, 16, vec_env=mode)
    if not args.skip_sb3:
        res["d_sb3_a2c_naturecnn"] = run_sb3(args.steps, 16, paper_cnn=False)
        res["d_sb3_a2c_paper_cnn"] = run_sb3(args.steps, 16, paper_cnn=True)
    if not args.skip_pfrl:
        res["e_pfrl_a3c"] = run_pfrl(args.steps, args.workers)
    limit = res["a_env_alone"]["frames_per_s"]
    a3c, a2c = res["b_asyncrl_a3c_hogwild"]["frames_per_s"], res["c_asyncrl_a2c_sync"]["frames_per_s"]
    ratios = {"a3c_over_env_alone": round(a3c / limit, 3), "a2c_over_env_alone": round(a2c / limit, 3),
              "a3c_over_pfrl_a3c_measured_before": [round(a3c / p, 2) for p in PFRL_A3C_FRAMES_PER_S_BEFORE[::-1]],
              "pfrl_a3c_frames_per_s_measured_before": list(PFRL_A3C_FRAMES_PER_S_BEFORE)}
    if not args.skip_pfrl:
        ratios["a3c_over_pfrl_a3c"] = round(a3c / res["e_pfrl_a3c"]["frames_per_s"], 2)
    if not args.skip_sb3:
        ratios["a2c_over_sb3_paper_cnn"] = round(a2c / res["d_sb3_a2c_paper_cnn"]["frames_per_s"], 2)
        ratios["a2c_over_sb3_naturecnn"] = round(a2c / res["d_sb3_a2c_naturecnn"]["frames_per_s"], 2)
        for key in A2C_VEC_ENVS.values():
            if f"c_asyncrl_a2c_sync_{key}" in res:
                ratios[f"a2c_{key}_over_sb3_paper_cnn"] = round(
                    res[f"c_asyncrl_a2c_sync_{key}"]["frames_per_s"] / res["d_sb3_a2c_paper_cnn"]["frames_per_s"], 2)
    if args.pairs:
        # the single rows above run minutes apart, and this machine's speed drifts by 20-30%
        # within minutes: pairs of runs one right after the other spread the drift on both
        from a3c_pairs import interleaved_pairs, one_run, peer_run

        src = os.path.join(ROOT, "src")
        for algo, skipped in (("a2c", args.skip_sb3), ("a3c", args.skip_pfrl)):
            if not skipped:
                got = interleaved_pairs(lambda: one_run(src, args.steps, algo), lambda: peer_run(args.steps, algo),
                                        args.pairs, algo)
                res[f"pairs_{algo}_against_peer"] = got
                ratios[f"{algo}_over_peer_pairs_median"] = got["ratio_median"]
    res["ratios"] = ratios
    emit(res, args.out)


if __name__ == "__main__":
    main()
