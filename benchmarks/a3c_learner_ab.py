"""A3C on Pong: the learner's closed-form gradient against the autograd replay, A/B.

Two measurements, each of which alternates the two variants inside one run, so that the
machine's drift (large here from day to day, and within a day) hits both alike:

  inrun    one 2-worker hogwild run (`--preset atari`); every PERIOD seconds of wall time
           both workers switch between the closed form (ActorCriticAlgorithm.gradients) and
           the autograd replay (that method answering None, so the learner differentiates
           the loss through ActorCritic.replay); agent steps are counted per variant.
  segment  one process, the worker's own pieces in a loop (pull, collect 5 steps, gradient,
           RMSProp update), blocks of segments alternating; milliseconds per part.

Prints one JSON. Both variants compute the same gradient (tests/unit/test_replay.py).

    python benchmarks/a3c_learner_ab.py [--mode inrun|segment|both] [--steps 120000] [--segments 3000]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, header  # noqa: E402

ENV = "ALE/Pong-v5"
VARIANTS = ("closed_form", "autograd")


def inrun(steps: int, period: float) -> dict:
    """Fork-inherited patches: the learner's variant and a per-process step count by phase."""
    import asyncrl.algos.actor_critic as ac
    import asyncrl.nets as models
    from atari_throughput import run_asyncrl

    closed_form, act = ac.ActorCriticAlgorithm.gradients, models.NumpyCNN.__call__
    out_dir = tempfile.mkdtemp(prefix="a3c_ab_")
    counts: dict = {}

    def variant() -> int:
        return int(time.time() / period) % 2          # 0: closed form, 1: autograd

    def gradients(self, model, ro, target=None):
        return closed_form(self, model, ro, target) if variant() == 0 else None

    def counting(self, obs):
        c = counts.setdefault("n", [0, 0])
        c[variant()] += 1
        now = time.time()
        if now - counts.get("saved", 0.0) > 1.0:      # each worker leaves its counts behind
            counts["saved"] = now
            with open(os.path.join(out_dir, f"{os.getpid()}.json"), "w") as fh:
                json.dump(c, fh)
        return act(self, obs)

    ac.ActorCriticAlgorithm.gradients, models.NumpyCNN.__call__ = gradients, counting
    try:
        run = run_asyncrl("a3c", steps, 2)
    finally:
        ac.ActorCriticAlgorithm.gradients, models.NumpyCNN.__call__ = closed_form, act
    total = [0, 0]
    for name in os.listdir(out_dir):
        with open(os.path.join(out_dir, name)) as fh:
            c = json.load(fh)
        total = [total[0] + c[0], total[1] + c[1]]
    return {"workers": 2, "steps": steps, "period_s": period, "frames_per_s": run["frames_per_s"],
            "agent_steps": dict(zip(VARIANTS, total)),
            "closed_form_over_autograd": round(total[0] / max(total[1], 1), 3)}


def segment(segments: int, block: int = 100) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from asyncrl.algos import make_algorithm
    from asyncrl.config import Config
    from asyncrl.envs import EnvFactory
    from asyncrl.executors.actor import ActorLearner
    from asyncrl.threads import single_threaded
    from asyncrl.flat import flatten_params_
    from asyncrl.optim import build_optimizer
    from asyncrl.presets import preset_values

    torch.set_num_threads(1)
    vals = preset_values("atari", "a3c")
    vals["workers"] = 1
    cfg = Config(algo="a3c", env=ENV, **vals)
    factory = EnvFactory(ENV).configured(cfg)
    probe = factory()
    model = make_algorithm(cfg).build_model(probe.observation_space, probe.action_space)
    probe.close()
    params = flatten_params_(model).clone()
    opt = build_optimizer(cfg, params.numel())
    fused = opt.use_fused("auto", params, "cpu", True)
    worker = ActorLearner.build(cfg, factory, 0, 0, params, None, opt, (0, 10 ** 8))
    learner, collector, policy, algo = worker.learner, worker.collector, worker.policy, worker.learner.algo
    parts = ("pull", "collect", "gradient", "update")
    sums = {v: dict.fromkeys(parts, 0.0) for v in VARIANTS}
    n = dict.fromkeys(VARIANTS, 0)
    step = 0
    single_threaded()                                   # as a worker: one thread for torch and BLAS
    closed_form = algo.gradients
    for i in range(segments + 2 * block):               # the first two blocks warm up
        v = VARIANTS[(i // block) % 2]
        algo.gradients = closed_form if v == "closed_form" else (lambda *a: None)
        t0 = time.perf_counter()
        learner.pull()
        t1 = time.perf_counter()
        ro, _ = collector.collect(policy, cfg.t_max)
        t2 = time.perf_counter()
        stats, norm = learner.gradients(ro)
        t3 = time.perf_counter()
        learner.apply(stats, norm, step, ro.num_steps)
        t4 = time.perf_counter()
        step += ro.num_steps
        if i >= 2 * block:
            for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                sums[v][k] += dt
            n[v] += 1
    ms = {v: {k: round(sums[v][k] / n[v] * 1e3, 3) for k in parts} for v in VARIANTS}
    for v in VARIANTS:
        ms[v]["total"] = round(sum(ms[v][k] for k in parts), 3)
    return {"processes": 1, "segments_per_variant": n, "fused_optimizer": fused, "ms_per_segment": ms,
            "gradient_closed_form_over_autograd": round(ms["closed_form"]["gradient"] / ms["autograd"]["gradient"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("inrun", "segment", "both"), default="both")
    ap.add_argument("--steps", type=int, default=120_000, help="inrun: agent steps of the 2-worker run")
    ap.add_argument("--period", type=float, default=1.0, help="inrun: seconds per variant before switching")
    ap.add_argument("--segments", type=int, default=3000, help="segment: measured segments, both variants")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    out = header("a3c_learner_ab")
    out["env"] = ENV
    if args.mode in ("segment", "both"):
        out["segment"] = segment(args.segments)
    if args.mode in ("inrun", "both"):
        out["inrun"] = inrun(args.steps, args.period)
    emit(out, args.out)


if __name__ == "__main__":
    main()
