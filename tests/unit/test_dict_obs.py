"""Dict observations (SB3's MultiInputPolicy convention): the encoding of each entry into
its columns of one row, the torso per entry, --obs-keys, checkpoints of Dict spaces,
predict on dicts, short A3C and A2C runs on image + vector and vector-only Dicts, and
the entries no network fits refused in one line."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import asyncrl
import toy_envs  # noqa: F401  (registers the toy ids)
from asyncrl.config import Config
from asyncrl.errors import ConfigError, EnvError
from asyncrl.nets import build_torso
from asyncrl.nets.multi import DictTorso
from asyncrl.rollout import ObsWriter
from asyncrl.spaces import (check_observation_space, dict_entries, env_family, obs_dim, obs_dtype, space_from_dict,
                            space_to_dict)

IMAGE_VECTOR = gym.spaces.Dict([("state", gym.spaces.Box(-1.0, 1.0, (2,), np.float32)),
                                ("camera", gym.spaces.Box(0, 255, (40, 40, 3), np.uint8)),
                                ("flag", gym.spaces.Discrete(3))])


def test_each_entry_has_its_columns_in_the_dicts_order():
    entries = dict_entries(IMAGE_VECTOR)
    assert [(k, c.start, c.stop) for k, _, c in entries] == [("state", 0, 2), ("camera", 2, 4802),
                                                             ("flag", 4802, 4805)]
    assert obs_dim(IMAGE_VECTOR) == 4805
    assert obs_dtype(IMAGE_VECTOR) == torch.float32        # a vector entry makes the rows float
    images = gym.spaces.Dict({"a": gym.spaces.Box(0, 255, (40, 40), np.uint8)})
    assert obs_dtype(images) == torch.uint8                # bytes only: rows of bytes


def test_the_writer_puts_each_entry_in_its_columns_one_and_a_batch():
    write = ObsWriter(IMAGE_VECTOR)
    camera = np.arange(40 * 40 * 3, dtype=np.uint32).reshape(40, 40, 3) % 256
    obs = {"flag": 2, "camera": camera.astype(np.uint8), "state": np.array([0.5, -0.25], np.float32),
           "ignored": 7}
    row = write.rows(1).numpy()[0]
    write(row, obs)
    assert row[:2].tolist() == [0.5, -0.25]
    assert np.array_equal(row[2:4802], camera.reshape(-1).astype(np.float32))
    assert row[4802:].tolist() == [0.0, 0.0, 1.0]
    rows = write.rows(2).numpy()
    write.batch(rows, {k: np.stack([obs[k], obs[k]]) for k in ("flag", "camera", "state")})
    assert np.array_equal(rows[0], row) and np.array_equal(rows[1], row)


def test_the_torso_is_a_cnn_per_image_and_an_mlp_per_vector_side_by_side():
    cfg = Config(algo="a3c", env="x", hidden=[16])
    torso, feat = build_torso(IMAGE_VECTOR, cfg)
    assert isinstance(torso, DictTorso) and feat == 16 + 256 + 16
    kinds = [type(p).__name__ for p in torso.parts]
    assert kinds == ["Sequential", "AtariCNN", "Sequential"]
    rows = torch.zeros(5, obs_dim(IMAGE_VECTOR))
    assert torso(rows).shape == (5, feat)
    # each part reads its own columns only: changing the camera changes the CNN's features alone
    other = rows.clone()
    other[:, 2:4802] = 200.0
    a, b = torso(rows), torso(other)
    assert torch.equal(a[:, :16], b[:, :16]) and torch.equal(a[:, -16:], b[:, -16:])
    assert not torch.equal(a[:, 16:272], b[:, 16:272])
    with pytest.raises(EnvError, match="net 'cnn' needs image observations"):
        build_torso(gym.spaces.Dict({"v": gym.spaces.Box(-1, 1, (3,))}), Config(algo="a3c", env="x", net="cnn"))
    with pytest.raises(EnvError, match="the Dict entry 'small': image observations"):
        build_torso(gym.spaces.Dict({"small": gym.spaces.Box(0, 255, (20, 20), np.uint8)}), cfg)


def test_a_dict_with_an_image_is_of_the_images_family_and_a_vector_dict_by_its_actions():
    assert env_family(IMAGE_VECTOR, gym.spaces.Discrete(2)) == "images"
    vector = gym.spaces.Dict({"v": gym.spaces.Box(-1, 1, (3,))})
    assert env_family(vector, gym.spaces.Discrete(2)) == "classic"
    assert env_family(vector, gym.spaces.Box(-1, 1, (1,))) == "continuous"


@pytest.mark.parametrize("entry,said", [
    (gym.spaces.Text(8), "its entry 'bad' is a Text space"),
    (gym.spaces.Dict({"x": gym.spaces.Discrete(2)}), "its entry 'bad' is a Dict space"),
    (gym.spaces.Box(0, 1, (2, 2, 2, 2)), "its entry 'bad' is a 4-D Box (2, 2, 2, 2)"),
    (gym.spaces.MultiBinary(3), "its entry 'bad' is a MultiBinary space"),
])
def test_an_entry_no_torso_fits_is_refused_naming_it(entry, said):
    space = gym.spaces.Dict({"ok": gym.spaces.Box(-1, 1, (2,)), "bad": entry})
    with pytest.raises(EnvError) as info:
        check_observation_space(space, "E-v0")
    text = str(info.value)
    assert said in text and "has a Dict observation space, which no network fits" in text
    assert "--obs-keys" in text and "\n" not in text


def test_dict_spaces_go_through_a_checkpoint_description_in_their_order():
    back = space_from_dict(space_to_dict(IMAGE_VECTOR))
    assert list(back.spaces) == ["state", "camera", "flag"]
    assert back == IMAGE_VECTOR


@pytest.mark.parametrize("agent_cls", [asyncrl.A3C, asyncrl.A2C])
@pytest.mark.parametrize("env_id,keys", [("toy_envs:ImageVectorDict-v0", ["camera", "state"]),
                                         ("toy_envs:VectorDict-v0", ["flag", "state"])])
def test_a3c_and_a2c_train_save_load_and_predict_on_dicts(agent_cls, env_id, keys, tmp_path):
    agent = agent_cls(env_id, workers=2, steps=400, t_max=5, progress=False)
    assert sorted(agent.observation_space.spaces) == sorted(keys)
    assert isinstance(agent.model.torso, DictTorso)
    agent.learn()
    assert agent.global_step >= 400
    assert all(torch.isfinite(p).all() for p in agent.model.parameters())
    path = str(tmp_path / "agent.pt")
    agent.save(path)
    back = asyncrl.load(path, env=env_id)
    assert list(back.observation_space.spaces) == list(agent.observation_space.spaces)
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    one, state = back.predict(obs)
    assert isinstance(one, (int, np.integer)) or np.ndim(one) == 0
    batch = {k: np.stack([v, v, v]) for k, v in obs.items()}
    actions, _ = back.predict(batch)
    assert actions.shape == (3,) and (actions == agent.predict(batch)[0]).all()
    assert back.act(obs) == agent.act(obs)
    result = back.evaluate(episodes=2)
    assert result["episodes"] == 2 and result["mean_length"] == 8.0


def test_an_lstm_and_the_value_based_methods_take_dicts_too():
    lstm = asyncrl.A2C("toy_envs:ImageVectorDict-v0", workers=2, steps=100, net="lstm", lstm_size=16,
                       progress=False)
    lstm.learn()
    obs, _ = gym.make("toy_envs:ImageVectorDict-v0").reset(seed=0)
    actions, state = lstm.predict({k: np.stack([v, v]) for k, v in obs.items()})
    assert actions.shape == (2,) and state[0].shape == (1, 2, 16)
    q = asyncrl.NStepQ("toy_envs:VectorDict-v0", workers=1, steps=100, progress=False)
    q.learn()
    assert q.global_step >= 100


def test_obs_keys_keeps_the_entries_named_and_refuses_others():
    agent = asyncrl.A3C("toy_envs:VectorDict-v0", workers=1, obs_keys=["state"], progress=False)
    assert list(agent.observation_space.spaces) == ["state"]
    obs, _ = gym.make("toy_envs:VectorDict-v0").reset(seed=0)
    assert agent.act(obs) in (0, 1)              # entries the agent does not read are ignored
    with pytest.raises(EnvError, match="--obs-keys: environment 'toy_envs:VectorDict-v0' has no entry 'nope'; "
                                       "its Dict observations have: flag, state"):
        asyncrl.A3C("toy_envs:VectorDict-v0", workers=1, obs_keys=["nope"])
    with pytest.raises(EnvError, match="--obs-keys picks entries of Dict observations; environment "
                                       "'CartPole-v1' has Box observations"):
        asyncrl.A3C("CartPole-v1", workers=1, obs_keys=["state"])
    with pytest.raises(ConfigError, match="obs.keys names the entry 'state' twice"):
        asyncrl.A3C("toy_envs:VectorDict-v0", workers=1, obs_keys=["state", "state"])


def test_predict_says_what_is_wrong_with_a_dict_observation():
    agent = asyncrl.A3C("toy_envs:VectorDict-v0", workers=1, progress=False)
    with pytest.raises(ValueError, match="the observation has no entry 'flag'"):
        agent.predict({"state": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="the entries disagree on the batch"):
        agent.predict({"state": np.zeros((2, 2), np.float32), "flag": np.zeros(3, np.int64)})
    with pytest.raises(ValueError, match="is a Dict .*got ndarray, not a dict"):
        agent.predict(np.zeros(2, np.float32))


def test_export_refuses_a_dict_agent_in_one_line(tmp_path):
    from asyncrl.export import export_policy

    agent = asyncrl.A3C("toy_envs:VectorDict-v0", workers=1, progress=False)
    with pytest.raises(ConfigError, match=r"Dict observations \(entries flag, state\), which export does not take"):
        export_policy(agent, str(tmp_path / "p.pt"))
