"""Callbacks in learn() and periodic evaluation in the background (asyncrl.callbacks,
asyncrl.evaluator, asyncrl.training)."""
from __future__ import annotations

import csv
import math
import os

import pytest

import asyncrl
from asyncrl.callbacks import Callback, CheckpointEvery, EvalCallback, StopOnReward

SMALL = dict(hidden=[16], t_max=5, log_interval=0.05, checkpoint_interval=3600.0, eval_episodes=2)


class Recorder(Callback):
    """Every hook call, in order, with what it was given."""

    def __init__(self, stop_on=None):
        self.calls: list[tuple[str, object]] = []
        self.stop_on = stop_on

    def _note(self, hook, data=None):
        self.calls.append((hook, data))
        return False if hook == self.stop_on else None

    def on_training_start(self, agent):
        self._note("start", agent.global_step)

    def on_step(self, agent, step):
        return self._note("step", step)

    def on_episode(self, agent, episode):
        return self._note("episode", dict(episode))

    def on_metrics(self, agent, row):
        return self._note("metrics", dict(row))

    def on_eval(self, agent, result):
        return self._note("eval", dict(result))

    def on_checkpoint(self, agent, path, step):
        return self._note("checkpoint", (path, step))

    def on_training_end(self, agent):
        self._note("end", agent.global_step)

    def of(self, hook):
        return [d for h, d in self.calls if h == hook]


@pytest.mark.parametrize("executor", ["hogwild", "sync"])
def test_each_hook_fires_in_order_with_its_data(tmp_path, executor):
    rec = Recorder()
    algo = asyncrl.A3C if executor == "hogwild" else asyncrl.A2C
    agent = algo("CartPole-v1", workers=2, run_dir=str(tmp_path / "run"), eval_every=1500, seed=3, **SMALL)
    agent.learn(6000, callback=rec)
    hooks = [h for h, _ in rec.calls]
    assert hooks[0] == "start" and hooks[-1] == "end", hooks[:3] + hooks[-3:]
    assert rec.of("start") == [0] and rec.of("end") == [agent.global_step] == [6000]
    steps = rec.of("step")
    assert steps and steps == sorted(steps) and steps[-1] <= 6000
    episodes = rec.of("episode")
    assert episodes and set(episodes[0]) >= {"step", "wall_time", "worker", "return", "length"}
    assert all(e["return"] == e["length"] for e in episodes)          # CartPole: +1 per step
    with open(tmp_path / "run" / "episodes.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(episodes)
    rows = rec.of("metrics")
    assert rows and all(r["step"] <= 6000 for r in rows) and "steps_per_s" in rows[0]
    evals = rec.of("eval")
    assert evals, "no periodic evaluation came back"
    for e in evals:
        assert e["step"] >= 1500 and e["episodes"] == 2 and len(e["returns"]) == 2
        assert e["mean_return"] == pytest.approx(sum(e["returns"]) / 2)
    with open(tmp_path / "run" / "evaluations.csv") as fh:
        logged = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in logged] == [e["step"] for e in evals]
    ckpts = rec.of("checkpoint")
    assert ckpts and all(os.path.isfile(p) for p, _ in ckpts) and ckpts[-1][1] == 6000


def test_a_callback_that_says_stop_ends_training_with_a_resumable_checkpoint(tmp_path):
    rec = Recorder(stop_on="episode")
    run = tmp_path / "run"
    agent = asyncrl.A3C("CartPole-v1", workers=2, run_dir=str(run), seed=1, **SMALL)
    agent.learn(30_000, callback=rec)
    assert len(rec.of("episode")) >= 1
    assert agent.global_step < 30_000, "training was not stopped"
    assert rec.calls[-1][0] == "end"
    again = asyncrl.load(str(run))
    assert again.global_step == agent.global_step
    again.resume()                                  # continues to the target it was aiming at
    assert again.global_step == 30_000


def test_best_pt_is_the_snapshot_of_the_best_evaluation(tmp_path):
    run = tmp_path / "run"
    agent = asyncrl.A2C("CartPole-v1", workers=4, run_dir=str(run), eval_every=2000, seed=0,
                        lr=5e-3, entropy_beta=0.0, **{**SMALL, "eval_episodes": 3})
    agent.learn(20_000)
    with open(run / "evaluations.csv") as fh:
        evals = [(int(r["step"]), float(r["mean_return"])) for r in csv.DictReader(fh)]
    assert len(evals) >= 3, evals
    best_step, best_mean = max(evals, key=lambda e: (e[1], -e[0]))
    best = asyncrl.load(str(run / "checkpoints" / "best.pt"))
    assert best.global_step == best_step and best.best_return == best_mean
    # the evaluation is reproducible (same seeds, greedy): best.pt's parameters score the same
    assert best.evaluate(3)["mean_return"] == best_mean


def test_stop_eval_return_stops_once_an_evaluation_reaches_it(tmp_path):
    rec = Recorder()
    agent = asyncrl.A2C("CartPole-v1", workers=4, eval_every=1000, stop_eval_return=30.0, seed=0,
                        lr=5e-3, entropy_beta=0.0, **SMALL)
    agent.learn(300_000, callback=rec)
    evals = rec.of("eval")
    assert evals and evals[-1]["mean_return"] >= 30.0
    assert all(e["mean_return"] < 30.0 for e in evals[:-1])
    assert agent.global_step < 300_000


