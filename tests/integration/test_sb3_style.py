"""The Python API as a Stable-Baselines3 user uses it (issue 30): typed keywords, learn()
that continues, predict() on batches (with an LSTM's state), configs as data, env
instances, and the errors such a user meets."""
from __future__ import annotations

import csv
import inspect
import os
import typing

import gymnasium as gym
import numpy as np
import pytest
import yaml

import asyncrl
from asyncrl import A2C, A3C, Config, NStepQ
from asyncrl.config import describe
from asyncrl.config import fields as config_fields
from asyncrl.errors import ConfigError, EnvError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def observations(env_id: str, n: int) -> np.ndarray:
    env = gym.make(env_id)
    try:
        return np.stack([env.reset(seed=i)[0] for i in range(n)])
    finally:
        env.close()


def metrics_rows(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def test_an_sb3_user_trains_twice_predicts_a_batch_saves_loads_and_evaluates(tmp_path):
    """Typed keywords, learn(total_timesteps=...) twice: the global step goes on, and the
    learning rate actually used (metrics.csv, one row per update) anneals over the first call
    (lr0 x (1 - step/200)), then the second call continues the schedule stretched over the
    total (lr0 x (1 - step/400), so its first update uses lr0 x 180/400, not lr0 again), as
    SB3's reset_num_timesteps=False; predict on 8 observations; save, load (same actions),
    evaluate."""
    lr0 = 1e-3
    model = A2C("CartPole-v1", workers=4, t_max=5, lr=lr0, gamma=0.99, seed=3, log_steps=20, eval_episodes=0,
                run_dir=str(tmp_path / "run"))
    model.learn(total_timesteps=200)
    assert model.global_step == 200
    model.learn(total_timesteps=200)
    assert model.global_step == 400
    rows = metrics_rows(tmp_path / "run")
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(20, 401, 20))            # one update (4 envs x 5 steps) per row
    for r in rows:
        step = int(r["step"])
        total = 200 if step <= 200 else 400
        assert float(r["lr"]) == pytest.approx(lr0 * (1 - step / total), rel=1e-5, abs=1e-12)
    assert float(rows[10]["lr"]) == pytest.approx(lr0 * 180 / 400)   # step 220: the 2nd call's first update

    obs = observations("CartPole-v1", 8)
    actions, state = model.predict(obs, deterministic=True)
    assert actions.shape == (8,) and state is None
    assert set(actions.tolist()) <= {0, 1}
    single, _ = model.predict(obs[0])
    assert np.ndim(single) == 0 and int(single) == actions[0] == model.act(obs[0])

    path = model.save(str(tmp_path / "a2c.pt"))
    loaded = asyncrl.load(path)
    assert loaded.global_step == 400
    np.testing.assert_array_equal(loaded.predict(obs)[0], actions)
    result = loaded.evaluate(3)
    assert result["episodes"] == 3 and {"mean_return", "std_return", "min_return", "max_return"} <= set(result)


def test_reset_num_timesteps_restarts_the_schedule_and_keeps_the_step(tmp_path):
    """learn(n, reset_num_timesteps=True): the lr starts again at lr0 and anneals over these n
    steps; the global step (and the logs) keep counting."""
    model = A2C("CartPole-v1", workers=4, t_max=5, lr=1e-3, log_steps=20, eval_episodes=0,
                run_dir=str(tmp_path / "run"))
    model.learn(100)
    model.learn(100, reset_num_timesteps=True)
    assert model.global_step == 200 and model.schedule == (100, 200)
    lr = {int(r["step"]): float(r["lr"]) for r in metrics_rows(tmp_path / "run")}
    assert lr[100] == pytest.approx(0.0, abs=1e-12)
    assert lr[120] == pytest.approx(1e-3 * (1 - 20 / 100))


