"""Interrupting a run loses nothing: SIGINT/SIGTERM -> workers stop, checkpoint, exit 130."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import asyncrl


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_leaves_a_loadable_checkpoint(tmp_path, sig):
    run_dir = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "CartPole-v1",
                          "--workers", "2", "--steps", "10000000", "--run-dir", str(run_dir), "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    episodes = run_dir / "episodes.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (episodes.exists() and episodes.stat().st_size > 200):
        time.sleep(0.2)
    time.sleep(0.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (p.returncode, err)
    assert "interrupted at step" in err and "Traceback" not in err, err
    ckpt = run_dir / "checkpoints" / "latest.pt"
    assert ckpt.exists()
    agent = asyncrl.load(str(ckpt))
    assert 0 < agent.global_step < 10_000_000
    assert not (run_dir / "checkpoints" / "final.pt").exists()
    # no worker outlives the run
    out = subprocess.run(["pgrep", "-f", f"run-dir {run_dir}"], capture_output=True, text=True).stdout
    assert out.strip() == ""
