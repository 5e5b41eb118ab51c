"""The bounds of a Config's numbers (asyncrl.config.limits): every integer that ends up in a
C int64, a NumPy seed or an allocation has a maximum, every float is finite unless inf means
something, NaN never slips through a comparison, and a network too large to build anywhere
is refused from the config alone. One message per bad value, naming it."""
import math

import pytest

from asyncrl.config import Config, coerce_field, load_config_file
from asyncrl.config.limits import INT_BOUNDS, MAX_PARAMS, min_params
from asyncrl.errors import ConfigError

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("changes,needles", [
    # issue 28: the step counter overflowed silently
    ({"steps": 18446744073709551716}, ["steps must be at most 1,000,000,000,000 (1e12), got 18446744073709551716"]),
    ({"steps": 10**20}, ["steps must be at most", "got 100000000000000000000"]),
    ({"target_update": 2**63}, ["target-update must be at most", str(2**63)]),
    ({"epsilon_steps": 2**64}, ["epsilon-steps must be at most", str(2**64)]),
    ({"log_steps": 10**13}, ["log-steps must be at most", str(10**13)]),
    ({"max_nonfinite_updates": 2**70}, ["max-nonfinite-updates must be at most", str(2**70)]),
    # memory: refused from the config alone
    ({"t_max": 1_000_000_000}, ["t-max must be at most 100,000, got 1000000000"]),
    ({"async_update": 10**9}, ["async-update must be at most 100,000"]),
    ({"hidden": [10**20]}, ["hidden must be 1 to 100 layers of at most 1,000,000 units each, got "
                            "[100000000000000000000]"]),
    ({"hidden": [1_000_000, 1_000_000]}, ["hidden [1000000, 1000000] make a network of at least "
                                          "1,000,004,000,001 parameters; at most 1,000,000,000"]),
    ({"hidden": [1] * 101}, ["hidden must be 1 to 100 layers", "101 layers"]),
    ({"lstm_size": 10**9}, ["lstm-size must be at most 100,000, got 1000000000"]),
    ({"net": "lstm", "lstm_size": 50_000}, ["lstm-size 50000 make a network of at least"]),
    # seeds
    ({"seed": -1}, ["seed must be >= 0, got -1"]),
    ({"seed": 2**64}, ["seed must be at most 4,294,967,295 (2**32 - 1, the largest seed NumPy takes), got "
                       "18446744073709551616"]),
    ({"seed": 2**32 - 1, "workers": 2}, ["seed must be at most 4,294,937,294 with workers 2 and "
                                         "max-worker-restarts 10", "got 4294967295"]),
    # NaN and inf, and values that are merely absurd
    ({"epsilon_probs": [NAN, NAN, NAN]}, ["epsilon-probs must be 3 non-negative numbers summing to 1", "nan"]),
    ({"epsilon_probs": [INF, 0.0, 0.0]}, ["epsilon-probs", "inf"]),
    ({"epsilon_finals": [NAN, 0.1, 0.5]}, ["epsilon-finals must be 1 to 100 values in [0, 1]", "nan"]),
    ({"value_coef": INF}, ["value-coef must be a finite number >= 0, got inf"]),
    ({"value_coef": NAN}, ["value-coef must be a finite number >= 0, got nan"]),
    ({"entropy_beta": INF}, ["entropy-beta must be a finite number >= 0, got inf"]),
    ({"max_grad_norm": NAN}, ["max-grad-norm must be a finite number >= 0", "nan"]),
    ({"rms_eps": INF}, ["rms-eps must be a finite number >= 1e-30 (float32 keeps it), got inf"]),
    ({"adam_eps": INF}, ["adam-eps must be a finite number >= 1e-30 (float32 keeps it), got inf"]),
    ({"rms_eps": 1e-300}, ["rms-eps must be a finite number >= 1e-30 (float32 keeps it), got 1e-300"]),
    ({"adam_eps": 1e-45}, ["adam-eps must be a finite number >= 1e-30", "got 1e-45"]),
    ({"rms_alpha": NAN}, ["rms-alpha must be in [0, 1), got nan"]),
    ({"adam_beta2": NAN}, ["adam-beta2 must be in [0, 1), got nan"]),
    ({"sticky_actions": NAN}, ["sticky-actions must be a probability in [0, 1], got nan"]),
    ({"eval_epsilon": NAN}, ["eval-epsilon must be in [0, 1], got nan"]),
    ({"log_interval": INF}, ["log-interval must be a finite number > 0 seconds, got inf"]),
    ({"checkpoint_interval": NAN}, ["checkpoint-interval must be a finite number > 0 seconds, got nan"]),
    ({"stop_return": NAN}, ["stop-return must be a number, or inf (never stop early), got nan"]),
    ({"stop_eval_return": NAN}, ["stop-eval-return must be a number, or inf (never stop early), got nan"]),
    ({"eval_every": -1}, ["eval-every must be >= 0 global steps (0: only at the end), got -1"]),
    ({"eval_every": 2**64}, ["eval-every must be at most 1,000,000,000,000", str(2**64)]),
    ({"worker_timeout": 1e-9}, ["worker-timeout must be >= 0 seconds: 0 (no timeout) or from 1 to 1,000,000, "
                                "got 1e-09"]),
    ({"worker_timeout": INF}, ["worker-timeout must be >= 0 seconds", "got inf"]),
    ({"worker_timeout": NAN}, ["worker-timeout must be >= 0 seconds", "got nan"]),
    ({"eval_episodes": 10**9}, ["eval-episodes must be at most 10,000, got 1000000000"]),
    ({"workers": 100_000}, ["workers must be at most 1,024 (processes, ray actors or sync environments of one "
                            "run), got 100000"]),
    ({"max_worker_restarts": 10**12}, ["max-worker-restarts must be at most 1,000,000"]),
    ({"keep_checkpoints": 10**9}, ["keep-checkpoints must be at most 10,000"]),
    ({"torch_threads": 10**6}, ["torch-threads must be at most 1,024"]),
    ({"frame_stack": 10**6}, ["frame-stack must be at most 1,000"]),
    ({"screen_size": 10**6}, ["screen-size must be at most 4,096"]),
    ({"noop_max": 10**9}, ["noop-max must be at most 100,000"]),
    ({"frame_skip": 10**9}, ["frame-skip must be at most 1,000"]),
])
def test_each_out_of_bounds_value_gives_one_message(changes, needles):
    problems = Config(**{"env": "x", **changes}).validate()
    assert len(problems) == 1, problems
    for needle in needles:
        assert needle in problems[0], (needle, problems[0])
    assert "\n" not in problems[0]


