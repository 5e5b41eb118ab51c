"""Atari support (asyncrl/atari.py and what it touches), on real ale-py games.

Reference values are built independently of the code under test where possible: the
max-pooled frame from the raw ALE game's grayscale screens (as Gymnasium's
AtariPreprocessing defines it: the max of the last two frames of the action repeat,
cv2.resize INTER_AREA to 84x84), emulator frame numbers (ale.getEpisodeFrameNumber())
for no-op starts and FIRE, and every raw reward of the emulator (each ALE act(), spied
on) for the scores that collectors report. make_atari (AtariPreprocessed, which steps the
ALE directly) is also checked step for step against make_atari_reference (Gymnasium's
wrapper chain). Games are played with uniformly random actions from fixed seeds; a random
Breakout game is ~250 agent steps.
"""
from __future__ import annotations

import copy
import os
from unittest import mock

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("ale_py")
cv2 = pytest.importorskip("cv2")

from ale_py.env import AtariEnv  # noqa: E402
from asyncrl.algos import make_algorithm  # noqa: E402
from asyncrl.api import AGENTS  # noqa: E402
from asyncrl.atari import (REFERENCE_SCORES, AtariOptions, AtariPreprocessed, FireOnReset,  # noqa: E402
                           LifeLossTerminal, register, game_of, human_normalized, is_atari_id,
                           make_atari, make_atari_reference)
from asyncrl.config import Config, load_config_file  # noqa: E402
from asyncrl.envs import EnvFactory  # noqa: E402
from asyncrl.errors import ConfigError, EnvError  # noqa: E402
from asyncrl.vector import make_vector_env  # noqa: E402
from asyncrl.vector.atari import make_ale_vector_env  # noqa: E402
from asyncrl.learner import make_learner  # noqa: E402
from asyncrl.nets import AtariCNN, build_torso  # noqa: E402
from asyncrl.optim import build_optimizer  # noqa: E402
from asyncrl.rollout import EpisodeSegmentCollector, Rollout, VectorSegmentCollector  # noqa: E402
from asyncrl.spaces import is_image_space, obs_dtype  # noqa: E402

register()

PONG, BREAKOUT = "ALE/Pong-v5", "ALE/Breakout-v5"
OBS_SHAPE = (4, 84, 84)
D = 4 * 84 * 84                       # a flat observation row
NO_NOOPS = AtariOptions(noop_max=0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The CNN's small batches run on one thread, as a hogwild worker runs them (with two
    threads on a busy 2-core machine a 5-step gradient took 135 ms instead of 4 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def wrappers(env: gym.Env) -> list[type]:
    """The wrapper classes of `env`, outermost first."""
    out = []
    while isinstance(env, gym.Wrapper):
        out.append(type(env))
        env = env.env
    return out


class _ALESpy:
    """Delegates to an ALEInterface, recording every reward act() returns (one per frame)."""

    def __init__(self, ale, games: list[list[float]]):
        self._ale, self._games = ale, games

    def act(self, *args):
        r = self._ale.act(*args)
        self._games[-1].append(float(r))
        return r

    def __getattr__(self, name):
        return getattr(self._ale, name)


def spy_raw_rewards(env: gym.Env) -> list[list[float]]:
    """Record every reward the ALE game itself pays (each emulator frame: steps, no-ops,
    FIRE), one list per game (a new list at each reset of the ALE game itself).

    make_atari (AtariPreprocessed) drives the ALE interface directly: its `ale` is replaced
    by a recording proxy, and its Gymnasium AtariEnv's reset is shadowed. The reference
    chain (make_atari_reference): the unwrapped AtariEnv's step and reset are shadowed."""
    games: list[list[float]] = []
    if isinstance(env, AtariPreprocessed):
        base = env.base
        env.ale = _ALESpy(env.ale, games)
    else:
        base = env.unwrapped
        assert isinstance(base, AtariEnv), type(base)
        step = base.step

        def spied_step(action):
            out = step(action)
            games[-1].append(float(out[1]))
            return out
        base.step = spied_step
    reset = base.reset

    def spied_reset(**kwargs):
        games.append([])
        return reset(**kwargs)
    base.reset = spied_reset
    return games


#: the two builds of the same preprocessing: make_atari (AtariPreprocessed, on the ALE's own
#: interface) and make_atari_reference (Gymnasium's AtariPreprocessing + FrameStack chain).
#: Both are checked against hand-built references where cheap; the rest of make_atari's
#: tests hold for the reference through test_make_atari_equals_the_reference_chain_*.
BUILDS = [pytest.param(make_atari, id="make_atari"), pytest.param(make_atari_reference, id="reference")]


def random_policy(n_actions: int, seed: int, batch: int = 1):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(n_actions, size=batch).astype(np.int64)


# =========================================================================== preprocessing
@pytest.mark.parametrize("env_id", [PONG, BREAKOUT])
def test_observations_are_four_stacked_84x84_gray_bytes(env_id):
    """uint8 [4, 84, 84] observations from reset and step, and the declared space says so."""
    env = make_atari(env_id, AtariOptions())
    assert env.observation_space == gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8)
    obs, _ = env.reset(seed=0)
    assert obs.shape == OBS_SHAPE and obs.dtype == np.uint8
    obs, *_ = env.step(0)
    assert obs.shape == OBS_SHAPE and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert obs.max() > 0                       # a picture, not a blank buffer
    env.close()


