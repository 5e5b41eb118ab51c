"""Tests for asyncrl.config: validation, from_dict, coercion and YAML loading."""
import pytest

from asyncrl.config import Config, coerce_field, load_config_file
from asyncrl.errors import ConfigError


def test_valid_config_has_no_problems():
    """A config with an env and defaults validates empty, and check() returns it."""
    cfg = Config(env="CartPole-v1")
    assert cfg.validate() == []
    assert cfg.check() is cfg


@pytest.mark.parametrize("changes,needles", [
    ({"gamma": 0.0}, ["gamma", "0.0"]),
    ({"gamma": 1.5}, ["gamma", "1.5"]),
    ({"t_max": 0}, ["t-max", "0"]),
    ({"lr": -1.0}, ["lr", "-1.0"]),
    ({"workers": -1}, ["workers", "-1"]),
    ({"steps": 0}, ["steps", "0"]),
    ({"optimizer": "lbfgs"}, ["optimizer", "'lbfgs'", "shared-rmsprop", "rmsprop", "adam", "sgd"]),
    ({"entropy_beta": -1.0}, ["entropy-beta", "-1.0"]),
    ({"hidden": [0]}, ["hidden", "[0]"]),
    ({"env": ""}, ["env is empty"]),
    ({"algo": "a2c", "executor": "hogwild"}, ["a2c", "sync executor", "use a3c"]),
    ({"executor": "hogwild", "device": "cuda"}, ["device 'cuda' needs --executor sync"]),
    ({"executor": "hogwild", "vec_env": "inline"}, ["vec-env 'inline' applies to --executor sync"]),
    ({"executor": "mpi"}, ["executor 'mpi' is not one of", "hogwild", "sync", "ray"]),
    ({"algo": "a2c", "executor": "ray", "workers": 5, "learners": 2}, ["workers 5 is not a multiple of learners 2"]),
    ({"executor": "ray", "workers": 5, "workers_per_node": 2}, ["workers 5 is not a multiple of workers-per-node 2"]),
    ({"executor": "ray", "device": "cuda"}, ["device 'cuda' needs --executor sync (ray actor-learners"]),
    ({"executor": "ray", "vec_env": "subprocess"}, ["vec-env 'subprocess' applies to --executor sync only (ray"]),
    ({"executor": "ray", "torch_threads": 2}, ["torch-threads applies to --executor sync (each ray"]),
    ({"executor": "hogwild", "ray_address": "auto"}, ["ray-address 'auto' needs --executor ray"]),
    ({"executor": "ray", "ray_address": "headnode"}, ["ray-address 'headnode' is not an address of a Ray "
                                                      "cluster; give 'auto', HOST:PORT"]),
    ({"executor": "ray", "ray_address": "ray://h:99999"}, ["ray-address 'ray://h:99999' is not an address"]),
    ({"log_steps": -1}, ["log-steps", "-1"]),
    ({"lr": float("inf")}, ["lr must be a finite number > 0", "inf"]),
    ({"lr": float("nan")}, ["lr must be a finite number > 0", "nan"]),
    ({"gamma": float("nan")}, ["gamma", "nan"]),
    ({"keep_checkpoints": -1}, ["keep-checkpoints", "-1"]),
    ({"max_worker_restarts": -2}, ["max-worker-restarts", "-2"]),
    ({"worker_timeout": -1.0}, ["worker-timeout", "-1.0"]),
    ({"max_nonfinite_updates": -1}, ["max-nonfinite-updates", "-1"]),
    ({"shared_torso": "maybe"}, ["shared-torso", "'maybe'", "auto, yes, no"]),
    ({"gaussian_mean": "clip"}, ["gaussian-mean", "'clip'", "linear, tanh"]),
    ({"sgd_momentum": 1.0}, ["sgd-momentum must be in [0, 1), got 1.0"]),
    ({"fused_optimizer": "yes"}, ["fused-optimizer", "'yes'", "auto, on, off"]),
    ({"fused_optimizer": "on", "optimizer": "adam"}, ["fused-optimizer on is for optimizer shared-rmsprop "
                                                      "or rmsprop, got optimizer 'adam'"]),
])
def test_each_invalid_value_gives_one_message(changes, needles):
    """Each invalid value yields exactly one message naming the field and the value."""
    problems = Config(**{"env": "x", **changes}).validate()
    assert len(problems) == 1, problems
    for needle in needles:
        assert needle in problems[0], (needle, problems[0])


def test_gamma_one_is_valid():
    """gamma = 1 is inside (0, 1]."""
    assert Config(env="x", gamma=1.0).validate() == []