def test_built_in_callbacks_compose(tmp_path):
    rec = Recorder()
    run = tmp_path / "run"
    agent = asyncrl.A2C("CartPole-v1", workers=4, run_dir=str(run), seed=0, lr=5e-3, entropy_beta=0.0,
                        keep_checkpoints=100, **SMALL)
    agent.learn(40_000, callback=[EvalCallback(every=1000, episodes=2), StopOnReward(25.0),
                                  CheckpointEvery(2000), rec])
    evals = rec.of("eval")
    assert evals and evals[-1]["mean_return"] >= 25.0 and agent.global_step < 40_000
    steps = sorted(int(f[5:-3]) for f in os.listdir(run / "checkpoints") if f.startswith("step-"))
    assert len(steps) >= 1


def test_a_plain_function_is_an_on_step_hook():
    seen = []

    def hook(agent, step):
        seen.append(step)
        return False if step >= 3000 else None

    agent = asyncrl.A2C("CartPole-v1", workers=2, seed=0, **SMALL)
    agent.learn(50_000, callback=hook)
    assert seen and 3000 <= agent.global_step < 50_000


def test_callback_arguments_are_checked():
    with pytest.raises(ValueError, match="every must be a positive"):
        EvalCallback(every=0)
    with pytest.raises(ValueError, match="on must be 'eval' or 'train'"):
        StopOnReward(1.0, on="test")
    agent = asyncrl.A2C("CartPole-v1", workers=2, seed=0, **SMALL)
    with pytest.raises(TypeError, match="callback must be"):
        agent.learn(100, callback=42)
    with pytest.raises(asyncrl.ConfigError, match="past 1,000,000,000,000"):
        agent.learn(2**64)                      # no wrapped target: refused, not 0 steps
    assert agent.global_step == 0
    assert math.isnan(agent.best_return)


def test_training_that_ends_during_an_evaluation_says_nothing_about_it(tmp_path):
    """learn() ends while the background evaluator is still playing its episodes (many, on a
    short run): the evaluator finds nobody to tell and exits quietly, with no traceback of a
    broken pipe on stderr (the README's example printed one)."""
    import subprocess
    import sys

    code = ("import asyncrl\n"
            "agent = asyncrl.A3C('CartPole-v1', workers=2, progress=False)\n"
            "agent.learn(3000, callback=asyncrl.EvalCallback(every=500, episodes=200))\n"
            "print('done', agent.global_step)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done 3000"
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_evaluations_log_the_success_rate_where_the_env_says_it(tmp_path):
    """An env that says info["is_success"] (here a chain that pays 1 exactly when its end is
    reached, so the success rate is the mean return): evaluations.csv, TensorBoard's
    eval/success_rate and eval.json carry it. A run folder whose evaluations.csv was begun
    without the column keeps its own columns when training goes on."""
    import json

    import toy_envs  # noqa: F401

    run = tmp_path / "run"
    agent = asyncrl.A3C("toy_envs:ChainWithSuccess-v0", workers=1, run_dir=str(run), eval_every=1000, seed=0,
                        lr=3e-3, gamma=0.9, **{**SMALL, "eval_episodes": 5})
    agent.learn(4000)
    with open(run / "evaluations.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["success_rate"] != "" for r in rows), rows
    for r in rows:
        assert float(r["success_rate"]) == pytest.approx(float(r["mean_return"]))
    final = json.loads((run / "eval.json").read_text())
    assert final["success_rate"] == pytest.approx(final["mean_return"])
    # an evaluations.csv of the former columns: rows appended on resume keep to them
    old = ["step", "wall_time", "mean_return", "std_return", "min_return", "max_return", "mean_length",
           "episodes", "seconds"]
    with open(run / "evaluations.csv", "w", newline="") as fh:
        csv.writer(fh).writerow(old)
    again = asyncrl.load(str(run), env="toy_envs:ChainWithSuccess-v0")
    again.learn(2000)
    with open(run / "evaluations.csv", newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == old and len(lines) > 1 and all(len(line) == len(old) for line in lines[1:]), lines


def test_training_episodes_are_judged_by_the_scenarios_rule(tmp_path, monkeypatch):
    """A scenario with a success rule (asyncrl.success; here the chain: its end reached, a
    return of 1, else 0 at the 50-step limit): every training episode's row in episodes.csv
    says whether it succeeded, metrics.csv carries the share of the last 100, the callbacks'
    episode rows carry it too."""
    import toy_envs  # noqa: F401
    from asyncrl import success

    monkeypatch.setitem(success.SUCCESS_RULES, "Chain-v0", lambda total: total > 0.5)
    run, rec = tmp_path / "run", Recorder()
    agent = asyncrl.A3C("toy_envs:Chain-v0", workers=1, run_dir=str(run), seed=0, lr=3e-3, gamma=0.9, **SMALL)
    agent.learn(3000, callback=rec)
    with open(run / "episodes.csv", newline="") as fh:
        eps = list(csv.DictReader(fh))
    assert len(eps) >= 20 and {r["success"] for r in eps} <= {"0", "1"}
    assert [r["success"] == "1" for r in eps] == [float(r["return"]) > 0.5 for r in eps]
    assert [e["success"] for e in rec.of("episode")] == [r["success"] == "1" for r in eps]
    with open(run / "metrics.csv", newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    share = sum(r["success"] == "1" for r in eps[-100:]) / len(eps[-100:])
    assert float(last["success_rate_100"]) == pytest.approx(share, abs=1e-5)
