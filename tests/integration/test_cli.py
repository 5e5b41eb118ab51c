"""The CLI end to end, as a user runs it: train -> eval -> plot, and every bad input."""
from __future__ import annotations

import csv
import json
import os

import pytest
import torch

import asyncrl
from cli_forks import folder_digest
from helpers import assert_refused_in_one_line, run_cli, run_cli_forked


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("cli") / "run")
    p = run_cli("train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "3003",
                "--run-dir", run_dir, "--eval-episodes", "2", "--log-interval", "0.2", "--quiet")
    assert p.returncode == 0, p.stderr
    return run_dir, p


def test_train_writes_the_run_folder(trained_run):
    """config.yaml, episodes.csv, metrics.csv, TensorBoard events and checkpoints exist with the spec's columns."""
    run_dir, p = trained_run
    for name in ("config.yaml", "episodes.csv", "metrics.csv", "eval.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(run_dir, "tb")))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "final.pt"))
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", "latest.pt"))
    with open(os.path.join(run_dir, "episodes.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["step", "wall_time", "worker", "return", "length"]
    assert {r["worker"] for r in rows} == {"0", "1"}
    assert max(int(r["step"]) for r in rows) <= 3003
    with open(os.path.join(run_dir, "metrics.csv")) as fh:
        mrows = list(csv.DictReader(fh))
    for col in ("step", "wall_time", "steps_per_s", "loss/policy", "loss/value", "loss/entropy"):
        assert col in mrows[0], col
    assert int(mrows[-1]["step"]) == 3003
    assert "3,003 steps" in p.stdout


def test_global_step_lands_exactly_on_target(trained_run):
    """The checkpoint's global step equals --steps exactly (3003 is not a multiple of t_max)."""
    run_dir, _ = trained_run
    agent = asyncrl.load(run_dir)
    assert agent.global_step == 3003


def test_eval_json(trained_run):
    """eval --json prints one object with the contracted keys."""
    run_dir, _ = trained_run
    p = run_cli("eval", run_dir, "--episodes", "3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for key in ("episodes", "mean_return", "std_return", "min_return", "max_return"):
        assert key in out
    assert out["episodes"] == 3 and out["min_return"] <= out["mean_return"] <= out["max_return"]
    with open(os.path.join(run_dir, "eval.json")) as fh:       # the run folder's eval.json names the step alike
        assert out["step"] == json.load(fh)["step"] == 3003 and "global_step" not in out


def test_eval_checkpoint_file_and_stochastic(trained_run):
    """eval accepts a checkpoint file as well as a run folder, and --stochastic samples."""
    run_dir, _ = trained_run
    p = run_cli("eval", os.path.join(run_dir, "checkpoints", "final.pt"), "--episodes", "2", "--stochastic")
    assert p.returncode == 0, p.stderr
    assert "(stochastic): mean return" in p.stdout


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_eval_video(trained_run, tmp_path, ext):
    """--video writes the first --video-episodes episodes as rendered: one frame after each
    reset and one per step, in a file that a video reader opens; --json names it."""
    import imageio.v2 as imageio

    run_dir, _ = trained_run
    out = tmp_path / "sub" / f"cp{ext}"
    p = run_cli("eval", run_dir, "--episodes", "3", "--video", str(out), "--video-episodes", "2", "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    lengths = [len_ for len_ in _episode_lengths(run_dir, res)]
    assert res["video"] == str(out) and res["video_episodes"] == 2
    assert res["video_frames"] == sum(lengths[:2]) + 2
    assert sorted(os.listdir(out.parent)) == [out.name]          # no temporary file left
    if ext == ".mp4":
        reader = imageio.get_reader(str(out))
        assert reader.count_frames() == res["video_frames"]
        assert reader.get_meta_data()["fps"] == 50.0               # CartPole's render_fps
        assert reader.get_data(0).shape == (400, 600, 3)
    else:
        frames = imageio.mimread(str(out), memtest=False)
        assert 1 < len(frames) <= res["video_frames"]             # Pillow merges identical frames
        assert frames[0].shape[:2] == (400, 600)


def _episode_lengths(run_dir: str, res: dict) -> list[int]:
    """The lengths of the evaluation's episodes, replayed through the API with the same seed."""
    agent = asyncrl.load(run_dir)
    import gymnasium as gym

    env, lengths = gym.make("CartPole-v1"), []
    for i in range(res["episodes"]):
        obs, _ = env.reset(seed=res["seed"] + i)
        n, done = 0, False
        while not done:
            obs, _, term, trunc, _ = env.step(agent.act(obs))
            n, done = n + 1, term or trunc
        lengths.append(n)
    assert sum(lengths) / len(lengths) == res["mean_length"]
    return lengths


def test_bench_measures_the_env_alone_and_every_executor():
    """asyncrl bench --ray --json: the env alone in --workers processes, the algorithm under
    hogwild and ray with --workers and under sync with --sync-envs, each for --steps, with its
    ratio to the env alone."""
    p = run_cli("bench", "a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "6000", "--env-steps",
                "3000", "--sync-envs", "4", "--log-interval", "0.2", "--ray", "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    ea, hw, sy, ry = res["env_alone"], res["hogwild"], res["sync"], res["ray"]
    assert ea["processes"] == 2 and len(ea["per_process_steps_per_s"]) == 2 and ea["of_env_alone"] == 1.0
    assert (hw["executor"], hw["workers"], hw["steps"]) == ("hogwild", 2, 6000)
    assert (sy["executor"], sy["workers"], sy["steps"]) == ("sync", 4, 6000)
    assert (ry["executor"], ry["workers"], ry["steps"]) == ("ray", 2, 6000)
    for r in (hw, sy, ry):
        assert r["metrics_rows"] >= 2 and r["steady_state"] and 0 < r["steps_per_s"] < ea["steps_per_s"]
        assert r["of_env_alone"] == r["steps_per_s"] / ea["steps_per_s"]


def test_plot(trained_run, tmp_path):
    """plot writes a PNG."""
    run_dir, _ = trained_run
    out = str(tmp_path / "curve.png")
    p = run_cli("plot", run_dir, run_dir, "--out", out)
    assert p.returncode == 0, p.stderr
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_existing_run_folder_is_not_overwritten(trained_run):
    """A second train into the same folder refuses, and the saved run is untouched."""
    run_dir, _ = trained_run
    before = os.path.getmtime(os.path.join(run_dir, "checkpoints", "final.pt"))
    p = run_cli("train", "a3c", "--env", "CartPole-v1", "--steps", "100", "--run-dir", run_dir)
    assert p.returncode == 2
    assert "already holds a run" in p.stderr
    assert os.path.getmtime(os.path.join(run_dir, "checkpoints", "final.pt")) == before


def test_config_file(tmp_path):
    """--config sets options; flags override it; the resolved config is saved."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("t-max: 7\nlr: 0.002\nhidden: [16]\n")
    run_dir = str(tmp_path / "run")
    p = run_cli("train", "a3c", "--env", "CartPole-v1", "--workers", "1", "--steps", "200", "--config", str(cfg),
                "--lr", "0.003", "--run-dir", run_dir, "--eval-episodes", "0", "--quiet")
    assert p.returncode == 0, p.stderr
    import yaml

    saved = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))
    assert saved["t_max"] == 7 and saved["lr"] == 0.003 and saved["hidden"] == [16] and saved["workers"] == 1


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Files for the bad inputs that need one, named by the table's {placeholders}: a config
    file with an unknown key and one that is not YAML, a checkpoint cut to half its bytes,
    an empty file, a foreign torch file, and run folders holding an a3c checkpoint and a
    corrupt latest.pt. The test checks that no bad input changes any of them."""
    d = tmp_path_factory.mktemp("bad")
    (d / "unknown-key.yaml").write_text("t_max: 5\nlearning_rate: 0.1\n")
    (d / "not-yaml.yaml").write_text("lr: [0.1\n")
    (d / "algo-key.yaml").write_text("algo: a2c\n")
    agent = asyncrl.A3C("CartPole-v1", workers=1)
    whole = agent.save(str(d / "a3c-run" / "checkpoints" / "latest.pt"))
    data = open(whole, "rb").read()
    (d / "half.pt").write_bytes(data[: len(data) // 2])
    (d / "empty.pt").write_bytes(b"")
    torch.save({"w": torch.zeros(3)}, d / "foreign.pt")
    (d / "corrupt-run" / "checkpoints").mkdir(parents=True)
    (d / "corrupt-run" / "checkpoints" / "latest.pt").write_bytes(data[:1000])
    return d


# Every bad input: (argv, what stderr must say, the bad value named). {name} is a file of bad_files.
BAD_INPUTS = [
    (["train", "a3c", "--env", "NoSuchEnv-v0", "--steps", "10"], "unknown environment 'NoSuchEnv-v0'"),
    (["train", "a3c", "--env", "nosuchmodule:Foo-v0", "--steps", "10"], "cannot import module 'nosuchmodule'"),
    (["train", "a3c", "--env", "toy_envs:DictObs-v0", "--run-dir", "{a3c-run}", "--overwrite"],
     "'toy_envs:DictObs-v0' has a Dict observation space"),          # the run --overwrite would replace stays
    (["train", "a3c", "--env", "toy_envs:UnboundedAction-v0", "--steps", "10"],
     "'toy_envs:UnboundedAction-v0' has a continuous action space Box(-inf, inf, (1,), float32); a3c's "
     "Gaussian policy needs a 1-D Box with finite bounds"),
    (["train", "a3c", "--env", "CartPole-v1", "--net", "lstm", "--no-shared-torso"],
     "net 'lstm' shares its torso and core"),
    (["train", "n-step-q", "--env", "CartPole-v1", "--net", "lstm"], "net 'lstm' is available for a3c and a2c, "
     "not n-step-q"),
    (["train", "a3c", "--env", "CartPole-v1", "--net", "lstm", "--lstm-size", "0"], "lstm-size must be >= 1, got 0"),
    (["train", "a3c", "--env", "toy_envs:DictObs-v0", "--steps", "10"],
     "'toy_envs:DictObs-v0' has a Dict observation space, which no network fits"),
    (["train", "a3c", "--env", "toy_envs:TextObs-v0", "--steps", "10"],
     "'toy_envs:TextObs-v0' has a Text observation space, which no network fits"),
    (["train", "a3c", "--env", "CartPole-v1", "--workers", "0"], "workers must be >= 1, got 0"),
    (["train", "a3c", "--env", "CartPole-v1", "--steps", "-5"], "steps must be a positive integer, got -5"),
    (["train", "a3c", "--env", "CartPole-v1", "--steps", "abc"], "--steps: steps must be int, got 'abc'"),
    (["train", "a3c", "--env", "CartPole-v1", "--gamma", "1.5"], "gamma must be in (0, 1], got 1.5"),
    (["train", "a3c", "--env", "CartPole-v1", "--gamma", "0"], "gamma must be in (0, 1], got 0.0"),
    (["train", "a3c", "--env", "CartPole-v1", "--gamma", "-0.5"], "gamma must be in (0, 1], got -0.5"),
    (["train", "a3c", "--env", "CartPole-v1", "--t-max", "0"], "t-max must be >= 1, got 0"),
    (["train", "a3c", "--env", "CartPole-v1", "--lr", "-0.1"], "lr must be a finite number > 0, got -0.1"),
    (["train", "a3c", "--env", "CartPole-v1", "--lr", "inf"], "lr must be a finite number > 0, got inf"),
    (["train", "a3c", "--env", "CartPole-v1", "--optimizer", "lbfgs"], "optimizer 'lbfgs' is not one of"),
    (["train", "a3c", "--env", "CartPole-v1", "--executor", "mpi"], "executor 'mpi' is not one of"),
    (["train", "dqn", "--env", "CartPole-v1"], "unknown algorithm 'dqn'"),
    (["train", "a2c", "--env", "CartPole-v1", "--executor", "hogwild"], "a2c is A3C's loss under the sync executor"),
    (["train", "a2c", "--env", "CartPole-v1", "--executor", "ray", "--workers", "5", "--learners", "2"],
     "workers 5 is not a multiple of learners 2: each a2c learner steps workers / learners environments"),
    (["train", "a3c", "--env", "CartPole-v1", "--ray-address", "auto"], "ray-address 'auto' needs --executor ray"),
    (["train", "a3c", "--env", "CartPole-v1", "--executor", "ray", "--device", "cuda"],
     "device 'cuda' needs --executor sync (ray actor-learners run on the CPU)"),
    (["train", "a3c", "--env", "CartPole-v1", "--executor", "ray", "--ray-address", "127.0.0.1:1"],
     "ray-address '127.0.0.1:1': could not connect to a Ray cluster there"),
    (["bench", "a2c", "--env", "CartPole-v1", "--ray", "--sync-envs", "16", "--learners", "3"],
     "workers 16 is not a multiple of learners 3"),
    (["train", "a3c", "--env", "CartPole-v1", "--device", "cuda", "--executor", "hogwild"],
     "device 'cuda' needs --executor sync"),
    (["train", "a3c", "--env", "CartPole-v1", "--vec-env", "subprocess"], "vec-env 'subprocess' applies to --executor sync"),
    (["train", "a2c", "--env", "CartPole-v1", "--vec-env", "processes"],
     "vec-env 'processes' is not one of: auto, inline, split, threads, subprocess, ale, envpool"),
    (["train", "a2c", "--env", "CartPole-v1", "--device", "tpu"], "device 'tpu' is not one of: auto, cpu, cuda"),
    pytest.param(["train", "a2c", "--env", "CartPole-v1", "--device", "cuda"], "device 'cuda' was asked for but CUDA "
                 "is not available", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
    (["train", "a2c", "--env", "toy_envs:MultiDiscreteAction-v0"], "MultiDiscrete action space"),
    (["train", "one-step-q", "--env", "Pendulum-v1"], "environment 'Pendulum-v1' has a continuous action space "
     "(Box(-2.0, 2.0, (1,), float32)); one-step-q is a value-based method and needs Discrete actions"),
    (["train", "a3c", "--env", "CartPole-v1", "--gaussian-mean", "tanh"], "gaussian-mean tanh bounds a Gaussian "
     "policy's mean, and environment 'CartPole-v1' has Discrete(2) actions (a softmax policy): leave gaussian-mean "
     "at linear"),
    (["train", "a3c", "--env", "Pendulum-v1", "--gaussian-mean", "sigmoid"],
     "gaussian-mean 'sigmoid' is not one of: linear, tanh"),
    (["train", "n-step-q", "--env", "CartPole-v1", "--target-update", "0"], "target-update must be >= 1 global steps, "
     "got 0"),
    (["train", "one-step-sarsa", "--env", "CartPole-v1", "--epsilon-probs", "0.5", "0.6", "0.1"],
     "epsilon-probs must be 3 non-negative numbers summing to 1 (one per epsilon-finals value), got [0.5, 0.6, 0.1]"),
    (["train", "a3c", "--env", "CartPole-v1", "--keep-checkpoints", "-1"], "keep-checkpoints must be >= 0"),
    (["train", "a3c", "--env", "CartPole-v1", "--max-worker-restarts", "-1"], "max-worker-restarts must be >= 0, got -1"),
    (["train", "a3c", "--env", "CartPole-v1", "--worker-timeout", "-3"], "worker-timeout must be >= 0 seconds"),
    (["train", "a3c", "--env", "CartPole-v1", "--max-nonfinite-updates", "-1"], "max-nonfinite-updates must be >= 0"),
    (["train", "a3c", "--env", "CartPole-v1", "--config", "/no/such.yaml"], "config file '/no/such.yaml' does not exist"),
    (["train", "a3c", "--env", "CartPole-v1", "--config", "{unknown-key.yaml}"], "unknown key 'learning_rate'"),
    (["train", "a3c", "--env", "CartPole-v1", "--config", "{not-yaml.yaml}"], "not-yaml.yaml' is not valid YAML"),
    (["train", "a3c", "--env", "CartPole-v1", "--config", "{algo-key.yaml}"], "'algo' is given on the command line"),
    (["train", "a3c", "--env", "CartPole-v1", "--resume"], "has no checkpoints/latest.pt to continue from"),
    (["train", "a3c", "--env", "CartPole-v1", "--resume", "--run-dir", "{a3c-run}", "--lr", "0.1"],
     "--resume: --lr 0.1 differs from the run's stored value 0.002 in '"),
    (["train", "--resume", "--run-dir", "{a3c-run}", "--workers", "3"], "--workers 3 differs from the run's stored "
     "value 1 in '"),
    (["train", "--resume", "--run-dir", "{a3c-run}", "--steps", "10"], "--steps 10 is below the run's target of "
     "300000 steps stored in '"),
    (["train", "--resume", "--run-dir", "{a3c-run}", "--overwrite"], "--resume continues the run in --run-dir and "
     "--overwrite would replace it; give one"),
    (["train", "--resume", "now", "--env", "CartPole-v1"], "--resume takes no value or 'auto', got 'now'"),
    (["train", "--resume", "--run-dir", ""], "--resume needs --run-dir DIR, the run folder to continue"),
    (["train", "--env", "CartPole-v1", "--steps", "10"], "ALGO is required to start a run"),
    (["train", "a3c", "--steps", "10"], "--env ENV is required to start a run"),
    (["train", "--resume", "auto"], "ALGO is required to start a run ('"),
    (["train", "n-step-q", "--env", "CartPole-v1", "--resume", "--run-dir", "{a3c-run}"],
     "a3c-run' holds a run of a3c on CartPole-v1, not n-step-q on CartPole-v1"),
    (["train", "a3c", "--env", "CartPole-v1", "--resume", "--run-dir", "{corrupt-run}"],
     "corrupt-run/checkpoints/latest.pt' is not a readable asyncrl checkpoint"),
    (["eval", "/no/such/run"], "no such checkpoint or run folder: '/no/such/run'"),
    (["eval", "/no/such/run", "--episodes", "0"], "--episodes must be >= 1, got 0"),
    (["eval", "{half.pt}"], "half.pt' is not a readable asyncrl checkpoint"),
    (["eval", "{empty.pt}"], "empty.pt' is not a readable asyncrl checkpoint"),
    (["eval", "{foreign.pt}"], "foreign.pt' is not an asyncrl checkpoint (no 'asyncrl-checkpoint' header)"),
    (["eval", "{a3c-run}", "--env", "Pendulum-v1"], "environment 'Pendulum-v1' has the observation space "
     "Box([-1. -1. -8.], [1. 1. 8.], (3,), float32), but the agent in '"),
    (["bench", "a3c", "--env", "CartPole-v1", "--lr", "-1"], "lr must be a finite number > 0, got -1.0"),
    (["bench", "a3c", "--env", "CartPole-v1", "--sync-envs", "0"], "--sync-envs must be >= 1, got 0"),
    (["bench", "dqn", "--env", "CartPole-v1"], "unknown algorithm 'dqn'"),
    (["bench", "one-step-q", "--env", "Pendulum-v1"], "one-step-q is a value-based method and needs Discrete"),
    (["eval", "{a3c-run}", "--video", "{a3c-run}/out.avi"], "out.avi' must end in .mp4 or .gif"),
    (["eval", "{a3c-run}", "--video", "{empty.pt}/out.mp4"], "empty.pt' is not a folder"),
    (["eval", "{a3c-run}", "--episodes", "2", "--video", "out.gif", "--video-episodes", "3"],
     "--video-episodes must be at most --episodes (2), got 3"),
    (["eval", "{a3c-run}", "--video", "out.gif", "--video-episodes", "0"], "--video-episodes must be >= 1, got 0"),
]


def _case_id(case) -> str:
    args = case.values[0] if hasattr(case, "values") else case[0]
    return " ".join(args[:4]) + "…" + (" " + " ".join(args[4:6]) if len(args) > 4 else "")


def _expand(args: list[str], bad_files, work) -> list[str]:
    """{name} -> the bad_files path; a train case without --run-dir gets one under `work`."""
    args = [str(bad_files / a[1:a.index("}")]) + a[a.index("}") + 1:] if a.startswith("{") else a for a in args]
    if args[0] == "train" and "--run-dir" not in args:
        args += ["--run-dir", str(work / "r")]
    return args


def _skipped(case) -> bool:
    return any(m.name == "skipif" and m.args and m.args[0] for m in getattr(case, "marks", ()))


@pytest.fixture(scope="module")
def bad_input_runs(bad_files, tmp_path_factory):
    """Every case of BAD_INPUTS run once as `asyncrl ARGS`, each in its own process and empty
    working folder, forked from one interpreter that has imported asyncrl.cli as `python -m
    asyncrl` does (tests/cli_forks.py): 70 interpreter and torch start-ups cost about 2 s
    each. test_bad_input_runs_as_a_user_runs_it runs some through `python -m asyncrl`."""
    cases, works = [], []
    for i, case in enumerate(BAD_INPUTS):
        work = tmp_path_factory.mktemp(f"bad{i}")
        works.append(work)
        args = case.values[0] if hasattr(case, "values") else case[0]
        if not _skipped(case):
            cases.append({"args": _expand(args, bad_files, work), "cwd": str(work), "watch": str(bad_files),
                          "index": i})
    before = folder_digest(str(bad_files))
    results = run_cli_forked(cases)
    return before, works, {c["index"]: r for c, r in zip(cases, results)}


@pytest.mark.parametrize("case", range(len(BAD_INPUTS)), ids=[_case_id(c) for c in BAD_INPUTS])
def test_bad_input_is_one_clear_line(case, bad_input_runs):
    """Each bad input: exit code 2, one line on stderr naming the problem and the bad value,
    no traceback, no run started (not even its folder made), and no existing file changed."""
    param = BAD_INPUTS[case]
    if _skipped(param):
        pytest.skip(param.marks[0].kwargs.get("reason", ""))
    expected = param.values[1] if hasattr(param, "values") else param[1]
    before, works, runs = bad_input_runs
    p = runs[case]
    assert_refused_in_one_line(p["returncode"], p["stdout"], p["stderr"], expected)
    assert not os.path.exists(works[case] / "r")
    assert p["watched"] == before


#: BAD_INPUTS also run through `python -m asyncrl` itself, by what they must print
ENTRY_POINT_CASES = [i for i, c in enumerate(BAD_INPUTS) if not hasattr(c, "values") and c[1] in (
    "unknown environment 'NoSuchEnv-v0'", "--steps: steps must be int, got 'abc'",
    "lr must be a finite number > 0, got -0.1", "half.pt' is not a readable asyncrl checkpoint")]


@pytest.mark.parametrize("case", ENTRY_POINT_CASES, ids=lambda i: _case_id(BAD_INPUTS[i]))
def test_bad_input_runs_as_a_user_runs_it(case, tmp_path, bad_files):
    """Some of the cases above through `python -m asyncrl` itself (an unknown env, argparse's
    own type error, a Config check, a corrupt checkpoint): the same one line and exit code
    as from the forked runs."""
    args, expected = BAD_INPUTS[case]
    before = folder_digest(str(bad_files))
    p = run_cli(*_expand(args, bad_files, tmp_path), cwd=str(tmp_path))
    assert_refused_in_one_line(p.returncode, p.stdout, p.stderr, expected)
    assert not os.path.exists(tmp_path / "r")
    assert folder_digest(str(bad_files)) == before


@pytest.mark.parametrize("algo", ["one-step-q", "one-step-sarsa", "n-step-q"])
def test_value_based_train_then_eval(algo, tmp_path):
    """Each value-based method trains under hogwild, checkpoints its target network, and evaluates."""
    run_dir = str(tmp_path / "run")
    p = run_cli("train", algo, "--env", "CartPole-v1", "--workers", "2", "--steps", "1500", "--target-update", "200",
                "--run-dir", run_dir, "--eval-episodes", "2", "--quiet")
    assert p.returncode == 0, p.stderr
    agent = asyncrl.load(run_dir)
    assert agent.algo == algo and agent.global_step == 1500
    assert agent.target_params is not None and not agent.target_params.equal(agent.params)
    q = run_cli("eval", run_dir, "--episodes", "2", "--json")
    assert q.returncode == 0 and json.loads(q.stdout)["algo"] == algo, q.stderr