def test_predict_carries_an_lstm_state_in_and_out():
    """An LSTM agent's predict on 8 observations returns (h, c) of shape (1, 8, H); passing it
    back continues each row's memory (a batch gives each row what it alone would get), and
    episode_start zeroes the state of the rows where it is true."""
    model = A2C("CartPole-v1", workers=2, net="lstm", lstm_size=16, seed=0, eval_episodes=0)
    obs = observations("CartPole-v1", 8).astype(np.float32)
    a1, s1 = model.predict(obs)
    assert a1.shape == (8,) and [x.shape for x in s1] == [(1, 8, 16), (1, 8, 16)]
    a2, s2 = model.predict(obs, state=s1)
    _, fresh = model.predict(obs)
    assert not np.allclose(s2[0], fresh[0])          # the state carried in changed the result
    for i in (0, 5):                                  # row i alone, its own state carried: the same
        _, r1 = model.predict(obs[i:i + 1])
        ai, ri = model.predict(obs[i:i + 1], state=r1)
        np.testing.assert_allclose(ri[0][0, 0], s2[0][0, i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ri[1][0, 0], s2[1][0, i], rtol=1e-5, atol=1e-6)
        assert ai[0] == a2[i]
    starts = np.zeros(8, bool)
    starts[[1, 6]] = True
    _, s3 = model.predict(obs, state=s1, episode_start=starts)
    np.testing.assert_allclose(s3[0][0, starts], fresh[0][0, starts], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s3[0][0, ~starts], s2[0][0, ~starts], rtol=1e-5, atol=1e-6)
    assert s1[0].flags.owndata or s1[0].base is not None   # a copy: the caller's arrays are never written
    before = s1[0].copy()
    model.predict(obs, state=s1)
    np.testing.assert_array_equal(s1[0], before)


def test_predict_continuous_actions_are_clipped_and_batched():
    model = A3C("Pendulum-v1", workers=1, eval_episodes=0)
    obs = observations("Pendulum-v1", 8)
    actions, state = model.predict(obs, deterministic=False)
    assert actions.shape == (8, 1) and state is None
    assert np.all(actions >= -2.0) and np.all(actions <= 2.0)
    assert model.predict(obs[0])[0].shape == (1,)


def test_predict_refuses_an_observation_of_the_wrong_shape():
    model = A3C("CartPole-v1", workers=1, eval_episodes=0)
    with pytest.raises(ValueError, match=r"shape \(3,\) fits neither the observation space's shape \(4,\) nor a "
                                         r"batch of it \(B, 4\)"):
        model.predict(np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        model.predict(np.zeros((2, 3)))


def test_predict_refuses_a_bad_lstm_state_and_episode_start():
    model = A2C("CartPole-v1", workers=2, net="lstm", lstm_size=8, eval_episodes=0)
    obs = observations("CartPole-v1", 4)
    _, state = model.predict(obs)
    with pytest.raises(ValueError, match=r"state h has shape \(1, 4, 8\); 2 observations need \(1, 2, 8\)"):
        model.predict(obs[:2], state=state)
    with pytest.raises(ValueError, match="state must be the \\(h, c\\) pair"):
        model.predict(obs, state=3)
    with pytest.raises(ValueError, match="episode_start has 3 values for 4 observations"):
        model.predict(obs, state=state, episode_start=[True, False, True])


# ---------------------------------------------------------------------- typed hyperparameters
SET_BY_AGENT = {"algo", "env", "workers", "run_dir"}


@pytest.mark.parametrize("cls", [asyncrl.Agent, *asyncrl.api.AGENTS.values()])
def test_every_hyperparameter_is_in_the_signature_and_the_docstring(cls):
    """inspect.signature and help() list every Config field (typed, with its default and help),
    generated from the dataclass: a field added to Config appears with no other change."""
    sig = inspect.signature(cls)
    hints = typing.get_type_hints(Config)
    doc = cls.__init__.__doc__
    for f in config_fields.fields(Config):
        if f.name in SET_BY_AGENT:
            continue
        p = sig.parameters[f.name]
        assert p.kind is p.KEYWORD_ONLY and p.annotation == hints[f.name]
        default = f.default if f.default is not config_fields.dataclasses.MISSING else f.default_factory()
        assert p.default == default
        assert f"    {f.name} ({describe.type_name(hints[f.name])}): {describe.api_words(f.metadata['help'], Config)}" \
            in doc, f.name
    assert list(sig.parameters)[:6] == ["env", "workers", "run_dir", "overwrite", "progress", "preset"]
    assert sig.parameters["lr"].annotation is float and sig.parameters["lr"].default == 7e-4
    assert sig.parameters["optimizer"].annotation == typing.Literal["shared-rmsprop", "rmsprop", "adam", "sgd"]
    assert "lr (float): learning rate" in doc


def test_docstrings_give_the_family_presets_values():
    """A3C's lr: the field's 7e-4, and what preset auto gives CartPole-like and continuous envs."""
    doc = A3C.__init__.__doc__
    assert "lr (float): learning rate (paper: 7e-4, annealed linearly to 0). Default: 0.0007 (preset auto by env " \
           "family: classic 0.002, continuous 0.001)." in doc
    assert "steps (int): T_max" in NStepQ.__init__.__doc__ and "classic 400000" in NStepQ.__init__.__doc__


def test_option_fields_are_literal_types():
    hints = typing.get_type_hints(Config)
    for f in config_fields.fields(Config):
        choices = f.metadata.get("choices")
        if choices:
            assert typing.get_origin(hints[f.name]) is typing.Literal, f.name
            assert typing.get_args(hints[f.name]) == tuple(choices), f.name


@pytest.mark.parametrize("kwargs,expected", [
    ({"learning_rate": 1e-3}, "A3C: unknown hyperparameter 'learning_rate'; did you mean 'lr' "
                              "(Stable-Baselines3's name for it)?"),
    ({"ent_coef": 0.0}, "did you mean 'entropy_beta'"),
    ({"gama": 0.9}, "A3C: unknown hyperparameter 'gama'; did you mean 'gamma'?"),
    ({"entropy-beta": 0.0}, "unknown hyperparameter 'entropy-beta'; did you mean 'entropy_beta'?"),
    ({"zzz": 1, "gama": 2}, "unknown hyperparameter 'gama' (and 1 more); did you mean 'gamma'?"),
])
def test_an_unknown_hyperparameter_gets_the_closest_name(kwargs, expected):
    with pytest.raises(ConfigError) as info:
        A3C("CartPole-v1", **kwargs)
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs,expected", [
    ({"device": "cuda"}, "device 'cuda' needs executor='sync'"),
    ({"vec_env": "inline"}, "vec_env 'inline' applies to executor='sync' only"),
    ({"net": "lstm", "shared_torso": "no"}, "drop shared_torso=False"),
    ({"t_max": 0}, "t_max must be >= 1, got 0"),
    ({"t_max": "five"}, "A3C: t_max must be int, got 'five'"),
])
def test_api_errors_name_keyword_arguments_not_flags(kwargs, expected):
    """The same problems the CLI words as flags (--executor sync) are worded as the API's
    arguments (executor='sync')."""
    with pytest.raises(ConfigError) as info:
        A3C("CartPole-v1", workers=1, **kwargs)
    assert expected in str(info.value)
    assert "--" not in str(info.value)


