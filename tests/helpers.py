"""Helpers shared by test modules (tests/ is on sys.path, see conftest.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from torch import nn

import asyncrl.algos.actor_critic as ac_mod


class Wrapped(nn.Module):
    """A torso that is not a plain nn.Sequential MLP: the NumPy acting mirrors do not know
    it, which forces the torch path."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def spy_returns(monkeypatch) -> list:
    """Record the returns ActorCriticAlgorithm.loss computes (calls the real n_step_returns)."""
    seen = []
    real = ac_mod.n_step_returns

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(ac_mod, "n_step_returns", spy)
    return seen


def run_cli_forked(cases: list[dict], timeout: float = 900) -> list[dict]:
    """Run many CLI invocations, each in its own process, with one interpreter start-up
    (tests/cli_forks.py): cases are {"args": [...], "cwd": folder, "watch": folder or None};
    each result is {"returncode", "stdout", "stderr", "watched"} (the watched folder's digest
    after the case; cli_forks.folder_digest)."""
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(cases, fh)
    try:
        p = subprocess.run([sys.executable, os.path.join(here, "cli_forks.py"), fh.name], capture_output=True,
                           text=True, timeout=timeout)
    finally:
        os.unlink(fh.name)
    assert p.returncode == 0, p.stderr
    results = json.loads(p.stdout)
    assert len(results) == len(cases)
    return results


def assert_refused_in_one_line(returncode: int | None, stdout: str, stderr: str, expected: str) -> None:
    """A bad input's contract: exit code 2 and one line on stderr that says `expected`, no traceback."""
    assert returncode == 2, (returncode, stdout, stderr)
    assert expected in stderr, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def train_cli(*args: str) -> subprocess.Popen:
    """`python -m asyncrl train ARGS --quiet` started in the background (stdout and stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "asyncrl", "train", *args, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
