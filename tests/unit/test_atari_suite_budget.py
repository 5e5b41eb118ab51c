"""benchmarks/atari_suite.py's wall-time budget and resumption: a game's budget is the
training time its run folder holds (metrics.csv's wall_time, which goes on across resumes),
so a suite started again trains each game only for what it has left, SIGTERMed (a
checkpoint) rather than killed; an evaluation is kept while the game's checkpoints are
unchanged."""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    spec = importlib.util.spec_from_file_location("atari_suite", os.path.join(ROOT, "benchmarks", "atari_suite.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def args(tmp_path, **kw) -> argparse.Namespace:
    base = dict(out=str(tmp_path), algo="a3c", workers=2, steps=10_000_000, minutes=30.0, episodes=10, extra=[])
    return argparse.Namespace(**{**base, **kw})


def metrics(run, *wall_times) -> None:
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "metrics.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "wall_time", "steps_per_s"])
        for i, t in enumerate(wall_times):
            w.writerow([1000 * (i + 1), t, 500])
        fh.write("9000,")                    # a last line cut short by a kill


def test_spent_is_the_last_complete_rows_wall_time(suite, tmp_path):
    assert suite.spent_seconds(str(tmp_path / "pong")) == 0.0
    metrics(tmp_path / "pong", "10.5", "610.25")
    assert suite.spent_seconds(str(tmp_path / "pong")) == 610.25


def test_a_game_trains_for_what_its_budget_has_left_and_not_at_all_once_spent(suite, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(suite, "train_for_minutes", lambda cmd, minutes: calls.append((cmd, minutes)) or 130)
    suite.train("pong", args(tmp_path))                         # a new game: the whole budget
    metrics(tmp_path / "breakout", "1200")
    suite.train("breakout", args(tmp_path))                     # 20 of 30 minutes spent
    metrics(tmp_path / "qbert", "1750")
    suite.train("qbert", args(tmp_path))                        # under a minute left: not resumed
    assert [m for _, m in calls] == [30.0, pytest.approx(10.0)]
    cmd = calls[1][0]
    assert cmd[cmd.index("--run-dir") + 1] == str(tmp_path / "breakout") and "--resume" in cmd


def test_an_evaluation_is_kept_while_the_checkpoints_are_unchanged(suite, tmp_path, monkeypatch):
    run = tmp_path / "pong" / "checkpoints"
    run.mkdir(parents=True)
    (run / "latest.pt").write_bytes(b"x")
    evals = []

    class Done:
        returncode, stderr = 0, ""

        def __init__(self, score):
            self.stdout = json.dumps({"mean_return": score, "std_return": 0.0, "episodes": 10, "step": 4})

    def run_eval(cmd, **kw):
        evals.append(cmd)
        return Done(float(len(evals)))

    monkeypatch.setattr(suite.subprocess, "run", run_eval)
    assert suite.evaluate("pong", args(tmp_path))["mean_return"] == 1.0
    assert suite.evaluate("pong", args(tmp_path))["mean_return"] == 1.0        # kept
    assert suite.evaluate("pong", args(tmp_path, episodes=30))["mean_return"] == 2.0   # another protocol
    (run / "latest.pt").write_bytes(b"xy")                                        # trained further
    assert suite.evaluate("pong", args(tmp_path, episodes=30))["mean_return"] == 3.0
    assert len(evals) == 3


def test_a_published_game_without_a_run_folder_is_taken_from_its_publication(suite, tmp_path, monkeypatch):
    """--publish NAME leaves each game's row as soon as it is evaluated; a suite started again
    where the run folders are gone (another machine) takes those games from there, trains
    and evaluates only the others, and publishes them as they finish."""
    monkeypatch.setattr(suite, "ROOT", str(tmp_path / "repo"))
    out = tmp_path / "runs"
    kept = tmp_path / "repo" / "benchmarks" / "results" / "atari_suite" / "a3c-30min" / "beam_rider"
    kept.mkdir(parents=True)
    (kept / "row.json").write_text(json.dumps({"raw": 1222.0, "std": 336.9, "step": 1677765, "frames": 6711060,
                                               "minutes": 30.0, "episodes": 10}))
    trained, plotted = [], []
    monkeypatch.setattr(suite, "header", lambda name: {"benchmark": name})
    monkeypatch.setattr(suite, "evaluate", lambda game, a: {"mean_return": 5.0, "std_return": 1.0,
                                                            "episodes": 10, "step": 1000})
    monkeypatch.setattr(suite, "figure", lambda *a: None)
    monkeypatch.setattr(suite, "curves", lambda logs, path: plotted.append(logs))

    def pong_logs(game, a):
        trained.append(game)
        metrics(out / game, "1800")
    monkeypatch.setattr(suite, "train", pong_logs)
    suite.main(["--games", "beam_rider", "pong", "--minutes", "30", "--out", str(out), "--reps", "50",
                "--publish", "a3c-30min"])
    assert trained == ["pong"]
    report = json.loads((out / "suite.json").read_text())
    assert report["games"]["beam_rider"]["raw"] == 1222.0 and report["games"]["pong"]["raw"] == 5.0
    assert report["games"]["pong"]["minutes"] == 30.0
    pong = json.loads((kept.parent / "pong" / "row.json").read_text())
    assert pong == {"raw": 5.0, "std": 1.0, "step": 1000, "frames": 4000, "minutes": 30.0, "episodes": 10}
    assert plotted == [{"beam_rider": str(kept), "pong": str(out / "pong")}]
