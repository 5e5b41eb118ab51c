"""A checkpoint is data: loading one never imports a module it names unless the caller says
so (issue 28). A folder holds payload.py and a checkpoint whose env is
`payload:CartPole-v1` (gym.make would import `payload`, running its code)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import asyncrl
from helpers import assert_refused_in_one_line

PAYLOAD = """import os
open(os.environ["PAYLOAD_RAN"], "a").write("ran\\n")
"""


@pytest.fixture
def planted(tmp_path):
    """(folder, checkpoint path, the file the payload writes when it runs)."""
    agent = asyncrl.A3C("CartPole-v1", workers=1)
    path = agent.save(str(tmp_path / "agent.pt"))
    data = torch.load(path, weights_only=True)
    data["config"]["env"] = "payload:CartPole-v1"
    torch.save(data, path)
    (tmp_path / "payload.py").write_text(PAYLOAD)
    return tmp_path, path, tmp_path / "ran.txt"


def run_here(folder, ran, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAYLOAD_RAN": str(ran)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=str(folder),
                          env=env)


def test_eval_of_a_checkpoint_does_not_import_the_module_it_names(planted):
    """`python -m asyncrl eval agent.pt` in the payload's folder: refused in one line that
    says why and how to allow it; the payload never ran."""
    folder, path, ran = planted
    r = run_here(folder, ran, "-m", "asyncrl", "eval", path, "--episodes", "1")
    assert_refused_in_one_line(r.returncode, r.stdout, r.stderr, "would import module 'payload'")
    assert "--env payload:CartPole-v1" in r.stderr
    assert not ran.exists()


def test_eval_with_the_env_named_on_the_command_line_trusts_it(planted):
    """Naming the env yourself (--env) is trusting it: the module is imported and the
    evaluation runs."""
    folder, path, ran = planted
    r = run_here(folder, ran, "-m", "asyncrl", "eval", path, "--episodes", "1", "--env", "payload:CartPole-v1",
                 "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["episodes"] == 1
    assert ran.read_text() == "ran\n"


def test_load_in_python_never_imports_it_unless_trusted(planted):
    """asyncrl.load(path): the agent loads and acts (no env needed) without the payload
    running; evaluate() and learn() refuse with an EnvError naming trust_env_module;
    asyncrl.load(path, trust_env_module=True) evaluates."""
    folder, path, ran = planted
    script = f"""
import asyncrl, numpy as np
from asyncrl.errors import EnvError
agent = asyncrl.load({path!r})
print("act", agent.act(np.zeros(4, np.float32)))
for call in (lambda: agent.evaluate(1), lambda: agent.learn(10)):
    try:
        call()
    except EnvError as exc:
        print("refused", exc)
import os
assert not os.path.exists({str(ran)!r})
print("trusted", asyncrl.load({path!r}, trust_env_module=True).evaluate(1)["episodes"])
"""
    r = run_here(folder, ran, "-c", script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("act ")
    refused = [ln for ln in lines if ln.startswith("refused")]
    assert len(refused) == 2 and all("would import module 'payload'" in ln and "trust_env_module=True" in ln
                                     for ln in refused), lines
    assert lines[-1] == "trusted 1"
    assert ran.read_text() == "ran\n"