def test_the_bounds_themselves_are_accepted():
    """Each integer field at its lowest and highest accepted value validates (with one worker
    and no restarts, so that the seed rule leaves the most room; the largest seed is then
    2**32 - 1 - 20,000)."""
    for name, (low, high) in INT_BOUNDS.items():
        for value in (low, high - 20_000 if name == "seed" else high):
            cfg = Config(**{"env": "x", "seed": 0, "workers": 1, "max_worker_restarts": 0, name: value})
            assert cfg.validate() == [], (name, value, cfg.validate())


def test_worker_timeout_zero_and_one_second_are_valid():
    assert Config(env="x", worker_timeout=0.0).validate() == []
    assert Config(env="x", worker_timeout=1.0).validate() == []


def test_stop_return_inf_is_valid():
    assert Config(env="x", stop_return=INF).validate() == []
    assert Config(env="x", stop_return=-5.0).validate() == []


def test_values_from_flags_and_yaml_are_bounded(tmp_path):
    """`--steps 18446744073709551716`, `--steps 1e20` and YAML `steps: 1e23` all come to
    validation as integers and are refused there, naming the value."""
    assert coerce_field("steps", "18446744073709551716") == 18446744073709551716
    assert coerce_field("steps", "1e20") == 10**20
    path = tmp_path / "c.yaml"
    path.write_text("steps: 1e23\n")
    cfg = Config.from_dict({"env": "x", **load_config_file(str(path))})
    with pytest.raises(ConfigError, match=r"steps must be at most 1,000,000,000,000 \(1e12\), got 9999999999"):
        cfg.check()


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("lr: 0.001  # r\xe9glage\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config_file(str(path))
    assert str(info.value) == (f"config file {str(path)!r} is not UTF-8 text (byte 0xe9 at offset 14); save it "
                               f"as UTF-8 YAML")


def test_a_utf8_config_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufefflr: 0.002\n".encode("utf-8"))
    assert load_config_file(str(path)) == {"lr": 0.002}


def test_min_params_is_a_lower_bound_of_the_real_network():
    """The config-only bound never passes the parameters of the network actually built
    (one input, one action: the smallest spaces)."""
    import gymnasium as gym
    import numpy as np

    from asyncrl.algos import make_algorithm

    obs, act = gym.spaces.Box(-1, 1, (1,), np.float32), gym.spaces.Discrete(1)
    for cfg in (Config(env="x", hidden=[7, 5]), Config(env="x", net="lstm", lstm_size=6, hidden=[3]),
                Config(env="x", algo="n-step-q", hidden=[4, 4, 4])):
        model = make_algorithm(cfg).build_model(obs, act)
        assert min_params(cfg, is_atari=False) <= sum(p.numel() for p in model.parameters())
    assert MAX_PARAMS == 10**9 and math.isfinite(MAX_PARAMS)