def test_frame_stack_is_oldest_first_newest_last():
    """After a reset the stack is the first frame 4 times; after each step the frames move
    one slot towards the front: new[:-1] == old[1:], the new frame last."""
    env = make_atari(BREAKOUT, NO_NOOPS)
    old, _ = env.reset(seed=0)
    assert all(np.array_equal(old[i], old[3]) for i in range(3))
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(20):
        new, *_ = env.step(int(rng.integers(4)))
        np.testing.assert_array_equal(new[:-1], old[1:])
        changed += not np.array_equal(new[-1], old[-1])
        old = new
    assert changed > 10                        # the newest slot really is new each step
    env.close()


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("env_id", [PONG, BREAKOUT])
def test_newest_frame_is_max_of_last_two_raw_frames_resized(env_id, build):
    """The newest frame equals cv2.resize(max(frame 3, frame 4), (84, 84), INTER_AREA) of
    the raw game (frameskip 1, no sticky actions, grayscale screens) given the same actions,
    FIRE first (FireOnReset is one agent step: 4 frames). The max matters: it differs from
    the last frame alone on most steps (the ball moves)."""
    env = build(env_id, NO_NOOPS)
    raw = gym.make(env_id, frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    obs, _ = env.reset(seed=5)
    raw.reset(seed=5)

    def reference(action: int) -> tuple[np.ndarray, np.ndarray]:
        frames = [raw.step(action)[0] for _ in range(4)]
        pooled = np.maximum(frames[-2], frames[-1])
        size = (84, 84)
        return (cv2.resize(pooled, size, interpolation=cv2.INTER_AREA),
                cv2.resize(frames[-1], size, interpolation=cv2.INTER_AREA))

    fire = env.unwrapped.get_action_meanings().index("FIRE")
    np.testing.assert_array_equal(obs[-1], reference(fire)[0])
    rng = np.random.default_rng(1)
    pooled_differs = 0
    for _ in range(60):
        a = int(rng.integers(env.action_space.n))
        obs, _, term, trunc, _ = env.step(a)
        want, last_only = reference(a)
        np.testing.assert_array_equal(obs[-1], want)
        pooled_differs += not np.array_equal(want, last_only)
        assert not (term or trunc)
    assert pooled_differs > 30
    env.close()
    raw.close()


def test_noop_starts_vary_with_the_seed_and_noop_max_0_has_none():
    """noop_max=30: each reset takes 1..30 no-op frames (then FIRE, 4 frames), so the episode
    frame number after reset is in [5, 34] and differs between seeds, as do first observations
    (Breakout: the ball moves during no-ops). noop_max=0: exactly the FIRE step's 4 frames
    and the same first observation for every seed."""
    for noop_max in (30, 0):
        env = make_atari(BREAKOUT, AtariOptions(noop_max=noop_max))
        frames, firsts = [], []
        for seed in range(4):
            obs, _ = env.reset(seed=seed)
            frames.append(env.unwrapped.ale.getEpisodeFrameNumber())
            firsts.append(obs)
        env.close()
        same_obs = [np.array_equal(firsts[0], o) for o in firsts]
        if noop_max:
            assert all(5 <= f <= 34 for f in frames) and len(set(frames)) > 1, frames
            assert not all(same_obs)
        else:
            assert frames == [4] * 4
            assert all(same_obs)


FIRE_GAMES = [(PONG, True), (BREAKOUT, True), ("ALE/MsPacman-v5", False)]


@pytest.mark.parametrize("env_id,fires", FIRE_GAMES)
def test_reference_chain_fires_on_reset_in_games_that_have_fire(env_id, fires):
    """make_atari_reference is FrameStack -> FireOnReset -> [LifeLossTerminal] ->
    AtariPreprocessing for games with a FIRE action (Pong, Breakout), without FireOnReset
    for one that has none (Ms. Pac-Man)."""
    for life_loss in (False, True):
        env = make_atari_reference(env_id, AtariOptions(life_loss_terminal=life_loss))
        chain = wrappers(env)
        want = [gym.wrappers.FrameStackObservation] + [FireOnReset] * fires + [LifeLossTerminal] * life_loss \
            + [gym.wrappers.AtariPreprocessing]
        assert chain[:len(want)] == want
        if fires:
            assert env.get_wrapper_attr("fire") == env.unwrapped.get_action_meanings().index("FIRE") == 1
        env.close()


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("env_id,fires", FIRE_GAMES)
def test_reset_takes_one_fire_step_in_games_that_have_fire(env_id, fires, build):
    """With noop_max=0 a reset leaves the game at episode frame 4 (one FIRE agent step of 4
    frames) in Pong and Breakout, at frame 0 in Ms. Pac-Man (no FIRE)."""
    env = build(env_id, NO_NOOPS)
    env.reset(seed=0)
    assert env.unwrapped.ale.getEpisodeFrameNumber() == (4 if fires else 0)
    env.close()


def test_fire_on_reset_launches_the_ball():
    """Breakout waits for FIRE: doing nothing after the reset loses a life (the ball was
    launched), doing nothing after a reset without FIRE (Gymnasium's chain alone) loses none."""
    env = make_atari(BREAKOUT, NO_NOOPS)
    bare = gym.wrappers.FrameStackObservation(gym.wrappers.AtariPreprocessing(
        gym.make(BREAKOUT, frameskip=1, repeat_action_probability=0.0), noop_max=0), 4)
    for e, loses in ((env, True), (bare, False)):
        e.reset(seed=0)
        for _ in range(150):
            e.step(0)
        assert (e.unwrapped.ale.lives() < 5) == loses
        e.close()


@pytest.mark.parametrize("p", [0.0, 0.25])
def test_sticky_actions_reach_the_emulator(p):
    """sticky_actions is ALE's repeat_action_probability (the id's own 0.25 is replaced)."""
    env = make_atari(PONG, AtariOptions(sticky_actions=p))
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(p)
    env.close()


def _play_both(env_id: str, opts: AtariOptions, steps: int, seed: int) -> dict:
    """make_atari and make_atari_reference fed the same random actions from the same seed,
    each reset where an episode ends (a lost life too, with life_loss_terminal); every
    observation, reward and flag compared. Returns counts of what happened."""
    fast, ref = make_atari(env_id, opts), make_atari_reference(env_id, opts)
    assert fast.observation_space == ref.observation_space and fast.action_space == ref.action_space
    o1, _ = fast.reset(seed=seed)
    o2, _ = ref.reset(seed=seed)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(seed)
    seen = {"steps": 0, "reward": 0.0, "life_loss": 0, "game_over": 0}
    for _ in range(steps):
        a = int(rng.integers(fast.action_space.n))
        o1, r1, te1, tr1, i1 = fast.step(a)
        o2, r2, te2, tr2, i2 = ref.step(a)
        np.testing.assert_array_equal(o1, o2)
        assert (r1, te1, tr1, i1.get("life_loss")) == (r2, te2, tr2, i2.get("life_loss"))
        seen["steps"] += 1
        seen["reward"] += abs(r1)
        if te1 or tr1:
            seen["life_loss" if i1.get("life_loss") else "game_over"] += 1
            o1, _ = fast.reset()
            o2, _ = ref.reset()
            np.testing.assert_array_equal(o1, o2)
            assert fast.unwrapped.ale.getEpisodeFrameNumber() == ref.unwrapped.ale.getEpisodeFrameNumber()
    fast.close()
    ref.close()
    return seen


@pytest.mark.parametrize("life_loss", [False, True])
def test_make_atari_equals_the_reference_chain_breakout(life_loss):
    """AtariPreprocessed (make_atari) returns exactly the reference chain's observations,
    rewards, terminated/truncated and life_loss flags, through no-op starts (noop_max 30,
    different counts each game), FIRE resets, lost lives and game overs: 700 random steps
    of Breakout cover more than two games."""
    seen = _play_both(BREAKOUT, AtariOptions(life_loss_terminal=life_loss), 700, seed=1)
    assert seen["game_over"] >= 2 and seen["reward"] > 0
    assert (seen["life_loss"] >= 8) == life_loss


def test_make_atari_equals_the_reference_chain_pong_with_sticky_actions():
    """The same in Pong with sticky actions 0.25 (the ALE's own randomness, seeded alike)
    and other frame_skip / frame_stack / screen_size values."""
    opts = AtariOptions(noop_max=10, frame_skip=3, frame_stack=2, screen_size=64, sticky_actions=0.25)
    seen = _play_both(PONG, opts, 400, seed=2)
    assert seen["reward"] > 0


def test_make_atari_observations_are_copies():
    """An observation kept by the caller is not changed by later steps."""
    env = make_atari(PONG, NO_NOOPS)
    first, _ = env.reset(seed=0)
    kept = first.copy()
    for _ in range(10):
        env.step(2)
    np.testing.assert_array_equal(first, kept)
    env.close()


# =========================================================================== lost lives
@pytest.mark.parametrize("build", BUILDS)
def test_life_loss_terminal_ends_the_learning_episode_not_the_game(build):
    """Breakout with life_loss_terminal: the step that loses a life is terminated with
    info['life_loss']; the next reset() goes on with the same game (one no-op step and the
    FIRE step: 8 more frames; lives one fewer); the last life's end is terminated without
    life_loss, and only then does reset() start a new game (5 lives, frame 4)."""
    env = build(BREAKOUT, AtariOptions(noop_max=0, life_loss_terminal=True))
    ale = env.unwrapped.ale
    env.reset(seed=0)
    assert ale.lives() == 5
    rng = np.random.default_rng(0)
    losses = 0
    for _ in range(5000):
        _, _, term, trunc, info = env.step(int(rng.integers(4)))
        assert not trunc
        if not term:
            assert "life_loss" not in info
            continue
        if not info.get("life_loss"):
            break                                       # the game is over
        losses += 1
        lives, frame = ale.lives(), ale.getEpisodeFrameNumber()
        assert lives == 5 - losses and not ale.game_over()
        env.reset()
        assert ale.lives() == lives                     # same game, same lives
        assert ale.getEpisodeFrameNumber() == frame + 2 * 4
    assert losses == 4
    assert ale.lives() == 0 and ale.game_over()
    env.reset()
    assert ale.lives() == 5 and ale.getEpisodeFrameNumber() == 4
    env.close()


def test_without_life_loss_terminal_only_the_game_over_terminates():
    """By default a lost life is just a step: the first terminated step is the game over."""
    env = make_atari(BREAKOUT, AtariOptions(noop_max=0))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    while True:
        _, _, term, trunc, info = env.step(int(rng.integers(4)))
        if term or trunc:
            break
    assert term and "life_loss" not in info and env.unwrapped.ale.lives() == 0
    env.close()


def test_episode_collector_reports_one_episode_per_game_with_its_raw_score():
    """EpisodeSegmentCollector over a life-loss-terminal Breakout, random actions: the 4 lost
    lives end learning episodes (terminated segments) but report nothing; the game over
    reports one episode whose return is the sum of every raw reward the emulator paid in
    the game and whose length is all the agent steps of the game."""
    env = make_atari(BREAKOUT, AtariOptions(life_loss_terminal=True))
    games = spy_raw_rewards(env)
    col = EpisodeSegmentCollector(env, 5, seed=3)
    policy = random_policy(4, 3)                # this game scores 2
    finished, terminated, steps, learned = [], 0, 0, 0.0
    while not finished:
        ro, done = col.collect(policy, 5)
        assert ro.obs.dtype == torch.uint8 and ro.obs.shape[-1] == D
        terminated += int(ro.terminated.sum())
        steps += ro.length
        learned += float(ro.rewards.sum())
        if done is not None:
            finished.append(done)
    assert terminated == 5                      # 4 lives lost + the game over
    assert len(games) == 1                      # one game was played
    assert finished == [(sum(games[0]), steps)]
    assert sum(games[0]) == learned > 0


def test_vector_collector_reports_one_episode_per_game_with_its_raw_score():
    """The same through VectorSegmentCollector over a SyncVectorEnv (SAME_STEP autoreset,
    the sync executor's 'inline' vec env) of 2 such games: per environment, the first
    reported episode comes at its 5th terminated step, with the whole game's raw score and
    agent steps."""
    cfg = Config.from_dict({"env": BREAKOUT, "life_loss_terminal": True})
    factory = EnvFactory(BREAKOUT).configured(cfg)
    venv = make_vector_env(factory, 2, "inline")
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    games = [spy_raw_rewards(e) for e in venv.envs]
    col = VectorSegmentCollector(venv, 5, seed=0)
    policy = random_policy(4, 0, batch=2)
    reported: dict[int, list] = {0: [], 1: []}
    terms = np.zeros(2, np.int64)
    steps = 0
    while not (reported[0] and reported[1]):
        ro, finished = col.collect(policy)
        for t in range(ro.length):
            for b in range(2):
                if ro.terminated[t, b]:
                    terms[b] += 1
                    if not reported[b]:
                        assert terms[b] <= 5
            for (tt, b, ret, length) in finished:
                if tt == t and not reported[b]:
                    assert terms[b] == 5, (b, terms)
                    reported[b].append((ret, length, steps + t + 1))
        steps += ro.length
    venv.close()
    for b in range(2):
        ret, length, at = reported[b][0]
        assert ret == sum(games[b][0]) and length == at


# =========================================================================== reward clipping
def test_clips_rewards_auto_is_for_atari_games():
    """clip_rewards 'auto': yes for ale-py ids, no for others; 'yes'/'no' force it."""
    assert Config.from_dict({"env": PONG}).clips_rewards is True
    assert Config.from_dict({"env": "PongNoFrameskip-v4"}).clips_rewards is True
    assert Config.from_dict({"env": "CartPole-v1"}).clips_rewards is False
    assert Config.from_dict({"env": "CartPole-v1", "clip_rewards": "yes"}).clips_rewards is True
    assert Config.from_dict({"env": PONG, "clip_rewards": "no"}).clips_rewards is False
    assert Config.from_dict({"env": PONG, "clip_rewards": True}).clip_rewards == "yes"   # YAML's yes


def _learner(agent):
    """A hogwild worker's learner on a copy of the agent's parameters (theta' pulled from them)."""
    cfg = agent.config
    learner = make_learner(cfg, agent.observation_space, agent.action_space, agent.params.clone(), None,
                           build_optimizer(cfg, agent.params.numel()), (0, 100), 0, local_copy=True)
    learner.pull()
    return learner


def _rollout(rewards: list[float]) -> Rollout:
    T = len(rewards)
    g = torch.Generator().manual_seed(0)
    return Rollout(torch.randint(0, 256, (T + 1, 1, D), dtype=torch.uint8, generator=g),
                   torch.tensor([[a % 6] for a in range(T)]), torch.tensor(rewards).view(T, 1),
                   torch.zeros(T, 1, dtype=torch.bool), torch.zeros(T, 1, dtype=torch.bool))


def test_learner_clips_rewards_before_the_loss():
    """With clipping, Learner.gradients clamps the rollout's rewards to [-1, 1] in place and
    its gradient is the unclipping learner's gradient on the clamped rewards (and not the one
    on the raw rewards); without clipping the rewards are untouched."""
    raw = [4.0, -7.0, 0.5, 1.0, -0.2]
    clipped = [1.0, -1.0, 0.5, 1.0, -0.2]
    yes = _learner(AGENTS["a3c"](PONG, workers=1, eval_episodes=0, clip_rewards="yes"))
    no = _learner(AGENTS["a3c"](PONG, workers=1, eval_episodes=0, clip_rewards="no"))
    assert yes.clip_rewards and not no.clip_rewards
    ro = _rollout(raw)
    yes.gradients(ro)
    assert ro.rewards.view(-1).tolist() == pytest.approx(clipped)
    ro_raw = _rollout(raw)
    no.gradients(ro_raw)
    assert ro_raw.rewards.view(-1).tolist() == pytest.approx(raw)
    g_raw = no.grad.clone()
    no.gradients(_rollout(clipped))
    assert torch.equal(yes.grad, no.grad)
    assert not torch.allclose(g_raw, no.grad)


def test_logged_score_stays_raw_while_the_learner_sees_clipped_rewards():
    """Space Invaders pays 5..30 a kill. A worker's collector + learner (clipping auto: on)
    over a whole random game: every rollout's rewards reach the loss clamped to [-1, 1], while
    the reported episode return is the game's raw score (the emulator's rewards), larger than
    what the learner summed."""
    env_id = "ALE/SpaceInvaders-v5"
    agent = AGENTS["a3c"](env_id, workers=1, eval_episodes=0)
    learner = _learner(agent)
    assert learner.clip_rewards
    env = agent.env_factory()
    games = spy_raw_rewards(env)
    col = EpisodeSegmentCollector(env, 5, seed=0)
    policy = random_policy(6, 0)
    raw_sum = clipped_sum = 0.0
    big = 0
    finished = None
    while finished is None:
        ro, finished = col.collect(policy, 5)
        raw = ro.rewards.clone()
        learner.gradients(ro)
        assert torch.equal(ro.rewards, raw.clamp(-1, 1))
        raw_sum += float(raw.sum())
        clipped_sum += float(ro.rewards.sum())
        big += int((raw > 1).sum())
    assert big > 0
    assert finished[0] == sum(games[0]) == raw_sum
    assert finished[0] > clipped_sum == big     # every reward here is 0 or >= 5


# =========================================================================== the CNN
def test_cnn_layer_shapes():
    """Conv 16 8x8 stride 4: 84 -> 20; conv 32 4x4 stride 2: 20 -> 9; fc 32*9*9 = 2592 -> 256."""
    net = AtariCNN(OBS_SHAPE, 1 / 255)
    assert (net.conv1.in_channels, net.conv1.out_channels, net.conv1.kernel_size, net.conv1.stride) == \
        (4, 16, (8, 8), (4, 4))
    assert (net.conv2.in_channels, net.conv2.out_channels, net.conv2.kernel_size, net.conv2.stride) == \
        (16, 32, (4, 4), (2, 2))
    assert (net.fc.in_features, net.fc.out_features) == (2592, 256)
    x = torch.randint(0, 256, (3, D), dtype=torch.uint8)
    with torch.no_grad():
        h1 = torch.relu(net.conv1(x.view(3, *OBS_SHAPE).float() / 255))
        assert h1.shape == (3, 16, 20, 20)
        assert net.conv2(h1).shape == (3, 32, 9, 9)
        out = net(x)
    assert out.shape == (3, 256) and out.dtype == torch.float32 and (out >= 0).all()


@pytest.mark.parametrize("B", [1, 6])
def test_cnn_equals_the_plain_layer_stack_forward_and_backward(B):
    """The CNN's fast paths (functional calls, in-place ReLUs, the 1/255 folded into conv1,
    channels-last learner batches) compute what nn.Sequential(conv1, ReLU, conv2, ReLU,
    flatten, fc, ReLU) computes on x / 255, outputs and gradients, in grad mode and without."""
    torch.manual_seed(3)
    net = AtariCNN(OBS_SHAPE, 1 / 255)
    ref = copy.deepcopy(net)
    stack = torch.nn.Sequential(ref.conv1, torch.nn.ReLU(), ref.conv2, torch.nn.ReLU(), torch.nn.Flatten(),
                                ref.fc, torch.nn.ReLU())
    x = torch.randint(0, 256, (B, D), dtype=torch.uint8)
    w = torch.randn(B, 256)
    out = net(x)
    (out * w).sum().backward()
    expected = stack(x.view(B, *OBS_SHAPE).float() / 255)
    (expected * w).sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def _pong_spaces():
    env = make_atari(PONG, AtariOptions())
    spaces = env.observation_space, env.action_space
    env.close()
    return spaces


def _model(algo: str, **kw):
    obs_space, act_space = _pong_spaces()
    cfg = Config.from_dict({"algo": algo, "env": PONG, **kw})
    return make_algorithm(cfg).build_model(obs_space, act_space)


def test_parameter_counts_on_pong():
    """Hand count: conv1 4*16*64+16 = 4,112; conv2 16*32*16+32 = 8,224; fc 2592*256+256 =
    663,808; policy 256*6+6 = 1,542; value 257; Q head 1,542."""
    torso = 4112 + 8224 + 663808
    ac = _model("a3c")
    assert sum(p.numel() for p in ac.parameters()) == torso + 1542 + 257 == 677943
    q = _model("one-step-q")
    assert sum(p.numel() for p in q.parameters()) == torso + 1542


def test_actor_critic_and_q_outputs_on_pong():
    """A3C/A2C: logits [N, 6] and value [N]; Q networks: [N, 6]; from uint8 rows."""
    x = torch.randint(0, 256, (5, D), dtype=torch.uint8)
    with torch.no_grad():
        for algo in ("a3c", "a2c"):
            logits, value = _model(algo)(x)
            assert logits.shape == (5, 6) and value.shape == (5,)
        for algo in ("one-step-q", "one-step-sarsa", "n-step-q"):
            assert _model(algo)(x).shape == (5, 6)


def test_uint8_input_is_scaled_by_1_over_255():
    """The uint8 torso (scale 1/255) on bytes equals an identical float torso on bytes / 255;
    build_torso picks the scale from the space's dtype."""
    u8 = AtariCNN(OBS_SHAPE, 1 / 255)
    f32 = AtariCNN(OBS_SHAPE, 1.0)
    f32.load_state_dict(u8.state_dict())
    x = torch.randint(0, 256, (4, D), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(u8(x), f32(x.float() / 255), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(u8(x), f32(x.float()))
    cfg = Config()
    assert build_torso(gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8), cfg)[0].scale == pytest.approx(1 / 255)
    assert build_torso(gym.spaces.Box(0.0, 1.0, OBS_SHAPE, np.float32), cfg)[0].scale == 1.0


def test_channels_last_images_equal_the_transposed_channels_first_ones():
    """[H, W, C] input (84, 84, 3) is transposed: it equals the [C, H, W] net with the same
    weights on the transposed image."""
    hwc = AtariCNN((84, 84, 3), 1 / 255)
    chw = AtariCNN((3, 84, 84), 1 / 255)
    assert hwc.channels_last and not chw.channels_last
    chw.load_state_dict(hwc.state_dict())
    img = torch.randint(0, 256, (2, 84, 84, 3), dtype=torch.uint8)
    with torch.no_grad():
        a = hwc(img.reshape(2, -1))
        b = chw(img.permute(0, 3, 1, 2).reshape(2, -1))
    assert a.shape == (2, 256)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [OBS_SHAPE, (84, 84, 3)])
@pytest.mark.parametrize("B", [2, 6, 16])
def test_learner_batches_laid_out_channels_last_give_the_same_outputs_and_gradients(shape, B, monkeypatch):
    """A learner batch of CHANNELS_LAST_MIN_BATCH rows or more (a hogwild segment's 6, a sync
    batch) goes through the convolutions channels-last: its outputs and gradients equal those
    of the same batch laid out channels-first, for [C, H, W] and [H, W, C] images; the scratch
    is reused by a second pass; batches below the threshold and no-grad forwards (acting)
    stay channels-first."""
    import asyncrl.nets.cnn as models

    assert models.CHANNELS_LAST_MIN_BATCH <= 6          # a hogwild segment of t_max 5 is 6 rows
    torch.manual_seed(0)
    x = torch.randint(0, 256, (B, int(np.prod(shape))), dtype=torch.uint8)
    weights = torch.linspace(-1, 1, B * 256).view(B, 256)
    results = []
    cl_min = models.CHANNELS_LAST_MIN_BATCH
    for threshold in (cl_min, B + 1):                   # channels-last, then channels-first
        monkeypatch.setattr(models, "CHANNELS_LAST_MIN_BATCH", threshold)
        torch.manual_seed(1)
        net = AtariCNN(shape, 1 / 255)
        out = net(x)
        (out * weights).sum().backward()
        buf = next(v for k, v in net._floats.items() if isinstance(k[0], torch.Size) and k[1] is True)
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()],
                        buf.is_contiguous(memory_format=torch.channels_last), net))
    (out_cl, grads_cl, is_cl, net), (out_cf, grads_cf, is_cl_cf, _) = results
    assert is_cl and not is_cl_cf
    torch.testing.assert_close(out_cl, out_cf, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_cl, grads_cf):     # float32 sums in another order: within 1e-4 of the norm
        assert float((a - b).norm() / a.norm()) < 1e-4
    monkeypatch.setattr(models, "CHANNELS_LAST_MIN_BATCH", cl_min)
    n_bufs = len(net._floats)
    torch.testing.assert_close(net(x).detach(), out_cl, rtol=0, atol=0)   # a second pass reuses
    assert len(net._floats) == n_bufs                                      # the buffers
    with torch.no_grad():
        net(x)
    acting = next(v for k, v in net._floats.items() if isinstance(k[0], torch.Size) and k[1] is False)
    assert not acting.is_contiguous(memory_format=torch.channels_last)
    one = x[:1]
    net(one)                                            # one row: below any useful threshold
    single = next(v for k, v in net._floats.items() if isinstance(k[0], torch.Size) and k[0][0] == 1 and k[1])
    assert not single.is_contiguous(memory_format=torch.channels_last)


