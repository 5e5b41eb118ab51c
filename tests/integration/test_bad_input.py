"""Issue 28's bad inputs, as a user gives them: each is one line on stderr naming the bad value
and what is accepted, exit code 2, before any worker starts, and nothing left on disk (no
run folder, no file changed). The older cases are tests/integration/test_cli.py's BAD_INPUTS."""
from __future__ import annotations

import os

import pytest

import asyncrl
from cli_forks import folder_digest
from helpers import assert_refused_in_one_line, run_cli_forked

EPISODES_HEADER = "step,wall_time,worker,return,length\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The files the cases name as {name}: config files, a regular file, a checkpointed a3c run,
    and run folders whose episodes.csv is garbage or has its last row cut short."""
    d = tmp_path_factory.mktemp("bad28")
    (d / "steps-1e23.yaml").write_text("steps: 1e23\n")
    (d / "latin1.yaml").write_bytes("lr: 0.001  # r\xe9glage\n".encode("latin-1"))
    (d / "a-file").write_text("not a folder\n")
    (d / "theirs.gif").write_bytes(b"GIF89a not asyncrl's")
    asyncrl.A3C("CartPole-v1", workers=1).save(str(d / "a3c-run" / "checkpoints" / "latest.pt"))
    (d / "garbage-run").mkdir()
    (d / "garbage-run" / "episodes.csv").write_bytes(b"\x00\x01 this is not,a csv\n\xff\xfe")
    (d / "wrong-columns-run").mkdir()
    (d / "wrong-columns-run" / "episodes.csv").write_text("a,b,c\n1,2,3\n")
    (d / "bad-row-run").mkdir()
    (d / "bad-row-run" / "episodes.csv").write_text(EPISODES_HEADER + "10,0.1,0,abc,10\n20,0.2,0,5.0,10\n")
    (d / "plotted-run").mkdir()           # episodes.csv and a learning_curve.png, not made by asyncrl (no marker)
    (d / "plotted-run" / "episodes.csv").write_text(EPISODES_HEADER + "10,0.1,0,9.0,10\n")
    (d / "plotted-run" / "learning_curve.png").write_bytes(b"\x89PNG theirs")
    (d / "cut-run").mkdir()
    (d / "cut-run" / "episodes.csv").write_text(EPISODES_HEADER + "10,0.1,0,9.0,10\n20,0.2,1,11.0,10\n30,0.3,1,1")
    return d


TRAIN = ["train", "a3c", "--env", "CartPole-v1"]

# (argv, what stderr must say). {name} is a file of `files`; a train case without --run-dir
# gets one (`r` in its own working folder), which must not exist afterwards.
BAD_INPUTS = [
    # the step counter and every integer that ends up in a C int64
    (TRAIN + ["--steps", "18446744073709551716"], "steps must be at most 1,000,000,000,000 (1e12), got "
                                                  "18446744073709551716"),
    (TRAIN + ["--steps", "1e20"], "steps must be at most 1,000,000,000,000 (1e12), got 100000000000000000000"),
    (TRAIN + ["--config", "{steps-1e23.yaml}"], "steps must be at most 1,000,000,000,000 (1e12), got 99999999999"),
    (["train", "n-step-q", "--env", "CartPole-v1", "--target-update", "9223372036854775808"],
     "target-update must be at most 1,000,000,000,000"),
    (TRAIN + ["--log-steps", "1e19"], "log-steps must be at most 1,000,000,000,000"),
    # memory
    (TRAIN + ["--t-max", "1000000000"], "t-max must be at most 100,000, got 1000000000"),
    (TRAIN + ["--hidden", "100000000000000000000"], "hidden must be 1 to 100 layers of at most 1,000,000 units "
                                                    "each, got [100000000000000000000]"),
    (TRAIN + ["--hidden", "1000000", "1000000"], "hidden [1000000, 1000000] make a network of at least "
                                                 "1,000,004,000,001 parameters; at most 1,000,000,000"),
    (TRAIN + ["--net", "lstm", "--lstm-size", "1e9"], "lstm-size must be at most 100,000, got 1000000000"),
    # seeds
    (TRAIN + ["--seed", "-1"], "seed must be >= 0, got -1"),
    (TRAIN + ["--seed", "18446744073709551616"], "seed must be at most 4,294,967,295 (2**32 - 1, the largest "
                                                 "seed NumPy takes), got 18446744073709551616"),
    (TRAIN + ["--seed", "4294967295", "--workers", "2"], "seed must be at most 4,294,937,294 with workers 2"),
    # NaN, inf and absurd values
    (["train", "one-step-q", "--env", "CartPole-v1", "--epsilon-probs", "nan", "nan", "nan"],
     "epsilon-probs must be 3 non-negative numbers summing to 1 (one per epsilon-finals value), got [nan, nan, nan]"),
    (TRAIN + ["--value-coef", "inf"], "value-coef must be a finite number >= 0, got inf"),
    (TRAIN + ["--rms-eps", "inf"], "rms-eps must be a finite number >= 1e-30 (float32 keeps it), got inf"),
    (TRAIN + ["--optimizer", "adam", "--adam-eps", "inf"], "adam-eps must be a finite number >= 1e-30 (float32 keeps it), got inf"),
    (TRAIN + ["--entropy-beta", "nan"], "entropy-beta must be a finite number >= 0, got nan"),
    (TRAIN + ["--worker-timeout", "1e-9"], "worker-timeout must be >= 0 seconds: 0 (no timeout) or from 1 to "
                                           "1,000,000, got 1e-09"),
    (TRAIN + ["--eval-episodes", "1e9"], "eval-episodes must be at most 10,000, got 1000000000"),
    (TRAIN + ["--workers", "100000"], "workers must be at most 1,024 (processes, ray actors or sync environments "
                                      "of one run), got 100000"),
    (TRAIN + ["--stop-return", "nan"], "stop-return must be a number, or inf (never stop early), got nan"),
    # paths
    (TRAIN + ["--run-dir", "/proc/foo"], "run-dir '/proc/foo' is on the kernel's /proc file system, where "
                                         "nothing can be written; choose a folder on disk"),
    (TRAIN + ["--run-dir", "/sys/foo/bar"], "run-dir '/sys/foo/bar' is on the kernel's /sys file system"),
    (TRAIN + ["--run-dir", "{a-file}"], "a-file' is a file, not a folder"),
    (TRAIN + ["--run-dir", "{a-file}/run"], "a-file' is a file, not a folder"),
    (TRAIN + ["--config", "{latin1.yaml}"], "latin1.yaml' is not UTF-8 text (byte 0xe9 at offset 14); save it as "
                                            "UTF-8 YAML"),
    # an env that breaks the Gymnasium API, found in this process before any worker starts
    (["train", "a3c", "--env", "bad_envs:OldStepAPI-v0", "--workers", "2"],
     "environment 'bad_envs:OldStepAPI-v0' breaks the Gymnasium API: step() (random action 1 of 10) returned 4 "
     "values (observation, reward, done, info), the API of gym before 0.26"),
    (["train", "a3c", "--env", "bad_envs:ObsOutsideSpace-v0"], "breaks the Gymnasium API: reset() returned an "
                                                               "observation outside its space: element 1 is 5.0"),
    (["train", "a3c", "--env", "bad_envs:NaNObs-v0"], "returned an observation holding nan (not finite)"),
    (["train", "a3c", "--env", "bad_envs:WrongDtype-v0"], "reset() returned an observation of dtype float64; the "
                                                          "observation space's dtype is uint8"),
    # plot and eval
    (["plot", "{garbage-run}"], "garbage-run/episodes.csv' is not an episodes.csv asyncrl wrote"),
    (["plot", "{wrong-columns-run}"], "wrong-columns-run/episodes.csv' is not an episodes.csv asyncrl wrote: "
                                      "no 'step' column"),
    (["plot", "{bad-row-run}"], "bad-row-run/episodes.csv' line 2 is not a row of numbers"),
    (["plot", "{cut-run}", "--out", "/proc/curves.png"], "plot file '/proc/curves.png' is on the kernel's /proc "
                                                         "file system"),
    (["plot", "{cut-run}", "--out", "{a-file}/curves.png"], "a-file' is a file, not a folder"),
    (["plot", "{cut-run}", "--out", "curves.xyz"], "plot file 'curves.xyz': .xyz is not an image format"),
    (["plot", "{cut-run}", "--window", "100000000000000000000"], "--window must be at most 1,000,000,000,000"),
    # a file the user named that exists is theirs: replaced only when told (as export's --out)
    (["plot", "{cut-run}", "--out", "{a-file}"], "a-file' exists; choose another file or pass --overwrite to "
                                                 "replace it"),
    (["eval", "{a3c-run}", "--video", "{theirs.gif}"], "theirs.gif' exists; choose another file or pass "
                                                       "--overwrite to replace it"),
    (["plot", "{plotted-run}"], "plotted-run/learning_curve.png' exists; choose another file or pass --overwrite"),
    (["plot", "{cut-run}", "--out", "{plotted-run}"], "plotted-run' is a folder; name the file to write"),
    (["eval", "{a3c-run}", "--video", "/proc/ep.mp4"], "video file '/proc/ep.mp4' is on the kernel's /proc file "
                                                       "system"),
    (["eval", "{a3c-run}", "--video", "/sys/ep.gif"], "video file '/sys/ep.gif' is on the kernel's /sys file system"),
    (["eval", "{a3c-run}", "--episodes", "1000000000"], "--episodes must be at most 10,000, got 1000000000"),
    (["eval", "{a3c-run}", "--seed", "18446744073709551616"], "--seed must be at most 4,294,967,286 with "
                                                              "--episodes 10"),
]


def _expand(args: list[str], files, work) -> list[str]:
    out = []
    for a in args:
        if a.startswith("{"):
            a = str(files / a[1:a.index("}")]) + a[a.index("}") + 1:]
        out.append(a)
    if out[0] == "train" and "--run-dir" not in out:
        out += ["--run-dir", str(work / "r")]
    return out


@pytest.fixture(scope="module")
def bad_input_runs(files, tmp_path_factory):
    """Every case run once as `asyncrl ARGS` in its own process and empty working folder
    (tests/cli_forks.py, as test_cli.py's bad inputs)."""
    works = [tmp_path_factory.mktemp(f"bad28-{i}") for i in range(len(BAD_INPUTS))]
    cases = [{"args": _expand(args, files, work), "cwd": str(work), "watch": str(files)}
             for (args, _), work in zip(BAD_INPUTS, works)]
    before = folder_digest(str(files))
    return before, works, run_cli_forked(cases)


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)), ids=[" ".join(a[:6])[:70] for a, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line(case, bad_input_runs):
    before, works, runs = bad_input_runs
    p = runs[case]
    assert_refused_in_one_line(p["returncode"], p["stdout"], p["stderr"], BAD_INPUTS[case][1])
    assert os.listdir(works[case]) == []           # no run folder, no plot, no video, no probe left
    assert p["watched"] == before                  # no file of theirs changed


def test_plot_tolerates_a_last_row_cut_short(files, tmp_path):
    """A run killed while writing episodes.csv: its cut last row is left out, as a resume
    leaves it out, and the plot is written."""
    from asyncrl.plot import read_episodes

    d = read_episodes(str(files / "cut-run"))
    assert list(d["step"]) == [10.0, 20.0] and list(d["return"]) == [9.0, 11.0]
    out = tmp_path / "c.png"
    [r] = run_cli_forked([{"args": ["plot", str(files / "cut-run"), "--out", str(out)], "cwd": str(tmp_path),
                           "watch": None}])
    assert r["returncode"] == 0, r["stderr"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_replaces_its_own_default_file_and_a_named_one_only_with_overwrite(files, tmp_path):
    """learning_curve.png in a run folder asyncrl made (the default --out) is asyncrl's and is
    redrawn each time; a file named with --out that exists is replaced with --overwrite
    (refused without it, as the default file in a folder asyncrl did not make: the bad inputs
    above)."""
    import shutil

    from asyncrl.run import mark_run_dir

    run = tmp_path / "run"
    shutil.copytree(files / "cut-run", run)
    mark_run_dir(str(run))
    out = tmp_path / "mine.png"
    out.write_bytes(b"old")
    runs = run_cli_forked([{"args": ["plot", str(run)], "cwd": str(tmp_path), "watch": None},
                           {"args": ["plot", str(run)], "cwd": str(tmp_path), "watch": None},
                           {"args": ["plot", str(run), "--out", str(out), "--overwrite"], "cwd": str(tmp_path),
                            "watch": None}])
    assert [r["returncode"] for r in runs] == [0, 0, 0], [r["stderr"] for r in runs]
    assert (run / "learning_curve.png").read_bytes()[:8] == out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["mine.png", "run"]         # no temporary file left
    assert sorted(os.listdir(run)) == [".asyncrl-run", "episodes.csv", "learning_curve.png"]