def test_validate_reports_every_problem():
    """Several invalid values give one message each, in a single call."""
    cfg = Config(env="x", gamma=0.0, t_max=0, lr=-1.0, workers=-1, steps=0, optimizer="lbfgs",
                 entropy_beta=-1.0, hidden=[0])
    assert len(cfg.validate()) == 8


def test_check_raises_first_problem_and_lists_rest():
    """check() raises ConfigError with the first problem and mentions the others."""
    cfg = Config(env="x", t_max=0, lr=-1.0)
    with pytest.raises(ConfigError) as info:
        cfg.check()
    msg = str(info.value)
    assert msg.startswith("t-max must be >= 1, got 0")
    assert "+1 more" in msg and "lr must be a finite number > 0" in msg


def test_from_dict_unknown_key_names_it():
    """An unknown key raises ConfigError naming the key and the source."""
    with pytest.raises(ConfigError, match=r"my.yaml: unknown key 'tmax'"):
        Config.from_dict({"env": "x", "tmax": 5}, source="my.yaml")


def test_from_dict_several_unknown_keys_counts_them():
    """Several unknown keys: the first (sorted) is named and the rest counted."""
    with pytest.raises(ConfigError, match=r"unknown key 'aaa' \(and 1 more\)"):
        Config.from_dict({"zzz": 1, "aaa": 2})


def test_from_dict_coerces_types():
    """Strings and lists from YAML/CLI are converted to the fields' types."""
    cfg = Config.from_dict({"env": "x", "steps": "1e6", "t_max": 20.0, "lr": "0.001",
                            "lr_anneal": "no", "hidden": ["32", 16], "gamma": 1})
    assert cfg.steps == 1_000_000 and isinstance(cfg.steps, int)
    assert cfg.t_max == 20 and isinstance(cfg.t_max, int)
    assert cfg.lr == 0.001
    assert cfg.lr_anneal is False
    assert cfg.hidden == [32, 16]
    assert cfg.gamma == 1.0 and isinstance(cfg.gamma, float)


def test_shared_torso_takes_booleans_and_auto_follows_the_torso():
    """shared_torso: a YAML/API boolean (and a run saved before 'auto' existed) becomes yes/no;
    auto shares the CNN's torso and the LSTM's, and gives an MLP policy and value their own."""
    assert Config.from_dict({"shared_torso": True}).shared_torso == "yes"
    assert Config.from_dict({"shared_torso": False}).shared_torso == "no"
    auto = Config()
    assert auto.shared_torso == "auto" and auto.activation == "tanh"
    assert auto.shares_torso(cnn=True) and not auto.shares_torso(cnn=False)
    assert Config(net="lstm").shares_torso(cnn=False)
    for value, shared in (("yes", True), ("no", False), (True, True), (False, False)):
        assert Config(shared_torso=value).shares_torso(cnn=True) is shared
        assert Config(shared_torso=value).shares_torso(cnn=False) is shared


def test_from_dict_single_hidden_value_becomes_list():
    """A scalar for a list field becomes a one-element list."""
    assert Config.from_dict({"hidden": 8}).hidden == [8]


@pytest.mark.parametrize("key,value,message", [
    ("steps", "abc", "steps must be int"),
    ("steps", 1.5, "steps must be int"),
    ("steps", True, "steps must be int"),
    ("t_max", None, "t-max must be int"),
    ("lr", "fast", "lr must be float"),
    ("lr", False, "lr must be float"),
    ("lr_anneal", "maybe", "lr-anneal must be bool"),
    ("env", 3, "env must be str"),
    ("hidden", ["a"], "hidden must be a list of int"),
])
def test_coercion_errors_name_the_field(key, value, message):
    """A value of the wrong type raises ConfigError naming the field and its type."""
    with pytest.raises(ConfigError, match=message) as info:
        Config.from_dict({key: value}, source="cfg.yaml")
    assert str(info.value).startswith("cfg.yaml: ")
    assert repr(value) in str(info.value)


def test_int_field_rejects_non_integer_string():
    """'1.5' for an int field is rejected like 1.5 is (YAML reads `steps: 1.5e0` as a string)."""
    with pytest.raises(ConfigError, match="steps must be int"):
        coerce_field("steps", "1.5")


def test_int_field_infinite_string_is_config_error():
    """'inf' (or '1e400') for an int field raises ConfigError, not OverflowError."""
    with pytest.raises(ConfigError, match="steps must be int"):
        coerce_field("steps", "1e400")


def test_load_config_file_maps_dashes(tmp_path):
    """`t-max: 10` in YAML becomes t_max, and from_dict accepts the result."""
    path = tmp_path / "c.yaml"
    path.write_text("t-max: 10\nentropy-beta: 0.02\nenv: CartPole-v1\nhidden: [32, 32]\n")
    data = load_config_file(str(path))
    assert data == {"t_max": 10, "entropy_beta": 0.02, "env": "CartPole-v1", "hidden": [32, 32]}
    cfg = Config.from_dict(data)
    assert (cfg.t_max, cfg.entropy_beta, cfg.hidden) == (10, 0.02, [32, 32])