def test_two_dimensional_images_are_one_channel():
    torso, feat = build_torso(gym.spaces.Box(0, 255, (84, 84), np.uint8), Config())
    assert isinstance(torso, AtariCNN) and feat == 256 and torso.conv1.in_channels == 1
    with torch.no_grad():
        assert torso(torch.randint(0, 256, (3, 84 * 84), dtype=torch.uint8)).shape == (3, 256)


def test_image_size_limit_and_cnn_on_vectors():
    """The two convolutions need 36x36 ((36-8)/4+1 = 8, (8-4)/2+1 = 3); 35x35 and 20x20 are
    EnvErrors; net 'cnn' on a vector observation is an EnvError; net 'mlp' on images is an MLP."""
    cfg = Config()
    assert isinstance(build_torso(gym.spaces.Box(0, 255, (4, 36, 36), np.uint8), cfg)[0], AtariCNN)
    for side in (35, 20):
        with pytest.raises(EnvError, match="too small"):
            build_torso(gym.spaces.Box(0, 255, (4, side, side), np.uint8), cfg)
    with pytest.raises(EnvError, match="net 'cnn' needs image observations"):
        build_torso(gym.spaces.Box(-1, 1, (4,), np.float32), Config.from_dict({"net": "cnn"}))
    torso, feat = build_torso(gym.spaces.Box(0, 255, (4, 20, 20), np.uint8), Config.from_dict({"net": "mlp"}))
    assert not isinstance(torso, AtariCNN) and feat == 64


