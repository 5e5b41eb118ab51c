"""Dict observations from the command line, as a user runs it: --obs-keys recorded in the
run's config and used again by eval, and a Dict entry no network fits or a key the env does
not have refused in one line, with nothing written."""
from __future__ import annotations

import json
import os

from cli_forks import folder_digest
from helpers import assert_refused_in_one_line, run_cli_forked


def test_the_cli_trains_on_a_dict_with_obs_keys_and_refuses_a_bad_entry_in_one_line(tmp_path):
    run, cwd = str(tmp_path / "run"), str(tmp_path)
    train = ["train", "a3c", "--env", "toy_envs:VectorDict-v0", "--workers", "1", "--steps", "200",
             "--obs-keys", "state", "--run-dir", run, "--eval-episodes", "1", "--quiet"]
    evaluate = ["eval", run, "--env", "toy_envs:VectorDict-v0", "--episodes", "1", "--json"]
    trained, evaluated = run_cli_forked([{"args": train, "cwd": cwd, "watch": None},
                                         {"args": evaluate, "cwd": cwd, "watch": None}])
    assert trained["returncode"] == 0, trained["stderr"]
    assert "obs_keys:\n- state" in open(os.path.join(run, "config.yaml")).read()
    assert evaluated["returncode"] == 0, evaluated["stderr"]
    assert json.loads(evaluated["stdout"])["episodes"] == 1
    before = folder_digest(cwd)
    bad = [(["train", "a3c", "--env", "toy_envs:DictObs-v0", "--steps", "10"],
            "'toy_envs:DictObs-v0' has a Dict observation space, which no network fits: its entry 'name' is a "
            "Text space"),
           (["train", "a3c", "--env", "toy_envs:VectorDict-v0", "--obs-keys", "camera", "--steps", "10"],
            "--obs-keys: environment 'toy_envs:VectorDict-v0' has no entry 'camera'; its Dict observations "
            "have: flag, state"),
           (["train", "a3c", "--env", "toy_envs:VectorDict-v0", "--obs-keys", "flag", "flag", "--steps", "10"],
            "obs-keys names the entry 'flag' twice"),
           (["train", "a3c", "--env", "CartPole-v1", "--pixels", "gray", "--steps", "10"],
            "environment 'CartPole-v1' has no image observations")]
    results = run_cli_forked([{"args": args, "cwd": cwd, "watch": cwd} for args, _ in bad])
    for (args, said), got in zip(bad, results):
        assert_refused_in_one_line(got["returncode"], got["stdout"], got["stderr"], said)
        assert got["watched"] == before, args