def test_load_config_file_empty_is_empty_dict(tmp_path):
    """An empty file is an empty mapping."""
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config_file(str(path)) == {}


def test_load_config_file_non_mapping(tmp_path):
    """A YAML list is rejected with ConfigError naming the file."""
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping") as info:
        load_config_file(str(path))
    assert str(path) in str(info.value)


def test_load_config_file_missing(tmp_path):
    """A missing file raises ConfigError naming the path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config_file(str(path))
    assert str(path) in str(info.value)


def test_load_config_file_invalid_yaml(tmp_path):
    """Malformed YAML raises ConfigError, not a yaml exception."""
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(str(path))


def test_config_error_is_value_error():
    """ConfigError is catchable as ValueError."""
    assert issubclass(ConfigError, ValueError)


def test_executor_auto_resolves_per_algorithm():
    """executor auto: sync for a2c (the synchronous preset), hogwild for the asynchronous methods."""
    assert Config(env="x", algo="a2c").resolved().executor == "sync"
    for algo in ("a3c", "one-step-q", "one-step-sarsa", "n-step-q"):
        assert Config(env="x", algo=algo).resolved().executor == "hogwild"
    assert Config(env="x", algo="a3c", executor="sync").resolved().executor == "sync"


def test_device_auto_is_cpu_for_hogwild_and_follows_cuda_for_sync():
    """device auto: hogwild always trains on the CPU; sync uses CUDA exactly when it is available."""
    import torch

    assert Config(env="x", algo="a3c").torch_device() == "cpu"
    assert Config(env="x", algo="a2c").torch_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert Config(env="x", algo="a2c", device="cpu").torch_device() == "cpu"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda_is_one_clear_problem():
    """--device cuda on a machine without CUDA is reported before anything starts."""
    problems = Config(env="x", algo="a2c", device="cuda").validate()
    assert problems == ["device 'cuda' was asked for but CUDA is not available (no GPU, or torch built "
                        "without CUDA); use --device cpu or --device auto"]


def test_cores_are_those_this_process_may_run_on(monkeypatch):
    """Defaults sized by the cores follow the CPU affinity (taskset, a batch scheduler's
    allocation), not the machine's count: workers, the Atari preset's 16 "where cores
    allow", and the sync executor's choice of subprocesses (none on one core)."""
    import os
    import time

    import gymnasium as gym

    from asyncrl.envs import EnvFactory
    from asyncrl.vector import choose_vec_env
    from asyncrl.presets import preset_values
    from asyncrl.system import available_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5})
    assert available_cores() == 3
    assert Config(env="CartPole-v1").workers == 3
    assert preset_values("atari", "a3c")["workers"] == 3
    class SlowCartPole(gym.Wrapper):
        def step(self, action):
            time.sleep(0.001)                   # above the 0.2 ms that a subprocess costs
            return super().step(action)

    slow = EnvFactory(lambda: SlowCartPole(gym.make("CartPole-v1")))
    cfg = Config.from_dict({"env": "CartPole-v1", "algo": "a2c", "workers": 4})
    assert choose_vec_env(cfg, slow) == "subprocess"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {7})
    assert available_cores() == 1 and choose_vec_env(cfg, slow) == "inline"
    monkeypatch.delattr(os, "sched_getaffinity")
    assert available_cores() == (os.cpu_count() or 1)


def test_lower_native_threads_lowers_the_thread_pools_and_nothing_else():
    """Run in a fresh process (it cannot be undone): torch's OpenMP pool threads get nice 19;
    the main thread and threads Python started keep their priority."""
    import subprocess
    import sys

    code = """
import os, threading, torch
from asyncrl.system import lower_native_threads
base = os.getpriority(os.PRIO_PROCESS, 0)
torch.set_num_threads(2)
torch.zeros(1 << 17).add_(1.0)
ev = threading.Event()
t = threading.Thread(target=ev.wait); t.start()
n = lower_native_threads()
prio = {int(x): os.getpriority(os.PRIO_PROCESS, int(x)) for x in os.listdir("/proc/self/task")}
ev.set(); t.join()
python = {threading.get_native_id(), t.native_id}
print(n, sorted(p - base for tid, p in prio.items() if tid in python), sorted(p for tid, p in prio.items() if tid not in python))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    lowered, rest = int(out[0]), out[1]
    assert lowered >= 1
    assert rest.strip() == f"[0, 0] {[19] * lowered}"