def test_obs_dtype_and_image_spaces():
    u8 = gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8)
    assert is_image_space(u8) and obs_dtype(u8) == torch.uint8
    assert obs_dtype(gym.spaces.Box(0.0, 1.0, OBS_SHAPE, np.float32)) == torch.float32
    vec = gym.spaces.Box(0, 255, (4,), np.uint8)
    assert not is_image_space(vec) and obs_dtype(vec) == torch.float32


def test_cnn_lstm_on_images():
    """net 'lstm' on Pong: the CNN torso then a 256-cell LSTM; unroll gives [T, B, 6] logits,
    [T, B] values and states [T, B, 256]; step gives [B, 256] states; acting works on bytes."""
    model = _model("a3c", net="lstm", lstm_size=256)
    assert isinstance(model.torso, AtariCNN) and model.recurrent and model.core.hidden_size == 256
    T, B = 5, 2
    obs = torch.randint(0, 256, (T, B, D), dtype=torch.uint8)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    with torch.no_grad():
        logits, value, (h, c) = model.unroll(obs, model.initial_state(B), starts)
        assert logits.shape == (T, B, 6) and value.shape == (T, B) and h.shape == c.shape == (T, B, 256)
        out, v, (h1, c1) = model.step(obs[0], model.initial_state(B))
        assert out.shape == (B, 6) and v.shape == (B,) and h1.shape == c1.shape == (B, 256)
        torch.testing.assert_close(out, logits[0], rtol=1e-5, atol=1e-6)
    cfg = Config.from_dict({"algo": "a3c", "env": PONG, "net": "lstm"})
    policy = make_algorithm(cfg).make_policy(model, np.random.default_rng(0), n_envs=B)
    a = policy(obs[0].numpy())
    assert a.shape == (B,) and all(0 <= int(x) < 6 for x in a)


