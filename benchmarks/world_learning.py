"""The paper's other worlds, from pixels, on these 2 cores: A3C for a wall-clock budget per
arm, as a user runs it (`asyncrl train`, SIGTERMed at the budget: it saves its checkpoint),
with periodic greedy evaluations in the background. Out of CI.

Studies (--study):
  myway    VizdoomMyWayHome-v1 (the Labyrinth stand-in: find the goal in a maze of rooms),
           A3C-LSTM against A3C-FF (the paper's CNN alone): success rate (asyncrl.success:
           the goal reached) and score against frames and wall time; the bar: a greedy
           success rate of at least 0.9 within 60 minutes
  health   VizdoomHealthGatheringSupreme-v1 (gather medkits in a maze): LSTM against FF, the
           score after the budget; two exploratory FF arms, entropy beta 0.05 (ff-beta05) and
           unclipped rewards (ff-unclipped: death at -100)
  carracing  CarRacing-v3 (the TORCS stand-in: driving from pixels): continuous A3C
           (Gaussian policy, the paper's continuous-action entropy beta 1e-4; a3c-beta01: the
           0.01 the paper used on Atari and TORCS, the paper preset's), and the
           discrete variant (--env-kwargs continuous=false: 5 actions) with A3C and with
           n-step Q; beside them a uniformly random policy (each variant) and
           Stable-Baselines3's A2C given the same wall time and the same observations (our
           preprocessing of each env; CnnPolicy, 8 envs in subprocesses, every A2C
           hyperparameter its default; arm sb3-a2c, needs the `bench` extra)

Every asyncrl arm: `asyncrl train ALGO --env ENV --workers 2 [arm flags] --steps S
--eval-every E --eval-episodes K --run-dir DIR/ARM --overwrite --quiet` plus --train-args
(the paper preset's values are the default for image observations; e.g. "--rms-eps 1e-5
--lr 3e-4", what Pong needed on 2 workers), then `asyncrl eval DIR/ARM --episodes K
--json` of the checkpoint at the budget (not counted in it). Frames are agent steps x
--frame-skip (4).

Writes benchmarks/results/world_STUDY.json (per arm: the exit code, steps, frames, minutes,
every periodic evaluation with its frames and minutes, the first evaluation at the bar,
the last one, the mean of the last 100 training episodes, and a probe of the machine's speed
right after the arm: a random policy's raw env frames/s on one core),
world_STUDY_evaluations.csv
(all arms' evaluations) and docs/world_STUDY.png (`asyncrl plot`: training return against
steps and wall time, and the evaluations).

    python benchmarks/world_learning.py --study myway [--arms lstm ff] [--minutes 60]
    python benchmarks/world_learning.py --study carracing --minutes 90
        [--eval-every 50000] [--eval-episodes 20] [--train-args "..."] [--analyse-only]

Run nothing else on the machine meanwhile: wall time is the point.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, ROOT, emit, header, train_for_minutes  # noqa: E402

from asyncrl.config.coerce import keyword_arguments  # noqa: E402
from asyncrl.run import read_config  # noqa: E402
from asyncrl.success import success_rule  # noqa: E402

FRAME_SKIP = 4
DISCRETE = ["--env-kwargs", "continuous=false"]
#: study -> its env, its arms (name -> the algorithm and its flags; SB3 for the sb3- arms), the
#: evaluation bar, and the env variants whose random policy is measured (name -> gym.make kwargs)
STUDIES = {
    "myway": {"env": "VizdoomMyWayHome-v1", "arms": {"lstm": ("a3c", ["--net", "lstm"]),
                                                     "ff": ("a3c", ["--net", "cnn"])},
              "bar": ("success_rate", 0.9), "random": {"uniform": {}}},
    # ff-beta05 and ff-unclipped test the reading of the first two arms (docs/benchmarks/worlds.md):
    # a policy that turns near-deterministic before it has found medkits, with rewards clipped
    "health": {"env": "VizdoomHealthGatheringSupreme-v1", "arms": {"lstm": ("a3c", ["--net", "lstm"]),
                                                                   "ff": ("a3c", ["--net", "cnn"]),
                                                                   "ff-beta05": ("a3c", ["--net", "cnn",
                                                                                         "--entropy-beta", "0.05"]),
                                                                   "ff-unclipped": ("a3c", ["--net", "cnn",
                                                                                            "--clip-rewards", "no"])},
               "bar": None, "random": {"uniform": {}}},
    "carracing": {"env": "CarRacing-v3",
                  # a3c-beta01: the paper preset's entropy beta 0.01 (the paper's for Atari and TORCS),
                  # after arm a3c's Gaussian collapsed to its variance floor with 1e-4
                  # a3c-tanh: arm a3c with the mean squashed into the bounds (--gaussian-mean tanh), after
                  # arm a3c's linear means drifted far outside them (docs/benchmarks/worlds.md)
                  "arms": {"a3c": ("a3c", ["--entropy-beta", "1e-4"]), "a3c-beta01": ("a3c", []),
                           "a3c-tanh": ("a3c", ["--entropy-beta", "1e-4", "--gaussian-mean", "tanh"]),
                           "a3c-discrete": ("a3c", DISCRETE),
                           # the preset anneals epsilon over 1M global agent steps; 90 minutes here are
                           # under 200,000 (a 20-minute check made 33,205, the performance log), so the
                           # anneal is scaled to 100,000: the final epsilons for the last part of the budget
                           "nstepq-discrete": ("n-step-q", DISCRETE + ["--epsilon-steps", "100000"]),
                           "sb3-a2c": ("sb3", [])},
                  "bar": None, "random": {"continuous": {}, "discrete": {"continuous": False}},
                  # a car that never moves (discrete action 0: do nothing) on the tracks of the final
                  # evaluations (asyncrl eval's seeds, 10000 + i): what a greedy policy that stands still scores
                  "still": ({"continuous": False}, 0, 10_000)},
}


def arm_env_kwargs(flags: list[str]) -> dict:
    """The gym.make kwargs an arm's flags give its env: the KEY=VALUE pairs after
    --env-kwargs, read as `asyncrl train` reads them."""
    if "--env-kwargs" not in flags:
        return {}
    rest = flags[flags.index("--env-kwargs") + 1:]
    return keyword_arguments(rest[:next((i for i, f in enumerate(rest) if f.startswith("--")), len(rest))])


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def summarise_arm(run_dir: str, env_id: str, bar: tuple[str, float] | None) -> dict:
    """What one arm's run folder shows: its evaluations against frames and minutes, the first
    one at the bar, the training returns, and (a scenario with a success rule) the share of
    the first and the last 200 training episodes that succeeded (episodes.csv's `success`, the
    same rule applied to the return)."""
    evals = []
    for r in read_rows(os.path.join(run_dir, "evaluations.csv")):
        step = int(r["step"])
        row = {"step": step, "frames": step * FRAME_SKIP, "minutes": round(float(r["wall_time"]) / 60, 2),
               "mean_return": float(r["mean_return"]), "episodes": int(r["episodes"])}
        if r.get("success_rate"):
            row["success_rate"] = float(r["success_rate"])
        evals.append(row)
    # each training session's command line (config.yaml's provenance)
    commands = [e["command"] for e in read_config(run_dir)[1] if e.get("command")]
    episodes = read_rows(os.path.join(run_dir, "episodes.csv"))
    returns = [float(r["return"]) for r in episodes if r.get("return")]
    metrics = read_rows(os.path.join(run_dir, "metrics.csv"))
    steps = int(metrics[-1]["step"]) if metrics else 0
    minutes = float(metrics[-1]["wall_time"]) / 60 if metrics else 0.0
    out = {"commands": commands, "steps": steps, "frames": steps * FRAME_SKIP, "minutes": round(minutes, 1),
           "frames_per_s": round(steps * FRAME_SKIP / (minutes * 60)) if minutes else None,
           "training_episodes": len(returns),
           "mean_of_last_100_training_episodes": round(statistics.fmean(returns[-100:]), 3) if returns else None,
           "evaluations": evals, "last_evaluation": evals[-1] if evals else None,
           "best_evaluation": max(evals, key=lambda e: (e.get("success_rate", 0.0), e["mean_return"])) if evals else None}
    rule = success_rule(env_id)
    if rule is not None and returns:
        ok = [rule(r) for r in returns]
        out["training_success_first_200"] = round(statistics.fmean(ok[:200]), 3)
        out["training_success_last_200"] = round(statistics.fmean(ok[-200:]), 3)
    if bar is not None:
        key, level = bar
        out["first_evaluation_at_the_bar"] = next((e for e in evals if e.get(key, float("-inf")) >= level), None)
    return out


def read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def evaluate_run(exe: str, run_dir: str, episodes: int) -> dict | None:
    """`asyncrl eval RUN --episodes N --json` of the run's last checkpoint (greedy), kept
    beside the run as final_evaluation.json."""
    p = subprocess.run([exe, "eval", run_dir, "--episodes", str(episodes), "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr, file=sys.stderr)
        return None
    out = json.loads(p.stdout)
    with open(os.path.join(run_dir, "final_evaluation.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    return out


def random_return(env_id: str, kwargs: dict, episodes: int, seed: int = 0, action=None) -> dict:
    """A uniformly random policy's mean return (and its spread) over `episodes` episodes of
    the raw env (no preprocessing: the score is the env's own), episode i on seed + i; with
    `action`, that action at every step instead (and the returns, one per episode)."""
    import gymnasium as gym

    from asyncrl.pixels import register_ids

    register_ids(env_id)                # ViZDoom's ids
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    returns = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample() if action is None else action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    rule = success_rule(env_id)
    return {"episodes": episodes, "mean_return": round(statistics.fmean(returns), 2),
            "std_return": round(statistics.pstdev(returns), 2),
            **({"success_rate": round(statistics.fmean(map(rule, returns)), 3)} if rule else {}),
            **({"seed": seed, "action": action, "returns": [round(r, 4) for r in returns]}
               if action is not None else {})}


def machine_probe(env_id: str, kwargs: dict, seconds: float = 20.0, seed: int = 0) -> float:
    """How fast this machine runs the raw env today: a uniformly random policy's env steps per
    second on one core, for `seconds`. Measured right after each arm, so that arms run in
    different sessions (this machine has run at less than half its usual speed on some days)
    can be compared in frames as well as in minutes."""
    import time

    import gymnasium as gym

    from asyncrl.pixels import register_ids

    register_ids(env_id)
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        n += 1
        if term or trunc:
            env.reset()
    rate = n / (time.perf_counter() - start)
    env.close()
    return round(rate, 1)


def run_sb3_for_minutes(env_id: str, minutes: float, run_dir: str, eval_every: int, episodes: int,
                        seed: int = 0) -> dict:
    """Stable-Baselines3's A2C given the same wall time and the same observations as our arms:
    each env is the raw env (Monitor: raw returns) under asyncrl's preprocessing with the
    paper preset's values (PixelPreprocessing: colour 84x84, frame skip 4, a stack of 4), 8 envs
    in subprocesses (SubprocVecEnv, SB3's advice for envs that are slow to step: our arms use
    both cores too), CnnPolicy (NatureCNN), every A2C hyperparameter its default (rewards not
    clipped); trained until `minutes` of wall time have passed. Greedy evaluations
    (deterministic=True; asyncrl's evaluate_policy, on our arms' tracks) of `episodes`
    episodes every `eval_every` agent steps are made inside the budget (ours run beside
    training, on the same cores), and a final one of the model at the budget outside it, as
    ours. Writes episodes.csv and evaluations.csv with asyncrl's
    columns (agent steps, seconds, raw returns, lengths in agent steps), so that the arm is
    summarised and plotted as ours are, and final_evaluation.json."""
    import math
    import time

    import numpy as np
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from asyncrl.envs import EnvFactory
    from asyncrl.evaluate import evaluate_policy
    from asyncrl.evaluator import EVAL_SEED_OFFSET
    from asyncrl.pixels import PixelOptions, PixelPreprocessing

    opts = PixelOptions(frame_skip=FRAME_SKIP, frame_stack=4, screen_size=84, grayscale=False)

    def envs(n: int, env_seed: int, **kwargs):
        return make_vec_env(env_id, n_envs=n, seed=env_seed,
                            wrapper_class=lambda env: PixelPreprocessing(env, opts, env_id), **kwargs)

    # evaluated as our arms are (asyncrl.evaluate.evaluate_policy): the same preprocessing of a
    # fresh env, episode i on the tracks of seed 10000 + i, raw returns
    factory = EnvFactory(env_id)
    factory.pixels = opts

    def greedy(model) -> list[float]:
        return evaluate_policy(lambda obs: model.predict(obs, deterministic=True)[0], factory, episodes,
                               seed + EVAL_SEED_OFFSET)["returns"]

    class Budget(BaseCallback):
        """Logs each finished training episode and makes the periodic evaluations; stops
        training once the budget has passed."""

        def __init__(self):
            super().__init__()
            self.start, self.next_eval, self.episodes, self.evaluations = time.time(), eval_every, [], []

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                if "episode" in info:       # Monitor's, in frames: the length in agent steps
                    self.episodes.append((self.num_timesteps, round(time.time() - self.start, 3),
                                          float(info["episode"]["r"]), math.ceil(info["episode"]["l"] / FRAME_SKIP)))
            if eval_every and self.num_timesteps >= self.next_eval:
                returns = greedy(self.model)
                self.evaluations.append((self.num_timesteps, round(time.time() - self.start, 3),
                                         float(np.mean(returns)), float(np.std(returns)), len(returns)))
                self.next_eval += eval_every
            return time.time() - self.start < minutes * 60

    os.makedirs(run_dir, exist_ok=True)
    venv = envs(8, seed, vec_env_cls=SubprocVecEnv)
    model = A2C("CnnPolicy", venv, seed=seed, device="cpu", verbose=0)
    budget = Budget()
    model.learn(total_timesteps=10**9, callback=budget)
    trained_s = time.time() - budget.start
    venv.close()
    returns = greedy(model)
    with open(os.path.join(run_dir, "episodes.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "wall_time", "return", "length"])
        w.writerows(budget.episodes)
    with open(os.path.join(run_dir, "evaluations.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "wall_time", "mean_return", "std_return", "episodes"])
        w.writerows(budget.evaluations)
    final = {"step": model.num_timesteps, "greedy": True, "episodes": episodes, "seed": seed + EVAL_SEED_OFFSET,
             "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "returns": returns}
    with open(os.path.join(run_dir, "final_evaluation.json"), "w") as fh:
        json.dump(final, fh, indent=1)
    return {"algo": "sb3", "sb3_version": __import__("stable_baselines3").__version__, "n_envs": 8,
            "vec_env": "SubprocVecEnv", "steps": model.num_timesteps, "frames": model.num_timesteps * FRAME_SKIP,
            "minutes": round(trained_s / 60, 1),
            "frames_per_s": round(model.num_timesteps * FRAME_SKIP / trained_s), "final_evaluation": final}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=list(STUDIES), required=True)
    ap.add_argument("--arms", nargs="+", default=None, help="default: all of the study's arms")
    ap.add_argument("--minutes", type=float, default=None,
                    help="wall-clock budget of each arm (default 60; --analyse-only: the budget recorded before)")
    ap.add_argument("--steps", type=int, default=2_000_000,
                    help="the runs' --steps (the learning rate anneals to 0 over it; the budget stops them first)")
    ap.add_argument("--eval-every", type=int, default=50_000)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--random-episodes", type=int, default=None,
                    help="episodes of the random policy, measured once per study (default: --eval-episodes)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-args", default="", help="more `asyncrl train` flags for every arm")
    ap.add_argument("--dir", default=os.path.join(ROOT, "runs", "world"), help="the arms' run folders go under it")
    ap.add_argument("--analyse-only", action="store_true", help="summarise the run folders in --dir")
    args = ap.parse_args()
    study = STUDIES[args.study]
    results = os.path.join(HERE, "results")
    path = os.path.join(results, f"world_{args.study}.json")
    before = read_json(path) or {}
    if args.minutes is None:
        args.minutes = before.get("budget_minutes", 60.0) if args.analyse_only else 60.0
    arms = args.arms or list(study["arms"])
    unknown = [a for a in arms if a not in study["arms"]]
    if unknown:
        ap.error(f"arms {unknown} are not arms of study {args.study!r}: {list(study['arms'])}")
    exe = os.path.join(os.path.dirname(sys.executable), "asyncrl")
    res = {**header("world_learning"), "study": args.study, "env": study["env"], "workers": args.workers,
           "budget_minutes": args.minutes, "steps": args.steps, "eval_every": args.eval_every,
           "eval_episodes": args.eval_episodes, "train_args": args.train_args, "frame_skip": FRAME_SKIP,
           "bar": study["bar"], "arms": {}}
    dirs = {arm: os.path.join(args.dir, f"{args.study}-{arm}") for arm in arms}
    previous = before.get("arms") or {}         # arms measured before (kept, or re-analysed)
    if args.analyse_only and not args.train_args and "train_args" in before:
        res["train_args"] = before["train_args"]    # what the runs were given (each arm: its commands)
    res["random_policy"] = {name: (before.get("random_policy") or {}).get(name)
                            or random_return(study["env"], kwargs, args.random_episodes or args.eval_episodes)
                            for name, kwargs in study["random"].items()}     # measured once
    if "still" in study:
        kwargs, action, seed = study["still"]
        res["still_policy"] = before.get("still_policy") or random_return(
            study["env"], kwargs, args.random_episodes or args.eval_episodes, seed, action)

    def probe(arm: str, flags: list[str]) -> dict:
        """The machine's speed right after the arm ran (kept from before when re-analysed)."""
        rate = ((previous.get(arm) or {}).get("probe_raw_frames_per_s") if args.analyse_only
                else machine_probe(study["env"], arm_env_kwargs(flags)))
        return {} if rate is None else {"probe_raw_frames_per_s": rate}

    for arm in arms:
        algo, flags = study["arms"][arm]
        if algo == "sb3":
            if not args.analyse_only:
                emit(run_sb3_for_minutes(study["env"], args.minutes, dirs[arm], args.eval_every, args.eval_episodes),
                     os.path.join(dirs[arm], "sb3.json"))
            sb3 = read_json(os.path.join(dirs[arm], "sb3.json"))
            if sb3 is not None:     # its logs read as ours are; its own steps and time (no metrics.csv)
                res["arms"][arm] = {**summarise_arm(dirs[arm], study["env"], study["bar"]), **sb3,
                                    **probe(arm, flags)}
            continue
        code = (previous.get(arm) or {}).get("exit_code")
        final = read_json(os.path.join(dirs[arm], "final_evaluation.json"))
        if not args.analyse_only:
            cmd = [exe, "train", algo, "--env", study["env"], "--workers", str(args.workers),
                   "--steps", str(args.steps), "--eval-every", str(args.eval_every),
                   "--eval-episodes", str(args.eval_episodes), "--run-dir", dirs[arm], "--overwrite", "--quiet",
                   *flags, *args.train_args.split()]
            code = train_for_minutes(cmd, args.minutes)
            final = evaluate_run(exe, dirs[arm], args.eval_episodes)
        res["arms"][arm] = {"algo": algo, "flags": flags, "exit_code": code,
                            **summarise_arm(dirs[arm], study["env"], study["bar"]),
                            "final_evaluation": final, **probe(arm, flags)}
    # the arms' logs (not their checkpoints) are kept under results/world/STUDY-ARM, so that an
    # arm run in a later session, perhaps on another machine, is plotted and tabled beside them
    kept = {}
    for arm in list(study["arms"]):
        folder = os.path.join(results, "world", f"{args.study}-{arm}")
        if arm in arms and os.path.isdir(dirs[arm]):
            os.makedirs(folder, exist_ok=True)
            for name in ("config.yaml", "episodes.csv", "evaluations.csv", "metrics.csv"):
                if os.path.exists(os.path.join(dirs[arm], name)):
                    shutil.copy(os.path.join(dirs[arm], name), folder)
        if os.path.exists(os.path.join(folder, "episodes.csv")):
            kept[arm] = folder
    for arm, r in previous.items():
        if arm not in res["arms"]:
            res["arms"][arm] = r                    # measured before, kept
    for arm in arms:
        if res["arms"].get(arm) is not None:      # re-analysed: the commit it was run at
            run_at = (previous.get(arm) or {}).get("commit") if args.analyse_only else None
            res["arms"][arm]["commit"] = run_at or res.get("commit")
    with open(os.path.join(results, f"world_{args.study}_evaluations.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arm", "step", "frames", "minutes", "mean_return", "success_rate", "episodes"])
        for arm, r in res["arms"].items():
            for e in (r or {}).get("evaluations", []):
                w.writerow([arm, e["step"], e["frames"], e["minutes"], e["mean_return"], e.get("success_rate", ""),
                            e["episodes"]])
    subprocess.run([exe, "plot", *kept.values(), "--labels", *kept, "--window", "20",
                    "--out", os.path.join(ROOT, "docs", f"world_{args.study}.png"), "--overwrite"], check=False)
    emit(res, path)


if __name__ == "__main__":
    main()
