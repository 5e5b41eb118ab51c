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


_server: subprocess.Popen | None = None


def run_cli(*args: str, cwd: str | None = None, timeout: float = 240,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m asyncrl ARGS` run to its end, as subprocess.run(capture_output=True,
    text=True) runs it, in a process of its own with its own process group, working folder
    (`cwd`, default this one's) and environment (`env`, default this one's); forked from one
    interpreter per test process that has imported asyncrl.cli as `python -m asyncrl` does
    (tests/cli_forks.py --serve), so each run does not pay an interpreter's and torch's
    start-up (about 2 s of a short training's 2.3 s here). Tests of signals and of the entry
    point itself start `python -m asyncrl` as a user does."""
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                 "cli_forks.py"), "--serve"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        case = {"args": list(args), "cwd": os.path.abspath(cwd or os.getcwd()), "env": dict(env or os.environ),
                "timeout": timeout, "out": out, "err": err}
        _server.stdin.write(json.dumps(case) + "\n")
        _server.stdin.flush()
        answer = _server.stdout.readline()
        assert answer, "tests/cli_forks.py --serve ended"
        returncode = json.loads(answer)["returncode"]
        with open(out) as fo, open(err) as fe:
            stdout, stderr = fo.read(), fe.read()
    cmd = [sys.executable, "-m", "asyncrl", *args]
    if returncode is None:
        raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
    return subprocess.CompletedProcess(cmd, returncode, stdout, stderr)


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
