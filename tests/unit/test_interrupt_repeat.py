"""`timeout` (and job schedulers) send SIGTERM to the main process and then to its whole
process group, so the main process gets two at once: that is one request to stop (save a
checkpoint, exit 130), not the 'second Ctrl-C' that stops right now. A second request a
second or more later still stops right now."""
from __future__ import annotations

import os
import signal

import pytest

from asyncrl import cli, procs


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(procs.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(procs, "_last_interrupt", [float("-inf")])
    return now


def test_a_signal_right_after_one_is_the_same_request(clock):
    with procs.DeferredInterrupt() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)          # the group's copy
        assert stop.requested
        clock[0] += procs.REPEAT_S
        with pytest.raises(KeyboardInterrupt):        # a person asking again
            os.kill(os.getpid(), signal.SIGTERM)


def test_the_cli_sigterm_handler_takes_the_groups_copy_as_the_same_request(clock):
    with pytest.raises(KeyboardInterrupt):
        cli._sigterm_as_interrupt(signal.SIGTERM, None)
    assert cli._sigterm_as_interrupt(signal.SIGTERM, None) is None
    clock[0] += 0.5
    assert cli._sigterm_as_interrupt(signal.SIGTERM, None) is None
    clock[0] += procs.REPEAT_S
    with pytest.raises(KeyboardInterrupt):
        cli._sigterm_as_interrupt(signal.SIGTERM, None)
