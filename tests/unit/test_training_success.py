"""Training episodes judged by the scenario's success rule (asyncrl.success) in the writer
(asyncrl.metrics.RunLogger): episodes.csv's `success`, metrics.csv's `success_rate_100`,
TensorBoard's episode/success_rate_100, the callbacks' episode rows; a run folder begun
without the columns keeps its own when a resume appends to it."""
from __future__ import annotations

import csv

import pytest

from asyncrl.loggers import Backend
from asyncrl.metrics import EPISODE_COLUMNS, RunLogger


def goal(total: float) -> bool:
    return total > 0.0


class Scalars(Backend):
    def __init__(self):
        self.seen: list[tuple[str, float, int]] = []

    def scalar(self, tag, value, step):
        self.seen.append((tag, value, step))


class Episodes:
    """An observer that keeps the episode rows (training.TrainingSession's place)."""

    def __init__(self):
        self.rows: list[dict] = []

    def episode(self, row):
        self.rows.append(row)

    def metrics(self, row):
        pass

    def tick(self, step):
        pass


def table(path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def logger(run_dir, success=goal, backends=None, start=0):
    return RunLogger(str(run_dir), (), start, 1000, 0.0, log_interval=1.0, progress=False, log_steps=10,
                     backends=[] if backends is None else backends, success=success)


def test_each_episode_is_judged_and_the_rows_carry_the_share_of_the_last_100(tmp_path):
    tb, seen = Scalars(), Episodes()
    log = logger(tmp_path, backends=[tb])
    log.observer = seen
    for step, ret in ((3, -0.21), (6, 0.83), (9, 0.5)):
        log.episode(0, step, 1.0, ret, 3)
    log.tick(10)
    log.episode(1, 12, 2.0, -0.21, 4)
    log.tick(20)
    log.close()
    eps = table(tmp_path / "episodes.csv")
    assert eps[0] == [*EPISODE_COLUMNS, "success"]
    assert [(r[3], r[5]) for r in eps[1:]] == [("-0.21", "0"), ("0.83", "1"), ("0.5", "1"), ("-0.21", "0")]
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["success_rate_100"] for r in rows] == ["0.666667", "0.5"]      # 2 of 3, then 2 of 4
    assert list(rows[0])[:6] == ["step", "wall_time", "steps_per_s", "episodes", "return_mean_100",
                                 "success_rate_100"]
    assert [r["success"] for r in seen.rows] == [False, True, True, False]
    assert [(v, s) for t, v, s in tb.seen if t == "episode/success_rate_100"] == [(pytest.approx(2 / 3), 10),
                                                                                  (0.5, 20)]


def test_the_share_is_of_the_last_100_episodes():
    log = RunLogger(None, (), 0, 1000, 0.0, 1.0, False, success=goal)
    for i in range(150):
        log.episode(0, i, 0.0, 1.0 if i < 50 else -1.0, 1)     # 50 successes, then 100 failures
    assert log.success_rate == 0.0
    log.episode(0, 150, 0.0, 1.0, 1)
    assert log.success_rate == pytest.approx(0.01)


def test_an_env_without_a_rule_has_no_success_columns(tmp_path):
    log = logger(tmp_path, success=None)
    log.episode(0, 3, 1.0, 5.0, 3)
    log.tick(10)
    log.close()
    assert table(tmp_path / "episodes.csv")[0] == list(EPISODE_COLUMNS)
    assert "success_rate_100" not in table(tmp_path / "metrics.csv")[0]
    assert log.success_rate != log.success_rate            # nan


def test_a_resume_into_a_folder_begun_without_the_columns_keeps_them_and_counts_its_episodes(tmp_path):
    old_metrics = ["step", "wall_time", "steps_per_s", "episodes", "return_mean_100", "lr", "updates",
                   "skipped_updates", "grad_norm"]
    with open(tmp_path / "episodes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([EPISODE_COLUMNS, [4, "1.000", 0, "0.9", 4], [8, "2.000", 1, "-0.21", 4]])
    with open(tmp_path / "metrics.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([old_metrics, [5, "1.5", "3", 1, "0.9", "0.001", 1, 0, "0.5"]])
    log = logger(tmp_path, start=8)
    assert log.episodes == 2 and log.success_rate == 0.5     # the earlier episodes, by the rule
    log.episode(0, 12, 3.0, 0.7, 4)
    log.tick(20)
    log.close()
    eps, metrics = table(tmp_path / "episodes.csv"), table(tmp_path / "metrics.csv")
    assert eps[0] == list(EPISODE_COLUMNS) and eps[-1] == ["12", "3.000", "0", "0.7", "4"]
    assert metrics[0] == old_metrics and all(len(r) == len(old_metrics) for r in metrics)
    assert metrics[-1][:5] == ["20", metrics[-1][1], metrics[-1][2], "3", "0.463333"]
