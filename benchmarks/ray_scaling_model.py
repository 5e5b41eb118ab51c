"""The ray executor's scaling model for the paper's Atari CNN: what crosses the network per
agent step and what one parameter server can take, for the flat and the hierarchical modes,
measured here; from them, the predicted frames/s against the number of 16-core nodes.

Measured (each on this machine, Ray started locally, the server on one core):
- P: the bytes of the A3C Atari network's parameters (float32).
- flat capacity C_flat: updates/s the driver sustains as the parameter server, doing what
  RayExecutor._run_flat does per segment: take a gradient of P bytes from a Ray actor,
  apply it with the run's own Learner.apply (shared RMSProp), send theta to that actor for
  its next segment; two actors keep segments in flight and do no work of their own (they
  return a stored gradient), so the driver is the bottleneck.
- hierarchical capacity C_store: exchanges/s of the real ParameterStore actor (executors.
  ray_store) with 4 pushes of a P-byte delta in flight (add the delta, return theta).
- R_core: A3C hogwild frames/s per core on Pong here (2 workers, steady state, `asyncrl
  bench`'s measure); a 16-core node is taken as 16 x R_core (linear in cores: the paper's
  16 threads; not measured here, no 16-core machine was lent).

The model (its arithmetic is `predict` below; frames = 4 per agent step, t_max = 5):
- flat: every segment of every actor is one update on the driver:
  frames/s(N) = min(N x R_node, C_flat x t_max x 4); bytes per agent step = 2P / t_max.
- hierarchical: each node exchanges every S seconds (sync-seconds), so the store sees N / S
  exchanges/s; past its capacity C (min of C_store and what the store's link carries,
  LINK_BYTES_S / 2P) a node's exchanges come every N / C seconds instead; a node's lease
  covers 2 S seconds of its own steps, so its workers stall once exchanges are further apart:
  frames/s(N) = N x R_node x min(1, 2 S / max(S, N / C)); bytes per agent step = 2P / (S x R_node / 4).
Goal (issue 33): hierarchical at 32 nodes >= 0.8 x 32 x R_node; flat below one node's R_node.

    python benchmarks/ray_scaling_model.py [--updates 400] [--sync-seconds 0.1] [--out F]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, emit, header  # noqa: E402

ENV = "ALE/Pong-v5"
FRAMES_PER_STEP, T_MAX, NODE_CORES = 4, 5, 16
#: the bandwidth of the store's network link, bytes/s: 10 Gbit/s Ethernet (an assumption, not
#: measured: this machine has no second one)
LINK_BYTES_S = 10e9 / 8
NODES = (1, 2, 4, 8, 16, 32, 64)


def atari_learner():
    """The A3C Atari model's Learner as the flat driver builds it (shared RMSProp, the fused
    update where this machine compiles one), and its parameters."""
    import asyncrl
    from asyncrl.learner import make_learner

    agent = asyncrl.A3C(ENV, preset="atari", workers=2, eval_episodes=0)
    cfg = agent.config
    job_params = agent.params
    chosen = agent.optimizer.use_fused(cfg.fused_optimizer, job_params, "cpu", mirror=False, threads=1)
    learner = make_learner(cfg, agent.observation_space, agent.action_space, job_params, None, agent.optimizer,
                           (0, 10_000_000), 0, local_copy=False)
    return learner, job_params, chosen


class EchoActor:
    """A stand-in actor-learner: returns a stored gradient at once (the driver is measured)."""

    def __init__(self, n: int):
        self.grad = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 1e-3

    def segment(self, theta):
        return self.grad, T_MAX, T_MAX, {}, 1.0, None


def flat_capacity(ray, learner, params, updates: int) -> float:
    Echo = ray.remote(num_cpus=0)(EchoActor)
    actors = [Echo.remote(params.numel()) for _ in range(2)]
    flying = {a.segment.remote(params.numpy()): a for a in actors}
    stats = dict.fromkeys(learner.algo.stat_keys, 0.0)
    t0, done = None, 0
    while done < updates + 20:
        ready, _ = ray.wait(list(flying), num_returns=1)
        actor = flying.pop(ready[0])
        grad, length, num_steps, _, norm, _ = ray.get(ready[0])
        np.copyto(learner.grad.numpy(), grad)
        learner.apply(stats, norm, done * T_MAX, num_steps)
        flying[actor.segment.remote(params.numpy())] = actor
        done += 1
        if done == 20:              # warmed up
            t0 = time.perf_counter()
    return updates / (time.perf_counter() - t0)


def store_capacity(ray, n: int, pushes: int) -> tuple[float, float]:
    from asyncrl.executors.ray_store import ParameterStore

    Store = ray.remote(num_cpus=0)(ParameterStore)
    theta = np.zeros(n, dtype=np.float32)
    store = Store.remote(theta, None, 0, 1 << 40, 0, None)
    keys = [(k, 0) for k in range(4)]
    for key in keys:
        ray.get(store.join.remote(key))
    delta = np.full(n, 1e-6, dtype=np.float32)
    flying = {store.push.remote(k, delta, 0, [], 0, None, False, 0): k for k in keys}
    t0, done = None, 0
    while done < pushes + 20:
        ready, _ = ray.wait(list(flying), num_returns=1)
        key = flying.pop(ready[0])
        ray.get(ready[0])
        flying[store.push.remote(key, delta, 0, [], 0, None, False, 0)] = key
        done += 1
        if done == 20:
            t0 = time.perf_counter()
            busy0 = ray.get(store.counters.remote())["busy_s"]
    seconds = time.perf_counter() - t0
    busy = ray.get(store.counters.remote())["busy_s"] - busy0
    return pushes / seconds, busy / pushes


def node_rate_per_core(steps: int) -> dict:
    from asyncrl.bench import learner_rate

    r = learner_rate("a3c", ENV, steps, 2, preset="atari", executor="hogwild")
    return {"steps": r["steps"], "frames_per_s": r["steps_per_s"] * FRAMES_PER_STEP, "workers": 2,
            "frames_per_s_per_core": r["steps_per_s"] * FRAMES_PER_STEP / 2, "steady_state": r["steady_state"]}


def predict(P: float, c_flat: float, c_store: float, r_node: float, sync_s: float) -> dict:
    """Frames/s against nodes for both modes (the module's docstring), and the goal's checks."""
    cap = min(c_store, LINK_BYTES_S / (2 * P))          # exchanges/s the store takes
    flat_cap = c_flat * T_MAX * FRAMES_PER_STEP
    rows = []
    for n in NODES:
        flat = min(n * r_node, flat_cap)
        interval = max(sync_s, n / cap)
        hier = n * r_node * min(1.0, 2 * sync_s / interval)
        rows.append({"nodes": n, "flat_frames_per_s": flat, "hierarchical_frames_per_s": hier,
                     "flat_in_nodes": flat / r_node, "hierarchical_in_nodes": hier / r_node,
                     "hierarchical_exchange_interval_s": interval})
    at32 = next(r for r in rows if r["nodes"] == 32)
    return {"store_exchanges_per_s_usable": cap, "flat_capacity_frames_per_s": flat_cap,
            "bytes_per_agent_step": {"flat": 2 * P / T_MAX,
                                     "hierarchical": 2 * P / (sync_s * r_node / FRAMES_PER_STEP)},
            "rows": rows,
            "goal": {"hierarchical_at_32_in_nodes": at32["hierarchical_in_nodes"],
                     "hierarchical_at_32_ok": at32["hierarchical_in_nodes"] >= 0.8 * 32,
                     "flat_best_in_nodes": max(r["flat_in_nodes"] for r in rows),
                     "flat_below_one_node": max(r["flat_in_nodes"] for r in rows) < 1.0}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=400, help="updates (exchanges) timed for each capacity")
    ap.add_argument("--sync-seconds", type=float, default=0.1, help="the hierarchical mode's sync-seconds (its default)")
    ap.add_argument("--node-steps", type=int, default=30_000, help="agent steps of the hogwild Pong run")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ray_scaling_model.json"))
    args = ap.parse_args()
    import ray
    import torch

    from asyncrl.executors.ray_cluster import WORKER_ENV

    torch.set_num_threads(1)
    learner, params, fused = atari_learner()
    P = params.numel() * 4
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": dict(WORKER_ENV)})
    try:
        c_flat = flat_capacity(ray, learner, params, args.updates)
        c_store, store_compute_s = store_capacity(ray, params.numel(), args.updates)
    finally:
        ray.shutdown()
    node = node_rate_per_core(args.node_steps)
    r_node = node["frames_per_s_per_core"] * NODE_CORES
    out = {**header("ray_scaling_model"), "env": ENV, "network": "the paper's Atari CNN (A3C FF)",
           "parameters": params.numel(), "param_bytes": P, "fused_optimizer": fused,
           "sync_seconds": args.sync_seconds, "link_bytes_per_s_assumed": LINK_BYTES_S,
           "measured": {"flat_driver_updates_per_s": c_flat, "store_exchanges_per_s": c_store,
                        "store_compute_s_per_exchange": store_compute_s, "hogwild_pong": node},
           "node": {"cores": NODE_CORES, "frames_per_s": r_node,
                    "assumption": "16 x the per-core hogwild rate measured here (linear in cores)"},
           "model": predict(P, c_flat, c_store, r_node, args.sync_seconds)}
    emit(out, args.out)


if __name__ == "__main__":
    main()
