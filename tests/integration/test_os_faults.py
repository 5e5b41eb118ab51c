"""The operating system pushes back (issue 28): a disk that fills up, an evaluation whose
environment hangs. The run says so in one line, keeps its last good checkpoint, and never
blocks forever."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import asyncrl

#: bytes a file may grow to in the disk-full runs: above every log file of these short runs,
#: below one checkpoint of their 256x256 network (parameters and RMSProp statistics: about 545
#: KB) and below hogwild's shared parameters and gradients (542 KB: the limit holds for /dev/shm too)
FILE_LIMIT = 400_000


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _limited_to(limit: int):
    """A Popen preexec_fn: files may not grow past `limit` bytes (EFBIG, as a full disk gives ENOSPC)."""
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


_limited_files = _limited_to(FILE_LIMIT)


def test_a_full_disk_warns_at_periodic_checkpoints_and_fails_the_final_one_with_exit_5(tmp_path):
    """A run stopped with a good checkpoint is resumed where no checkpoint fits any more:
    each periodic checkpoint that cannot be written is a warning (stderr and faults.log)
    and training goes on to its target; the final checkpoint that cannot be written ends
    the run with exit code 5 and one line, no traceback; the last good checkpoint is intact
    and no temporary file is left."""
    run_dir, target = tmp_path / "run", 20_000
    args = ["a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--quiet"]     # sync: no /dev/shm
    p = subprocess.Popen([sys.executable, "-m", "asyncrl", "train", *args, "--workers", "2", "--steps", str(target),
                          "--hidden", "256", "256", "--eval-episodes", "0", "--fused-optimizer", "off"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (run_dir / "episodes.csv").exists(), what="the first episodes")
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    latest = run_dir / "checkpoints" / "latest.pt"
    good = latest.read_bytes()
    assert len(good) > FILE_LIMIT
    step = asyncrl.load(str(latest)).global_step
    assert step < target

    r = subprocess.run([sys.executable, "-m", "asyncrl", "train", *args, "--resume", "--checkpoint-interval", "0.3"],
                       capture_output=True, text=True, timeout=240, preexec_fn=_limited_files)
    assert r.returncode == 5, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    warnings = [ln for ln in r.stderr.splitlines() if "could not write a periodic checkpoint" in ln]
    assert warnings and all("File too large" in ln and f"(step {step:,}) is kept" in ln for ln in warnings), r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("asyncrl train: error:")]
    assert len(errors) == 1 and "could not write the final checkpoint" in errors[0] and "File too large" in errors[0]
    assert f"{latest} (step {step:,})" in r.stderr
    assert "could not write a periodic checkpoint" in (run_dir / "faults.log").read_text()
    assert latest.read_bytes() == good
    assert not (run_dir / "checkpoints" / "final.pt").exists()
    assert not [f for f in os.listdir(run_dir / "checkpoints") if f.startswith(".tmp-")]
    # the episodes of the resumed stretch were logged: training went on to the target
    steps = [int(line.split(",")[0]) for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert steps[-1] == target


HANG = {"TOY_FAULT": "hang"}


def test_a_hanging_env_in_the_final_evaluation_times_out(tmp_path):
    """An env that hangs in the final evaluation (it hangs once checkpoints/final.pt exists:
    the trained run is saved before evaluation starts) stops after --worker-timeout seconds
    without progress: exit 3, one error line saying the training finished and where its
    checkpoint is; no eval.json. `asyncrl eval` on that folder times out the same way."""
    run_dir = tmp_path / "run"
    final = run_dir / "checkpoints" / "final.pt"
    env = {**os.environ, **HANG, "TOY_FAULT_FILE": str(final)}
    p = subprocess.Popen([sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "toy_envs:FaultAfterFile-v0",
                          "--workers", "1", "--steps", "600", "--eval-episodes", "2", "--worker-timeout", "3",
                          "--run-dir", str(run_dir), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"the evaluation hung: {err[-2000:]}")
    assert p.returncode == 3, err
    assert "Traceback" not in err
    assert "evaluation episode 1 finished no step for 3 s (worker-timeout; hung)" in err, err
    assert f"training finished: {final} (step 600)" in err, err
    assert asyncrl.load(str(final)).global_step == 600
    assert not (run_dir / "eval.json").exists()

    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "asyncrl", "eval", str(run_dir), "--episodes", "2", "--env",
                        "toy_envs:FaultAfterFile-v0"],     # named: trusted (the checkpoint alone imports nothing)
                       capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode == 3, r.stderr
    assert "evaluation episode 1 finished no step for 3 s (worker-timeout; hung)" in r.stderr
    # the env check before the evaluation gives up after the worker-timeout too (not its own 30 s:
    # this took 35 s before), so a hang costs the user seconds, not half a minute
    assert len(r.stderr.strip().splitlines()) == 1 and time.time() - t0 < 25


def test_no_room_in_shared_memory_for_the_parameters_is_one_line_and_exit_5(tmp_path):
    """Hogwild's parameters live in shared memory (/dev/shm, a file per tensor): when there is
    no room for them (here: the file-size limit), the run stops before any worker starts with
    exit code 5 and one error line saying where, not torch's traceback."""
    r = subprocess.run([sys.executable, "-m", "asyncrl", "train", "a3c", "--env", "CartPole-v1", "--workers", "2",
                        "--steps", "1000", "--hidden", "256", "256", "--fused-optimizer", "off",
                        "--run-dir", str(tmp_path / "run"), "--quiet"],
                       capture_output=True, text=True, timeout=120, preexec_fn=_limited_files)
    assert r.returncode == 5, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("asyncrl train: error:")]
    assert len(errors) == 1 and "cannot put the parameters in shared memory (/dev/shm)" in errors[0], r.stderr


def test_plot_and_export_that_cannot_write_are_one_line_and_exit_5_and_leave_the_old_file(tmp_path):
    """Every command, not only train: a write the OS refuses (here a 4 KB file-size limit,
    as a full disk refuses) is one line, `asyncrl CMD: error: ...`, exit code 5 and no
    traceback; the file the user asked to replace (--overwrite) is as it was, and no
    temporary file is left beside it."""
    import matplotlib.font_manager  # noqa: F401  (its cache built here, where files may grow: else the
    # limited plot process would build it and warn that it cannot save it)

    run = tmp_path / "run"
    run.mkdir()
    (run / "episodes.csv").write_text("step,wall_time,worker,return,length\n"
                                      + "".join(f"{10 * i},{0.1 * i},0,{i}.0,10\n" for i in range(1, 50)))
    asyncrl.A3C("CartPole-v1", workers=1).save(str(run / "checkpoints" / "latest.pt"))
    for cmd, out in (["plot", str(run), "--out"], "curves.png"), (["export", str(run), "--out"], "policy.pt"):
        (tmp_path / out).write_bytes(b"the old file")
        before = sorted(os.listdir(tmp_path))
        r = subprocess.run([sys.executable, "-m", "asyncrl", *cmd, str(tmp_path / out), "--overwrite"],
                           capture_output=True, text=True, timeout=120, preexec_fn=_limited_to(4096))
        assert r.returncode == 5, (cmd, r.returncode, r.stderr[-3000:])
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"asyncrl {cmd[0]}: error: "), r.stderr
        assert (tmp_path / out).read_bytes() == b"the old file"
        assert sorted(os.listdir(tmp_path)) == before