def test_api_words_leaves_what_is_not_a_field():
    from asyncrl.config.describe import api_words

    assert api_words("use --workers 4 or fewer, or --resume", Config) == "use workers=4 or fewer, or --resume"
    assert api_words("--fused-optimizer on is for optimizer shared-rmsprop", Config) == \
        "fused_optimizer='on' is for optimizer shared-rmsprop"
    assert api_words("pass --overwrite to replace it", Config) == "pass overwrite=True to replace it"
    assert api_words("one-step-q and n-step-q", Config) == "one-step-q and n-step-q"


# ---------------------------------------------------------------------- env instances, vector envs
def test_an_env_instance_trains_with_the_sync_executor_and_one_env():
    env = gym.make("CartPole-v1")
    model = A2C(env, eval_episodes=0)
    assert model.config.workers == 1 and model.config.env == "<CartPoleEnv instance>"
    model.learn(100)
    assert model.global_step == 100
    assert model.evaluate(2)["episodes"] == 2
    env.reset(seed=0)                       # still the caller's, never closed by asyncrl
    env.step(0)


@pytest.mark.parametrize("cls,kwargs,why", [
    (A3C, {}, "executor='hogwild' steps its envs in other processes"),
    (A2C, {"workers": 4}, "workers=4 needs that many envs"),
    (A2C, {"eval_every": 100}, "eval_every evaluates in a background process"),
])
def test_an_env_instance_where_several_processes_need_a_factory_is_refused(cls, kwargs, why):
    with pytest.raises(ConfigError, match=r"an env instance \(CartPoleEnv instance\) is stepped in this process "
                                          r"only, but " + why.replace("(", r"\(") + "; pass a zero-argument factory"):
        cls(gym.make("CartPole-v1"), **kwargs)


def test_a_vector_env_gets_a_clear_error():
    with pytest.raises(EnvError, match=r"env factory 'make_vec' returned a vector env \(SyncVectorEnv of 2 envs\); "
                                       r"asyncrl steps one env per worker"):
        def make_vec():
            return gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
        A2C(make_vec, workers=2)
    with pytest.raises(EnvError, match=r"env a vector env"):
        A2C(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))


# ---------------------------------------------------------------------- configs as data
def test_config_yaml_round_trip_and_dashed_keys(tmp_path):
    cfg = Config.from_yaml(os.path.join(ROOT, "configs", "cartpole-a3c.yaml"))
    assert (cfg.t_max, cfg.lr, cfg.entropy_beta, cfg.shared_torso, cfg.stop_return) == (10, 2e-3, 1e-3, "no", 475.0)
    path = cfg.replace(env="CartPole-v1").to_yaml(str(tmp_path / "c.yaml"))
    assert Config.from_yaml(path) == cfg.replace(env="CartPole-v1")
    with pytest.raises(ConfigError, match="exists; pass overwrite=True"):
        cfg.to_yaml(path)
    assert cfg.to_yaml(path, overwrite=True) == path
    (tmp_path / "bad.yaml").write_text("t-max: 5\nlearning-rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'learning_rate'; did you mean 'lr'"):
        Config.from_yaml(str(tmp_path / "bad.yaml"))


