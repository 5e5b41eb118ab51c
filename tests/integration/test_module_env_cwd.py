"""`module:Id` envs from the current directory (issue 30, item 6): the console script, whose
sys.path does not hold the working directory, imports them as `python -m asyncrl` does, and
so does a worker or Ray actor that unpickles the recipe elsewhere; a failed import names the
sys.path searched."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from asyncrl.envs import EnvFactory
from asyncrl.errors import EnvError

SCRIPT = os.path.join(os.path.dirname(sys.executable), "asyncrl")

CORRIDOR = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np


    class Corridor(gym.Env):
        """Walk right to the end of a 4-cell corridor."""

        observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.pos = 0
            return np.zeros(1, np.float32), {}

        def step(self, action):
            self.pos = max(0, min(3, self.pos + (1 if action == 1 else -1)))
            return np.array([self.pos / 3], np.float32), float(self.pos == 3), self.pos == 3, False, {}


    gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=20)
''')


@pytest.fixture
def project(tmp_path):
    """A user's folder holding the package mymod (mymod/envs.py registers Corridor-v0)."""
    (tmp_path / "mymod").mkdir()
    (tmp_path / "mymod" / "__init__.py").write_text("")
    (tmp_path / "mymod" / "envs.py").write_text(CORRIDOR)
    return tmp_path


def clean_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)          # the user's shell: nothing of the test suite's on the path
    return env


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="the asyncrl console script is not installed")
def test_the_console_script_imports_a_module_from_the_current_directory(project):
    p = subprocess.run([SCRIPT, "train", "a2c", "--env", "mymod.envs:Corridor-v0", "--workers", "2", "--steps", "200",
                        "--eval-episodes", "2", "--run-dir", "run", "--quiet"], cwd=project, capture_output=True,
                       text=True, timeout=300, env=clean_env())
    assert p.returncode == 0, p.stderr
    assert (project / "run" / "checkpoints" / "final.pt").is_file()


@pytest.mark.skipif(not os.path.exists(SCRIPT), reason="the asyncrl console script is not installed")
def test_a_module_that_is_nowhere_names_the_sys_path_searched(project):
    p = subprocess.run([SCRIPT, "train", "a2c", "--env", "nomod.envs:Corridor-v0", "--steps", "200",
                        "--run-dir", "run"], cwd=project, capture_output=True, text=True, timeout=300, env=clean_env())
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert "unknown environment 'nomod.envs:Corridor-v0': cannot import module 'nomod.envs' (No module named " \
           "'nomod'); searched sys.path: " in lines[0]
    assert f" and {project}" in lines[0]           # the working directory, tried too
    assert not (project / "run").exists()


def test_a_recipe_unpickled_in_another_directory_finds_the_module(project, tmp_path_factory, monkeypatch):
    """A worker or Ray actor gets the recipe pickled; its working directory and sys.path may be
    other than the main process's: the directory the id was named in is tried."""
    monkeypatch.chdir(project)
    recipe = pickle.dumps(EnvFactory("mymod.envs:Corridor-v0"))
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(project))])
    for name in [m for m in sys.modules if m == "mymod" or m.startswith("mymod.")]:
        monkeypatch.delitem(sys.modules, name)
    env = pickle.loads(recipe)()
    try:
        assert env.reset(seed=0)[0].shape == (1,)
    finally:
        env.close()
    assert sys.path[0] == str(project)


def test_a_module_whose_own_import_fails_is_not_reported_as_missing(project, monkeypatch):
    (project / "brokenmod_xyz.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", list(sys.path))       # the directory it adds goes with the test
    with pytest.raises(EnvError, match=r"module 'brokenmod_xyz' was found but its import failed: No module named "
                                       r"'no_such_dependency_xyz'"):
        EnvFactory("brokenmod_xyz:X-v0")()