def test_collector_rows_are_uint8_copies_of_the_observation():
    env = make_atari(PONG, NO_NOOPS)
    col = EpisodeSegmentCollector(env, 5, seed=0)
    seen = []
    ro, _ = col.collect(lambda o: (seen.append(o.copy()), np.zeros(1, np.int64))[1], 3)
    ref = make_atari(PONG, NO_NOOPS)
    first, _ = ref.reset(seed=0)
    assert ro.obs.dtype == torch.uint8 and ro.obs.shape == (4, 1, D)
    np.testing.assert_array_equal(ro.obs[0, 0].numpy(), first.reshape(-1))
    np.testing.assert_array_equal(seen[0][0], first.reshape(-1))
    for t in range(3):
        np.testing.assert_array_equal(ro.obs[t + 1, 0].numpy(), ref.step(0)[0].reshape(-1))
    env.close()
    ref.close()


@pytest.mark.parametrize("life_loss", [False, True])
def test_atari_sync_vector_env_equals_gymnasiums_sync_vector_env(life_loss):
    """The sync executor's inline vec env for Atari games (AtariSyncVectorEnv: each game
    writes its stack into the batch) returns exactly what Gymnasium's SyncVectorEnv with
    SAME_STEP autoreset returns over the same games: observations, rewards, flags and infos
    (final_obs, final_info with life_loss, their masks), through game overs and lost lives
    of 3 Breakout games fed the same random actions; its batch stays the same array."""
    from asyncrl.vector.atari import AtariSyncVectorEnv

    cfg = Config.from_dict({"env": BREAKOUT, "life_loss_terminal": life_loss})
    factory = EnvFactory(BREAKOUT).configured(cfg)
    fast = make_vector_env(factory, 3, "inline")
    ref = gym.vector.SyncVectorEnv([factory] * 3, copy=False, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert isinstance(fast, AtariSyncVectorEnv)
    assert fast.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    o1, _ = fast.reset(seed=5)
    o2, _ = ref.reset(seed=5)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(0)
    ends = {"life_loss": 0, "game_over": 0}
    for _ in range(600):
        actions = rng.integers(4, size=3)
        (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) = fast.step(actions), ref.step(actions)
        assert o1 is fast._observations
        for a, b in ((o1, o2), (r1, r2), (te1, te2), (tr1, tr2)):
            np.testing.assert_array_equal(a, b)
        assert i1.keys() == i2.keys()
        for key in i1:
            if key == "final_obs":
                for a, b in zip(i1[key], i2[key]):
                    assert (a is None and b is None) or np.array_equal(a, b)
            elif key == "final_info":
                assert repr(i1[key]) == repr(i2[key])
            else:
                np.testing.assert_array_equal(i1[key], i2[key])
        for b in np.flatnonzero(te1 | tr1):
            ends["life_loss" if i1["final_info"].get("life_loss", [False] * 3)[b] else "game_over"] += 1
    fast.close()
    ref.close()
    assert ends["game_over"] >= 2 and (ends["life_loss"] >= 8) == life_loss


def test_atari_sync_vector_env_takes_atari_preprocessed_games_only():
    from asyncrl.vector.atari import AtariSyncVectorEnv

    with pytest.raises(TypeError, match="AtariPreprocessed"):
        AtariSyncVectorEnv([lambda: make_atari_reference(PONG, NO_NOOPS)])
    custom = EnvFactory(lambda: make_atari(PONG, NO_NOOPS))      # a callable: left as it is
    venv = make_vector_env(custom, 2, "inline")
    assert type(venv) is gym.vector.SyncVectorEnv
    venv.close()


@pytest.mark.parametrize("c", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("opencv", [True, False])
def test_interleave_channels_equals_a_channels_last_copy(c, dtype, opencv, monkeypatch):
    """The learner's byte images laid out channels-last (cv2.merge for 2-4 channels of
    bytes, else, or without OpenCV, torch's copy) equal torch's own channels-last copy,
    and land in `out`."""
    import asyncrl.nets.cnn as models
    from asyncrl.nets.cnn import _interleave_channels

    if not opencv:
        monkeypatch.setattr(models, "_opencv", lambda: None)
    x = torch.randint(0, 256, (5, c, 84, 84)).to(dtype)
    out = torch.empty(x.shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    got = _interleave_channels(x, out)
    assert got is out and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, x.contiguous(memory_format=torch.channels_last))


# =========================================================================== scores, ids
def test_human_normalized_scores():
    assert human_normalized("pong", -20.7) == 0.0
    assert human_normalized("pong", 14.6) == 1.0
    assert human_normalized("pong", -21.0) == pytest.approx(-0.3 / 35.3)
    assert human_normalized("breakout", 30.5) == 1.0
    assert human_normalized("breakout", 1.7) == 0.0
    assert human_normalized("no_such_game", 10.0) is None
    assert REFERENCE_SCORES["pong"] == (-20.7, 14.6) and REFERENCE_SCORES["breakout"] == (1.7, 30.5)


def test_game_and_atari_ids():
    assert game_of(PONG) == game_of("PongNoFrameskip-v4") == "pong"
    assert game_of("ALE/SpaceInvaders-v5") == "space_invaders"
    assert is_atari_id(PONG) and is_atari_id("PongNoFrameskip-v4") and is_atari_id(BREAKOUT)
    assert not is_atari_id("CartPole-v1") and not is_atari_id("") and not is_atari_id("ALE/NoSuchGame-v5")


def test_env_factory_applies_atari_options_and_evaluation_plays_whole_games():
    cfg = Config.from_dict({"env": BREAKOUT, "life_loss_terminal": True, "noop_max": 7, "frame_skip": 3})
    f = EnvFactory(BREAKOUT).configured(cfg)
    assert f.atari == AtariOptions(7, 3, 4, 84, 0.0, True)
    assert f.for_evaluation().atari == AtariOptions(7, 3, 4, 84, 0.0, False)
    env, ev = f(), f.for_evaluation()()
    assert isinstance(env, AtariPreprocessed) and env.opts == f.atari and ev.opts == f.atari.for_evaluation()
    env.close()
    ev.close()
    assert EnvFactory("CartPole-v1").configured(Config.from_dict({"env": "CartPole-v1"})).atari is None


# =========================================================================== ale-py vector env
@pytest.mark.parametrize("env_id", [PONG, BREAKOUT])
def test_ale_vector_env_has_make_atari_spaces(env_id):
    v = make_ale_vector_env(env_id, AtariOptions(), 2, 1)
    env = make_atari(env_id, AtariOptions())
    assert v.single_observation_space == env.observation_space
    assert v.single_action_space == env.action_space
    obs, _ = v.reset(seed=0)
    assert obs.shape == (2, *OBS_SHAPE) and obs.dtype == np.uint8
    v.close()
    env.close()


def _lockstep(env_id: str, steps: int, seed: int = 3):
    """make_atari and a 1-env ale vector env (noop_max 0) fed the same random actions:
    per step (newest frames equal, whole stacks equal, differing pixel fraction, max abs
    pixel difference, rewards equal); and the reset observations and frame numbers."""
    opts = NO_NOOPS
    v = make_ale_vector_env(env_id, opts, 1, 1)
    env = make_atari(env_id, opts)
    vo, vinfo = v.reset(seed=seed)
    o, _ = env.reset(seed=seed)
    start = (vo[0].copy(), o.copy(), int(vinfo["episode_frame_number"][0]), env.unwrapped.ale.getEpisodeFrameNumber())
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(steps):
        a = int(rng.integers(env.action_space.n))
        o, r, term, trunc, _ = env.step(a)
        vo, vr, vterm, vtrunc, _ = v.step(np.array([a]))
        d = np.abs(vo[0].astype(np.int16) - o.astype(np.int16))
        rows.append((np.array_equal(vo[0][-1], o[-1]), np.array_equal(vo[0], o), float((d[-1] > 0).mean()),
                     int(d[-1].max()), float(r) == float(vr[0])))
        assert not (term or trunc or vterm[0] or vtrunc[0])
    v.close()
    env.close()
    return start, rows


def test_ale_vector_env_equals_make_atari_in_a_game_without_fire():
    """Ms. Pac-Man (no FIRE): the same frames and rewards step for step; the only difference
    is the padding of the first stack (ale-py: zeros; make_atari: the first frame 4 times),
    gone once 3 steps have filled the stack."""
    (v0, o0, vframe, frame), rows = _lockstep("ALE/MsPacman-v5", 100)
    assert vframe == frame == 0
    np.testing.assert_array_equal(v0[-1], o0[-1])
    assert (v0[:3] == 0).all() and all(np.array_equal(o0[i], o0[3]) for i in range(3))
    assert all(newest and rewards for newest, _, _, _, rewards in rows)
    assert all(whole for _, whole, _, _, _ in rows[3:])


def test_ale_vector_env_differs_from_make_atari_in_fire_games():
    """MEASURED DIFFERENCE (not equality) in a FIRE game, Pong: ale-py's vector env fires on
    reset for 1 emulator frame (episode frame 1 after reset) where make_atari's FireOnReset
    takes one agent step of frame_skip = 4 frames (frame 4). Every later step is then 3
    frames out of phase, so frames differ by a little (moving ball and paddles: under 5% of
    the pixels of a frame, ~0.5% on average) and rewards may arrive one step apart.
    If the two are made to agree, replace this with equality (as in the Ms. Pac-Man test)."""
    (v0, o0, vframe, frame), rows = _lockstep(PONG, 120)
    assert (vframe, frame) == (1, 4)
    assert (v0[:3] == 0).all()
    fractions = [f for _, _, f, _, _ in rows]
    assert max(fractions) < 0.05 and np.mean(fractions) < 0.02
    assert not all(newest for newest, _, _, _, _ in rows)


def test_ale_vector_env_noop_starts_take_0_to_noop_max_minus_1_frames():
    """MEASURED DIFFERENCE: with noop_max 30, ale-py's vector env starts games after 0..29
    no-op frames, make_atari after 1..30 (Gymnasium's AtariPreprocessing). Ms. Pac-Man has no
    FIRE, so the episode frame number after reset is the no-op count. (Seeds picked to show
    the ends of the ranges with ale-py 0.12.1.)"""
    v = make_ale_vector_env("ALE/MsPacman-v5", AtariOptions(noop_max=30), 8, 1)
    frames = v.reset(seed=2)[1]["episode_frame_number"]
    v.close()
    assert frames.min() == 0 and frames.max() <= 29
    env = make_atari("ALE/MsPacman-v5", AtariOptions(noop_max=30))
    ours = []
    for s in (4, 19, 0, 1):
        env.reset(seed=s)
        ours.append(env.unwrapped.ale.getEpisodeFrameNumber())
    env.close()
    assert ours[:2] == [1, 30] and all(1 <= f <= 30 for f in ours)


# =========================================================================== EnvPool
def _envpool():
    return pytest.importorskip("envpool", reason="EnvPool is optional: pip install 'asyncrl[envpool]'")


@pytest.mark.parametrize("env_id", ["ALE/MsPacman-v5", "ALE/Freeway-v5"])
def test_envpool_equals_make_atari_step_for_step_in_games_without_fire(env_id):
    """EnvPool's preprocessing is ours: with one no-op at reset (both take exactly 1 then) and
    no FIRE in the game, the whole stacks (the first one included: both repeat the first
    frame), the rewards and the flags are identical for 300 random actions."""
    _envpool()
    from asyncrl.vector.atari import EnvPoolAtari

    opts = AtariOptions(noop_max=1)
    v = EnvPoolAtari(env_id, opts, 1, 1)
    env = make_atari(env_id, opts)
    assert v.single_observation_space == env.observation_space
    assert v.single_action_space == env.action_space
    vo, _ = v.reset(seed=0)
    o, _ = env.reset(seed=0)
    np.testing.assert_array_equal(vo[0], o)
    rng = np.random.default_rng(1)
    total = 0.0
    for _ in range(300):
        a = int(rng.integers(env.action_space.n))
        o, r, term, trunc, _ = env.step(a)
        vo, vr, vterm, vtrunc, _ = v.step(np.array([a]))
        np.testing.assert_array_equal(vo[0], o)
        assert (float(vr[0]), bool(vterm[0]), bool(vtrunc[0])) == (float(r), term, trunc)
        total += float(r)
    v.close()
    env.close()
    if env_id == "ALE/MsPacman-v5":
        assert total > 0          # the comparison covered rewarded steps


def test_envpool_resets_a_finished_env_within_the_step(monkeypatch):
    """SAME_STEP autoreset, as the sync collector needs: the step that ends an episode (here a
    time limit of 10 agent steps) returns the next episode's first stack (4 copies of one
    frame) for that env only, puts its true final stack in info['final_obs'], and the env
    then goes on stepping. Env 0 is restarted 4 steps in, so env 1 finishes alone."""
    _envpool()
    from asyncrl.vector.atari import EnvPoolAtari

    monkeypatch.setattr(EnvPoolAtari, "_max_steps", staticmethod(lambda env_id, opts: 10))
    v = EnvPoolAtari(PONG, AtariOptions(), 2, 1)
    v.reset(seed=5)
    rng = np.random.default_rng(0)          # moving paddles: a stack of 4 equal frames is a fresh one
    for t in range(10):
        if t == 4:
            v.pool.reset(np.array([0], np.int32))
        obs, r, term, trunc, info = v.step(rng.integers(6, size=2))
        assert obs.shape == (2, *OBS_SHAPE) and r.shape == (2,) and r.dtype == np.float64
        if t < 9:
            assert not (term.any() or trunc.any()) and "final_obs" not in info
    assert trunc.tolist() == [False, True] and not term.any()
    fresh = [bool((obs[i] == obs[i, 0]).all()) for i in range(2)]
    assert fresh == [False, True]
    np.testing.assert_array_equal(info["final_obs"][0], obs[0])       # env 0 went on
    assert not (info["final_obs"][1] == info["final_obs"][1, 0]).all()  # env 1's last stack
    for _ in range(4):
        obs, r, term, trunc, info = v.step(rng.integers(6, size=2))
    assert trunc.tolist() == [True, False] and "final_obs" in info
    v.close()
    v.close()                       # closing twice is harmless
    assert v.closed


def test_envpool_missing_is_a_clear_error_and_leaves_no_traceback(monkeypatch, capsys):
    import gc
    import sys

    from asyncrl.vector.atari import EnvPoolAtari

    monkeypatch.setitem(sys.modules, "envpool", None)       # import envpool -> ImportError
    with pytest.raises(EnvError, match=r"vec-env 'envpool' needs EnvPool: pip install 'asyncrl\[envpool\]'"):
        EnvPoolAtari(PONG, AtariOptions(), 2, 1)
    gc.collect()
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("opts,expected", [
    (AtariOptions(noop_max=0), "needs noop-max >= 1, got 0"),
    (AtariOptions(frame_skip=1), "needs frame-skip >= 2, got 1"),
    (AtariOptions(life_loss_terminal=True), "cannot end episodes on a lost life"),
    (AtariOptions(), None),
])
def test_envpool_option_problems(opts, expected):
    from asyncrl.vector.atari import envpool_option_problem

    problem = envpool_option_problem(opts)
    assert (problem is None) if expected is None else (expected in problem)


def test_envpool_time_limit_is_gymnasiums_in_agent_steps():
    from asyncrl.vector.atari import EnvPoolAtari, envpool_task

    assert EnvPoolAtari._max_steps(PONG, AtariOptions()) == 27_000     # 108,000 frames / 4
    assert EnvPoolAtari._max_steps("PongNoFrameskip-v4", AtariOptions(frame_skip=3)) == 36_000
    assert envpool_task(PONG) == "Pong-v5" and envpool_task("SpaceInvadersNoFrameskip-v4") == "SpaceInvaders-v5"


# =========================================================================== presets
def test_atari_preset_gives_the_papers_values():
    cfg = Config.from_dict({"preset": "atari", "algo": "a3c", "env": PONG})
    assert cfg.validate() == []
    expect = {"t_max": 5, "gamma": 0.99, "entropy_beta": 0.01, "lr": 7e-4, "rms_alpha": 0.99, "rms_eps": 0.1,
              "max_grad_norm": 40.0, "target_update": 10_000, "clip_rewards": "yes", "steps": 10_000_000,
              "workers": min(16, os.cpu_count() or 1), "optimizer": "shared-rmsprop", "lr_anneal": True,
              "noop_max": 30, "frame_skip": 4, "frame_stack": 4, "screen_size": 84, "sticky_actions": 0.0,
              "eval_epsilon": 0.0}
    assert {k: getattr(cfg, k) for k in expect} == expect
    assert cfg.clips_rewards


def test_explicit_values_override_the_preset():
    cfg = Config.from_dict({"preset": "atari", "algo": "a3c", "env": PONG, "lr": 1e-3, "workers": 3,
                            "clip_rewards": "no"})
    assert (cfg.lr, cfg.workers, cfg.clip_rewards, cfg.t_max) == (1e-3, 3, "no", 5)


def test_preset_leaves_a2c_at_16_environments():
    cfg = Config.from_dict({"preset": "atari", "algo": "a2c", "env": PONG})
    assert cfg.workers == Config().workers            # the field's default: the preset sets none
    agent = AGENTS["a2c"](PONG, preset="atari", eval_episodes=0)
    assert agent.config.workers == 16 and agent.config.executor == "sync"


def test_a2c_preset_takes_baselines_optimiser_settings_and_the_rest_from_the_paper():
    cfg = Config.from_dict({"preset": "atari", "algo": "a2c", "env": PONG})
    assert cfg.validate() == []
    # OpenAI Baselines' / the RL-Zoo's A2C: epsilon 1e-5 (inside the root), clip 0.5 on a loss
    # averaged over time steps, which is 2.5 on ours (summed over the 5 steps); the RL-Zoo's
    # value coefficient 0.25
    assert (cfg.rms_eps, cfg.value_coef, cfg.max_grad_norm) == (1e-5, 0.25, 2.5)
    assert (cfg.lr, cfg.rms_alpha, cfg.t_max, cfg.entropy_beta, cfg.gamma, cfg.lr_anneal) == \
        (7e-4, 0.99, 5, 0.01, 0.99, True)
    a3c = Config.from_dict({"preset": "atari", "algo": "a3c", "env": PONG})
    assert (a3c.rms_eps, a3c.value_coef, a3c.max_grad_norm) == (0.1, 0.5, 40.0)
    # and a flag still wins: the paper's epsilon for an A2C run
    assert Config.from_dict({"preset": "atari", "algo": "a2c", "env": PONG, "rms_eps": 0.1}).rms_eps == 0.1


def test_pong_a3c_config_is_the_preset_but_for_rmsprop_epsilon_and_lr():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "pong-a3c.yaml")
    cfg = Config.from_dict({**load_config_file(path), "algo": "a3c", "env": PONG})
    preset = Config.from_dict({"preset": "atari", "algo": "a3c", "env": PONG}).to_dict()
    assert cfg.validate() == []
    changed = {k: v for k, v in cfg.to_dict().items() if preset[k] != v}
    assert changed == {"rms_eps": 1e-5, "lr": 3e-4}
    assert (cfg.optimizer, cfg.t_max, cfg.max_grad_norm, cfg.lr_anneal) == ("shared-rmsprop", 5, 40.0, True)


@pytest.mark.parametrize("algo,eps", [("a3c", 0.0), ("a2c", 0.0), ("one-step-q", 0.05),
                                      ("one-step-sarsa", 0.05), ("n-step-q", 0.05)])
def test_preset_eval_epsilon(algo, eps):
    assert Config.from_dict({"preset": "atari", "algo": algo, "env": PONG}).eval_epsilon == eps


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="preset 'nonsense' is not one of: auto, classic, continuous, paper, atari, none"):
        Config.from_dict({"preset": "nonsense", "algo": "a3c", "env": PONG})