def test_from_config_reads_a_shipped_config_as_the_cli_does(tmp_path):
    """A3C.from_config(path, env=...) gives the values of `asyncrl train --config path`; keyword
    arguments override; another algorithm's config is refused."""
    model = A3C.from_config(os.path.join(ROOT, "configs", "cartpole-a3c.yaml"), env="CartPole-v1", workers=1,
                            steps=1000)
    c = model.config
    assert (c.algo, c.env, c.t_max, c.lr, c.entropy_beta, c.shared_torso, c.steps, c.workers) == \
        ("a3c", "CartPole-v1", 10, 2e-3, 1e-3, "no", 1000, 1)
    assert c.preset == "classic"            # what the file does not name comes from preset auto
    q = NStepQ.from_config(Config(algo="n-step-q", env="CartPole-v1", workers=1, target_update=77))
    assert q.config.target_update == 77
    with pytest.raises(ConfigError, match="the config is a n-step-q config; use asyncrl.NStepQ.from_config"):
        A3C.from_config(Config(algo="n-step-q", env="CartPole-v1"))
    assert type(asyncrl.Agent.from_config(Config(algo="n-step-q", env="CartPole-v1", workers=1))) is NStepQ
    with pytest.raises(ConfigError, match="names no env; pass env="):
        A3C.from_config(os.path.join(ROOT, "configs", "cartpole-a3c.yaml"))


def test_a_run_folder_config_yaml_holds_only_what_applies_and_loads_back(tmp_path):
    """config.yaml of a CartPole A3C run lists no Atari-only or Q-only fields; from_config of
    it (and of an old config.yaml with every field) rebuilds the same configuration."""
    run = tmp_path / "run"
    model = A3C("CartPole-v1", workers=1, eval_episodes=0, run_dir=str(run))
    model.learn(50)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    for key in ("frame_skip", "noop_max", "epsilon_finals", "target_update", "async_update", "lstm_size",
                "adam_beta1", "sgd_momentum", "device", "vec_env", "ray_address"):
        assert key not in saved, key
    for key in ("lr", "t_max", "entropy_beta", "hidden", "rms_eps", "executor", "workers", "seed"):
        assert key in saved, key
    assert (saved["fused_optimizer"], saved["start_method"]) == ("off", "fork")   # the choices behind auto
    again = A3C.from_config(str(run / "config.yaml"), run_dir=None)
    assert again.config.replace(run_dir="", fused_optimizer="auto", start_method="auto") == \
        model.config.replace(run_dir="", steps=50)
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(model.config.to_dict()))        # every field, as before issue 30
    assert A3C.from_config(str(old), run_dir=None).config.replace(run_dir="") == model.config.replace(run_dir="")


@pytest.mark.parametrize("values,applies,not_applies", [
    ({"algo": "a3c", "env": "CartPole-v1"}, ["entropy_beta", "gaussian_mean", "hidden", "t_max"],
     ["frame_skip", "epsilon_finals", "target_update", "async_update", "lstm_size", "device"]),
    ({"algo": "a3c", "env": "ALE/Pong-v5"}, ["frame_skip", "noop_max", "sticky_actions"], ["hidden", "activation"]),
    ({"algo": "one-step-q", "env": "CartPole-v1"}, ["epsilon_finals", "target_update", "async_update"],
     ["t_max", "entropy_beta", "value_coef", "gaussian_mean"]),
    ({"algo": "a2c", "env": "CartPole-v1", "net": "lstm"}, ["lstm_size", "device", "vec_env"], ["start_method"]),
    ({"algo": "a3c", "env": "x", "optimizer": "adam", "executor": "ray"}, ["adam_eps", "ray_address"],
     ["rms_eps", "fused_optimizer", "sgd_momentum"]),
])
def test_which_fields_apply(values, applies, not_applies):
    cfg = Config.from_dict(values)
    assert all(cfg.applies(k) for k in applies), [k for k in applies if not cfg.applies(k)]
    assert not any(cfg.applies(k) for k in not_applies), [k for k in not_applies if cfg.applies(k)]
    with pytest.raises(KeyError):
        cfg.applies("nonsense")


def test_act_takes_one_observation_and_points_a_batch_to_predict():
    model = A3C("CartPole-v1", workers=1, eval_episodes=0)
    obs = observations("CartPole-v1", 4)
    assert model.act(obs[0]) in (0, 1)
    with pytest.raises(ValueError, match=r"act\(\) takes one observation, got a batch of shape \(4, 4\); "
                                         r"predict\(\) takes batches"):
        model.act(obs)
