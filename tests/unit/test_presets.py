"""Defaults by environment family: `--preset auto` (the default) picks classic, continuous
or paper once the env's spaces are known; explicit values always win."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import asyncrl
from asyncrl.presets import FAMILY_PRESETS, PRESETS, preset_values
from asyncrl.spaces import env_family


def test_the_family_of_a_pair_of_spaces():
    box = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    image = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert env_family(box, gym.spaces.Discrete(2)) == "classic"
    assert env_family(box, gym.spaces.Box(-1.0, 1.0, (1,), np.float32)) == "continuous"
    assert env_family(image, gym.spaces.Discrete(6)) == "images"
    assert set(FAMILY_PRESETS.values()) <= set(PRESETS)


@pytest.mark.parametrize("algo", ["a3c", "a2c", "one-step-q", "one-step-sarsa", "n-step-q"])
def test_every_algorithm_has_classic_values_and_the_paper_preset_is_the_atari_one(algo):
    classic = preset_values("classic", algo)
    assert classic["steps"] > 0 and classic["lr"] > 0
    assert preset_values("paper", algo) == preset_values("atari", algo)
    assert preset_values("none", algo) == {} and preset_values("auto", algo) == {}


def test_no_preset_given_picks_the_family_preset_and_explicit_values_win():
    a3c = asyncrl.A3C("CartPole-v1", workers=2)
    assert a3c.config.preset == "classic"
    assert (a3c.config.t_max, a3c.config.lr, a3c.config.entropy_beta) == (10, 2e-3, 1e-3)
    mine = asyncrl.A3C("CartPole-v1", workers=2, lr=5e-4)
    assert mine.config.lr == 5e-4 and mine.config.t_max == 10
    raw = asyncrl.A3C("CartPole-v1", workers=2, preset="none")
    assert (raw.config.preset, raw.config.t_max, raw.config.lr) == ("none", 5, 7e-4)


def test_a2c_classic_steps_eight_envs_unless_told_otherwise():
    assert asyncrl.A2C("CartPole-v1").config.workers == 8
    assert asyncrl.A2C("CartPole-v1", workers=4).config.workers == 4
    assert asyncrl.A2C("CartPole-v1", preset="none").config.workers == 16


def test_continuous_actions_get_the_paper_mujoco_entropy():
    agent = asyncrl.A3C("Pendulum-v1", workers=2)
    assert agent.config.preset == "continuous" and agent.config.entropy_beta == 1e-4


def test_the_value_based_defaults_anneal_epsilon_within_their_budget():
    for algo in ("one-step-q", "one-step-sarsa", "n-step-q"):
        agent = asyncrl.api.AGENTS[algo]("CartPole-v1", workers=2)
        assert agent.config.preset == "classic"
        assert agent.config.epsilon_steps * 10 <= agent.config.steps


def test_every_default_and_every_preset_value_names_its_source():
    """--help says where each default comes from: every Config field has a source tag that
    SOURCES explains, and so has every value a preset sets, for every algorithm."""
    import dataclasses

    from asyncrl.config import Config
    from asyncrl.presets import ALGOS_OF_PRESETS, paper_values, preset_values
    from asyncrl.sources import SOURCES, default_note, default_source, preset_source

    for f in dataclasses.fields(Config):
        assert default_source(f.name) in SOURCES, f.name
    for preset, algos in (*ALGOS_OF_PRESETS.items(), ("paper", ALGOS_OF_PRESETS["classic"])):
        for algo in algos:
            for name in preset_values(preset, algo):
                assert preset_source(preset, name, algo) in SOURCES, (preset, algo, name)
    assert preset_source("paper", "rms_eps", "a2c") == "baselines" and preset_source("paper", "rms_eps") == "authors"
    assert set(paper_values("a3c")) <= {f.name for f in dataclasses.fields(Config)}
    assert default_note("lr", 7e-4) == ("default 0.0007 [authors]; classic preset: a3c 0.002, a2c 0.005, "
                                        "one-step-q 0.003, one-step-sarsa/n-step-q 0.001 [measured]; "
                                        "continuous preset: a3c/a2c 0.001 [measured]")
    assert default_note("entropy_beta", 0.01).endswith("continuous preset: a3c/a2c 0.0001 [paper]")
    assert default_note("checkpoint_interval", 60.0) == "default 60 [asyncrl]"
    assert default_note("workers", 2, "2 here (the cores)").startswith("default 2 here (the cores) [asyncrl]; "
                                                                       "classic preset: a2c 8 [baselines]")


def test_the_a3c_demo_config_is_the_defaults_with_a_stop_at_solved():
    """configs/cartpole-a3c.yaml (what `make demo` runs) gives CartPole the values that the
    defaults give it, plus stop-return 475: the defaults' learning test covers the demo too.
    (A2C's demo config has a larger budget, and a learning test of its own.)"""
    import os

    from asyncrl.config import load_config_file

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    demo = load_config_file(os.path.join(root, "configs", "cartpole-a3c.yaml"))
    assert demo.pop("stop_return") == 475.0
    for key in ("eval_episodes", "log_interval", "device", "vec_env"):
        demo.pop(key, None)         # how the run is watched and where it runs, not what it learns
    assert demo.pop("shared_torso") is False and asyncrl.A3C("CartPole-v1").config.shared_torso == "auto"
    # (auto: separate torsos for an MLP, as the file says; a shared one for a CNN)
    defaults = asyncrl.A3C("CartPole-v1").config
    assert {k: getattr(defaults, k) for k in demo} == demo