def test_preset_none_changes_nothing():
    base = Config(algo="a3c", env=PONG, preset="none")
    assert Config.from_dict({"preset": "none", "algo": "a3c", "env": PONG}) == base
    assert Config.from_dict({"preset": "atari", "algo": "a3c", "env": PONG}) != base


@pytest.mark.parametrize("T,truncations", [(5, 0), (5, 2), (1, 0), (1, 1)])
def test_cnn_loss_keeps_bootstrap_rows_out_of_the_graph_without_changing_the_gradient(T, truncations):
    """With the CNN, V(s_T) and V(final_obs) are computed apart under no_grad: the loss and
    the gradient equal those of the one-batch formulation (costly_torso off), including a
    1-step segment (the grad and no-grad forwards then have the same number of rows and
    must not share the byte->float scratch) and truncations mid-segment."""
    from asyncrl.algos import make_algorithm
    from asyncrl.rollout import Rollout

    B = 3
    cfg = Config(algo="a2c", env="ALE/Pong-v5")
    algo = make_algorithm(cfg)
    space = gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8)
    torch.manual_seed(0)
    model = algo.build_model(space, gym.spaces.Discrete(6))
    g = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (T + 1, B, D), dtype=torch.uint8, generator=g)
    trunc = torch.zeros(T, B, dtype=torch.bool)
    idx = torch.tensor([[T - 1, b] for b in range(truncations)], dtype=torch.int64).view(-1, 2)
    trunc[idx[:, 0], idx[:, 1]] = True
    ro = Rollout(obs, torch.randint(0, 6, (T, B), generator=g), torch.randn(T, B, generator=g),
                 torch.zeros(T, B, dtype=torch.bool), trunc,
                 final_obs=torch.randint(0, 256, (truncations, D), dtype=torch.uint8, generator=g)
                 if truncations else None, final_idx=idx if truncations else None)

    def loss_and_grads(apart: bool):
        model.zero_grad(set_to_none=True)
        with mock.patch.object(type(model), "costly_torso", new_callable=mock.PropertyMock, return_value=apart):
            loss, _ = algo.loss(model, ro)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    l_apart, g_apart = loss_and_grads(True)
    l_one, g_one = loss_and_grads(False)
    torch.testing.assert_close(l_apart, l_one, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_apart, g_one):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert model.costly_torso


def test_a_rendering_atari_env_gives_the_game_screen_in_real_time():
    """For videos: render_mode rgb_array reaches the ALE, render() is the colour screen, and
    render_fps is one frame per agent step at the emulator's 60 Hz (15 with frame skip 4)."""
    env = make_atari(PONG, NO_NOOPS, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        frame = env.render()
        assert frame.shape == (210, 160, 3) and frame.dtype == np.uint8 and frame.std() > 0
        assert env.metadata["render_fps"] == 15.0
        assert AtariPreprocessed.metadata.get("render_fps") is None     # the class's own is untouched
    finally:
        env.close()
