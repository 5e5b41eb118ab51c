"""metrics.RunLogger: a metrics.csv row only once an update has been reported (no rows of nan
for intervals in which no worker reported), the last forced row with its update means left
empty; the progress bar shown by default only when someone is watching (a terminal or a
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


def test_no_row_for_an_interval_without_updates(tmp_path):
    log = RunLogger(str(tmp_path), ("loss/policy",), 0, 1000, 0.0, log_interval=1.0, progress=False, log_steps=10)
    log.tick(10)                           # due, but no update reported yet: no row
    log.tick(20)
    log.stats(0, 2, 0, 3.0, {"loss/policy": 4.0}, 5e-4)
    log.tick(30)                           # the interval's updates: one row
    log.tick(40)                           # due again, nothing reported since: no row
    log.tick(45, force=True)               # the last, forced: its steps are logged, update means empty
    log.close()
    got = rows(tmp_path)
    assert [int(r["step"]) for r in got] == [30, 45]
    assert (got[0]["updates"], got[0]["grad_norm"], got[0]["loss/policy"], got[0]["lr"]) == ("2", "1.5", "2", "0.0005")
    assert (got[1]["updates"], got[1]["grad_norm"], got[1]["loss/policy"]) == ("0", "", "")
    assert "nan" not in (tmp_path / "metrics.csv").read_text()


def test_skipped_updates_alone_make_a_row(tmp_path):
    log = RunLogger(str(tmp_path), (), 0, 100, 0.0, log_interval=1.0, progress=False, log_steps=10)
    log.stats(0, 0, 3, 0.0, {}, 1e-3)
    log.tick(10)
    log.close()
    assert [(r["skipped_updates"], r["grad_norm"]) for r in rows(tmp_path)] == [("3", "")]


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
