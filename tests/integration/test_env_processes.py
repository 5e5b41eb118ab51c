"""What an environment starts dies with the run (ViZDoom starts a game engine that ignores
SIGTERM and outlives its parent): a SIGTERM to the run's whole process group, as `timeout`
or a job scheduler sends, stops the run with a checkpoint and leaves no engine behind; so
does a SIGKILL of the main process, under hogwild (workers and the evaluator) and under the
sync executor's env subprocesses; and so does a worker that fails without closing its env."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers import wait_for


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"     # a zombie has ended
    except FileNotFoundError:
        return False


def engines(folder) -> list[int]:
    return [int(name) for name in os.listdir(folder)]


def workers_with_episodes(run_dir) -> set[str]:
    try:
        with open(run_dir / "episodes.csv") as fh:
            return {line.split(",")[2] for line in fh.read().splitlines()[1:] if line.count(",") >= 4}
    except FileNotFoundError:
        return set()


RUNS = {"hogwild": ["a3c", "--workers", "2", "--eval-every", "1000", "--eval-episodes", "2"],
        "sync-subprocess": ["a2c", "--workers", "2", "--vec-env", "subprocess"]}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
@pytest.mark.parametrize("how", ["group-sigterm", "main-sigkill"])
@pytest.mark.parametrize("run", sorted(RUNS))
def test_no_env_process_outlives_the_run(tmp_path, run, how):
    folder = tmp_path / "engines"
    folder.mkdir()
    run_dir = tmp_path / "run"
    err = open(tmp_path / "stderr.txt", "w+")     # not a pipe: an orphaned engine would hold it open
    p = subprocess.Popen([sys.executable, "-m", "asyncrl", "train", *RUNS[run], "--env", "toy_envs:EngineCartPole-v0",
                          "--steps", "10000000", "--run-dir", str(run_dir), "--quiet"],
                         stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                         env={**os.environ, "TOY_ENGINE_DIR": str(folder)})
    try:
        wait_for(lambda: {"0", "1"} <= workers_with_episodes(run_dir), timeout=120,
                 what="an episode from each worker (each env's engine running)")
        if run == "hogwild":
            wait_for(lambda: (run_dir / "evaluations.csv").exists(), timeout=60, what="an evaluation")
        assert sum(alive(pid) for pid in engines(folder)) >= 2
        if how == "group-sigterm":
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=60)
            assert p.returncode == 130, (tmp_path / "stderr.txt").read_text()[-2000:]
            assert (run_dir / "checkpoints" / "latest.pt").exists()
        else:
            p.kill()
            p.wait(timeout=60)
        wait_for(lambda: not any(alive(pid) for pid in engines(folder)), timeout=10, what="every engine gone")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        err.close()
        for pid in engines(folder):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
def test_a_failed_workers_env_process_goes_with_it(tmp_path):
    """Every env raises at its 300th step: the workers fail (their envs not closed), are
    restarted twice, then the run stops with exit code 3; no engine is left."""
    folder = tmp_path / "engines"
    folder.mkdir()
    with open(tmp_path / "stderr.txt", "w") as err:     # not a pipe: an orphaned engine would hold it open
        p = subprocess.run([sys.executable, "-m", "asyncrl", "train", "a3c", "--workers", "2", "--env",
                            "toy_envs:EngineCartPole-v0", "--steps", "100000", "--max-worker-restarts", "2",
                            "--eval-episodes", "0", "--run-dir", str(tmp_path / "run"), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=err, timeout=120,
                           env={**os.environ, "TOY_ENGINE_DIR": str(folder), "TOY_ENGINE_FAIL_AT": "300"})
    assert p.returncode == 3, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert len(engines(folder)) >= 4                # the check's, 2 workers', 2 replacements' at least
    wait_for(lambda: not any(alive(pid) for pid in engines(folder)), timeout=10, what="every engine gone")
