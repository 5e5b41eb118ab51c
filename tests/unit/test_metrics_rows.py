"""metrics.RunLogger: a metrics.csv row of an interval in which no worker reported an update
(hogwild workers report once a second) leaves the update means empty instead of writing nan;
the progress bar shown by default only when someone is watching (a terminal or a
Jupyter kernel), through tqdm.auto."""
from __future__ import annotations

import csv
import sys
import types

import pytest

from asyncrl import metrics
from asyncrl.metrics import RunLogger


def rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_an_interval_without_updates_leaves_the_update_means_empty(tmp_path):
    log = RunLogger(str(tmp_path), ("loss/policy",), 0, 1000, 0.0, log_interval=1.0, progress=False, log_steps=10)
    log.tick(10)                           # due before any update was reported
    log.stats(0, 2, 0, 3.0, {"loss/policy": 4.0}, 5e-4)
    log.tick(20)                           # the interval's updates
    log.tick(30)                           # nothing reported since
    log.tick(30, force=True)               # nothing new at all: no row
    log.close()
    got = rows(tmp_path)
    assert [int(r["step"]) for r in got] == [10, 20, 30]
    assert [(r["updates"], r["grad_norm"], r["loss/policy"], r["lr"]) for r in got] == \
        [("0", "", "", ""), ("2", "1.5", "2", "0.0005"), ("0", "", "", "0.0005")]
    assert got[0]["return_mean_100"] == "" and float(got[2]["steps_per_s"]) >= 0
    assert "nan" not in (tmp_path / "metrics.csv").read_text()


def test_skipped_updates_alone_make_a_row(tmp_path):
    log = RunLogger(str(tmp_path), (), 0, 100, 0.0, log_interval=1.0, progress=False, log_steps=10)
    log.stats(0, 0, 3, 0.0, {}, 1e-3)
    log.tick(10)
    log.close()
    assert [(r["skipped_updates"], r["grad_norm"]) for r in rows(tmp_path)] == [("3", "")]


def test_no_step_gets_a_second_row_when_statistics_arrive_after_its_row(tmp_path):
    # The race seen in a kill -9 resume test: a periodic row at the final step, then the
    # workers' last statistics, then the forced row after training at that same step.
    log = RunLogger(str(tmp_path), ("loss/policy",), 0, 30, 0.0, log_interval=1.0, progress=False, log_steps=10)
    # The target's row waits for the forced tick, which has every late report; a row at
    # another step is never written twice either.
    log.stats(0, 1, 0, 1.0, {"loss/policy": 2.0}, 1e-3)
    log.tick(20)
    log.stats(0, 1, 0, 1.0, {"loss/policy": 2.0}, 1e-3)
    log.tick(20, force=True)
    log.tick(30)
    log.stats(0, 1, 1, 1.0, {"loss/policy": 2.0}, 1e-3)
    log.tick(30)
    log.tick(30, force=True)
    log.close()
    assert [(r["step"], r["updates"], r["skipped_updates"]) for r in rows(tmp_path)] == \
        [("20", "1", "0"), ("30", "2", "1")]     # the row at the target has every report


def test_interactive_means_a_terminal_or_a_jupyter_kernel(monkeypatch):
    class NotATty:
        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stderr", NotATty())
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert metrics.interactive() is False

    class ZMQInteractiveShell:             # the class name of a Jupyter kernel's shell
        pass

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=ZMQInteractiveShell))
    assert metrics.interactive() is True

    class TerminalInteractiveShell:
        pass

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=TerminalInteractiveShell))
    assert metrics.interactive() is False

    class Tty(NotATty):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert metrics.interactive() is True


@pytest.mark.parametrize("progress,watching,shown", [(None, True, True), (None, False, False), (True, False, True)])
def test_the_bar_is_tqdm_auto_shown_by_default_when_watched(monkeypatch, progress, watching, shown):
    import tqdm.auto

    made = []

    class Bar:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    monkeypatch.setattr(metrics, "interactive", lambda: watching)
    log = RunLogger(None, (), 0, 100, 0.0, 1.0, progress)
    log._start()
    log.close()
    assert len(made) == 1 and made[0]["disable"] is (not shown)


def test_progress_false_makes_no_bar(monkeypatch):
    log = RunLogger(None, (), 0, 100, 0.0, 1.0, False)
    log._start()
    assert log._bar is None


def test_a_resume_moves_the_evaluations_past_its_step_aside(tmp_path):
    """evaluations.csv is cut back like episodes.csv and metrics.csv: the evaluations of a
    stretch a crash discarded go to evaluations.csv.after-<step>-<time>, not deleted."""
    import glob

    path = tmp_path / "evaluations.csv"
    path.write_text("step,wall_time,mean_return\r\n1000,1.0,9.0\r\n2000,2.0,10.0\r\n3000,3.0,11.0\r\n")
    log = RunLogger(str(tmp_path), (), 2000, 5000, 0.0, log_interval=1.0, progress=False)
    log.close()
    assert path.read_bytes() == b"step,wall_time,mean_return\r\n1000,1.0,9.0\r\n2000,2.0,10.0\r\n"
    aside = glob.glob(str(tmp_path / "evaluations.csv.after-2000-*"))
    assert len(aside) == 1
    with open(aside[0], "rb") as fh:
        assert fh.read() == b"step,wall_time,mean_return\r\n3000,3.0,11.0\r\n"
