"""Rollouts ([T, B] segments) and the single-environment segment collector.

A Rollout is what an algorithm turns into a loss; it knows nothing of processes.
`terminated` and `truncated` are kept apart everywhere: a time-limit cut bootstraps
from the true final observation, a terminal state does not.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .spaces import dict_entries, obs_dim, obs_dtype


@dataclass
class Rollout:
    """One segment of experience from B environments.

    obs:        [T+1, B, D] float32; obs[t] is s_t, obs[T] the observation after the last
                step (for a hogwild segment that ends an episode: the true final observation)
    actions:    [T, B] int64 (discrete) or [T, B, A] float32 (continuous, as sampled: unclipped)
    rewards:    [T, B] float32
    terminated: [T, B] bool: s_{t+1} is terminal
    truncated:  [T, B] bool: the episode was cut by a time limit after step t
    final_obs:  [K, D] true final observations of truncated steps whose obs[t+1] is already
                the next episode's first observation (vectorised autoreset), else None
    final_idx:  [K, 2] int64 (t, b) positions of final_obs, else None
    next_actions: [B] int64, the action the behaviour policy chose in obs[T] (on-policy
                targets such as SARSA's need it), else None
    final_next_actions: [K] int64, the action the behaviour policy chose in each final_obs
                (SARSA under vectorised autoreset), else None
    state0:     recurrent policies: (h, c) [B, H] each, the state before obs[0], else None
    starts:     recurrent policies: [T+1, B] bool, obs[t] is an episode's first observation
                (the state is zeroed before it), else None
    tape:       the acting policy's nets.ActivationTape (a CNN actor's forwards in this
                segment, hogwild or sync, for the learner to replay), else None
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: torch.Tensor | None = None
    final_idx: torch.Tensor | None = None
    next_actions: torch.Tensor | None = None
    final_next_actions: torch.Tensor | None = None
    state0: tuple[torch.Tensor, torch.Tensor] | None = None
    starts: torch.Tensor | None = None
    tape: object | None = None

    @property
    def length(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_steps(self) -> int:
        """Environment steps in this rollout (T x B): what the global step counter advances by."""
        return self.rewards.numel()

    def to(self, device: "torch.device | str") -> "Rollout":
        """A copy on `device` (the same object when it is already there)."""
        if self.obs.device == torch.device(device):
            return self

        def move(x):
            if x is None or not isinstance(x, (tuple, torch.Tensor)):   # a tape stays behind
                return None
            if isinstance(x, tuple):
                return tuple(move(y) for y in x)
            return x.to(device, non_blocking=True)
        return Rollout(**{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)})


class ActionBuffer:
    """[T, B] int64 actions (Discrete) or [T, B, A] float32 (Box), and the clipping of a
    sampled continuous action into the space's bounds before it is sent to the env (the
    rollout keeps the sample itself: its log-probability is what the loss needs)."""

    def __init__(self, space: gym.Space, t_max: int, batch: int):
        self.continuous = isinstance(space, gym.spaces.Box)
        if self.continuous:
            a = int(space.shape[0])
            self.actions = torch.zeros(t_max, batch, a)
            self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
            self._clipped = np.zeros((batch, a), np.float32)
        else:
            self.actions = torch.zeros(t_max, batch, dtype=torch.int64)
        self.np = self.actions.numpy()

    def for_env(self, a: np.ndarray) -> np.ndarray:
        """What the env receives for the sampled actions a [B] / [B, A]."""
        if self.continuous:
            return np.clip(a, self.low, self.high, out=self._clipped)
        return a


def _reset_state(policy, mask: np.ndarray | None = None) -> None:
    """Policy.reset_state for recurrent policies (plain callables have no state)."""
    reset = getattr(policy, "reset_state", None)
    if reset is not None:
        reset(mask)


def _get_state(policy):
    get = getattr(policy, "get_state", None)
    return None if get is None else get()


class ObsWriter:
    """Encodes raw observations into a row in place (Discrete: one-hot; Dict: each entry
    into its own columns of the row, spaces.dict_entries, so rollouts stay one [T, B, D]
    buffer, allocated once, whatever the observation)."""

    def __init__(self, space: gym.Space):
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.dim = obs_dim(space)
        self.dtype = obs_dtype(space)       # torch dtype of the rows (uint8 for images of bytes)
        self.entries = None
        if isinstance(space, gym.spaces.Dict):   # (key, writer of the entry, its columns)
            self.entries = [(key, ObsWriter(sub), cols) for key, sub, cols in dict_entries(space)]

    def rows(self, *shape: int) -> torch.Tensor:
        """A zeroed buffer of observation rows: shape + (dim,)."""
        return torch.zeros(*shape, self.dim, dtype=self.dtype)

    def __call__(self, row: np.ndarray, obs) -> None:
        if self.entries is not None:
            for key, write, cols in self.entries:
                write(row[cols], obs[key])
        elif self.discrete:
            row[:] = 0.0
            row[int(obs)] = 1.0
        else:
            row[:] = np.reshape(obs, -1)

    def batch(self, rows: np.ndarray, obs) -> None:
        """rows [B, D] <- B observations as a vector env returns them (stacked; a Dict's
        entries each stacked)."""
        if self.entries is not None:
            for key, write, cols in self.entries:
                write.batch(rows[:, cols], obs[key])
        elif self.discrete:
            rows[:] = 0.0
            rows[np.arange(rows.shape[0]), np.asarray(obs, dtype=np.int64)] = 1.0
        else:
            rows[:] = np.reshape(obs, rows.shape)


class EpisodeSegmentCollector:
    """Steps one environment for up to n steps or to the episode's end (paper, Alg. 3).

    Buffers are allocated once; each `collect` returns a Rollout of views into them,
    valid until the next call. Finished episodes are returned as (return, length).
    """

    def __init__(self, env: gym.Env, t_max: int, seed: int, next_action: bool = False):
        self.env = env
        self.next_action = next_action   # choose a_T in s_T at the segment's end (SARSA)
        self._pending: int | None = None
        self._next_actions = torch.zeros(1, dtype=torch.int64)
        self.write_obs = ObsWriter(env.observation_space)
        self.obs = self.write_obs.rows(t_max + 1, 1)
        self.acts = ActionBuffer(env.action_space, t_max, 1)
        self.actions = self.acts.actions
        self.rewards = torch.zeros(t_max, 1)
        self.terminated = torch.zeros(t_max, 1, dtype=torch.bool)
        self.truncated = torch.zeros(t_max, 1, dtype=torch.bool)
        self.starts = torch.zeros(t_max + 1, 1, dtype=torch.bool)   # only starts[0] can be set
        # numpy views of the same memory: writing through them allocates nothing
        self._obs_np = self.obs.numpy()
        self._act_np = self.acts.np
        self._rew_np = self.rewards.numpy()
        self._term_np = self.terminated.numpy()
        self._trunc_np = self.truncated.numpy()
        self._seed = seed
        self._needs_reset = True
        self._game_over = True      # False after a lost life that ended an episode for learning only
        self._last_t = 0
        self.ep_return = 0.0
        self.ep_length = 0
        self.episodes_started = 0

    def _reset(self) -> None:
        seed = self._seed if self.episodes_started == 0 else None
        obs, _ = self.env.reset(seed=seed)
        self.write_obs(self._obs_np[0, 0], obs)
        if self._game_over:
            self.ep_return, self.ep_length = 0.0, 0
        self.episodes_started += 1
        self._needs_reset = False
        self._pending = None

    def collect(self, policy, n: int) -> tuple[Rollout, tuple[float, int] | None]:
        """Act with `policy(obs [1, D] NumPy) -> actions [1] / [1, A]` for up to n steps.

        Returns the rollout and, if the episode ended, its (return, length).
        """
        first = self._needs_reset
        if first:
            self._reset()
            _reset_state(policy)
        elif self._last_t:
            self.obs[0].copy_(self.obs[self._last_t])  # the episode goes on from s_T
        self.starts[0] = first
        state0 = _get_state(policy)
        tape = getattr(policy, "tape", None)
        if tape is not None:
            tape.clear()                        # it records this segment's acting forwards
        env, obs_np, act_np, acts = self.env, self._obs_np, self._act_np, self.acts
        continuous = acts.continuous
        finished = None
        t = 0
        pending, self._pending = self._pending, None
        while t < n:
            if t == 0 and pending is not None:
                act_np[t, 0] = pending          # chosen at the end of the last segment
            else:
                act_np[t] = policy(obs_np[t])
            o, r, term, trunc, info = env.step(acts.for_env(act_np[t])[0] if continuous else int(act_np[t, 0]))
            self._rew_np[t, 0] = r
            self._term_np[t, 0] = term
            self._trunc_np[t, 0] = trunc
            self.write_obs(obs_np[t + 1, 0], o)
            self.ep_return += float(r)
            self.ep_length += 1
            t += 1
            if term or trunc:
                # a lost life that ends the episode for learning only: the game's score goes on
                self._game_over = not info.get("life_loss", False)
                if self._game_over:
                    finished = (self.ep_return, self.ep_length)
                self._needs_reset = True
                break
        self._last_t = t
        next_actions = None
        if self.next_action:
            a_next = int(policy(obs_np[t])[0])
            self._next_actions[0] = a_next
            next_actions = self._next_actions
            if finished is None:
                self._pending = a_next          # the episode goes on: a_T is executed next
        ro = Rollout(self.obs[:t + 1], self.actions[:t], self.rewards[:t],
                     self.terminated[:t], self.truncated[:t], next_actions=next_actions,
                     state0=state0, starts=None if state0 is None else self.starts[:t + 1], tape=tape)
        return ro, finished


class VectorSegmentCollector:
    """Steps the B environments of a Gymnasium vector env in lockstep for t_max steps (the
    sync executor), producing [t_max, B] rollouts.

    Segments run across episode boundaries. The vector env must reset a finished
    environment within the same step (AutoresetMode.SAME_STEP): obs[t+1] is then the next
    episode's first observation, so a *truncated* episode's true final observation goes
    to final_obs/final_idx (a terminated one needs none: it is not bootstrapped). Buffers
    are allocated once; each `collect` returns views into them, valid until the next call.
    """

    def __init__(self, venv, t_max: int, seed: int, next_action: bool = False):
        self.venv = venv
        self.B = B = venv.num_envs
        self.t_max = t_max
        self.next_action = next_action
        self.write_obs = ObsWriter(venv.single_observation_space)
        self.obs = self.write_obs.rows(t_max + 1, B)
        self.acts = ActionBuffer(venv.single_action_space, t_max, B)
        self.actions = self.acts.actions
        self.starts = torch.zeros(t_max + 1, B, dtype=torch.bool)
        self.rewards = torch.zeros(t_max, B)
        self.terminated = torch.zeros(t_max, B, dtype=torch.bool)
        self.truncated = torch.zeros(t_max, B, dtype=torch.bool)
        self.final_obs = self.write_obs.rows(t_max * B)
        self.final_idx = torch.zeros(t_max * B, 2, dtype=torch.int64)
        self.final_next_actions = torch.zeros(t_max * B, dtype=torch.int64)
        self.next_actions = torch.zeros(B, dtype=torch.int64)
        self._obs_np, self._act_np, self._rew_np = self.obs.numpy(), self.acts.np, self.rewards.numpy()
        self._starts_np = self.starts.numpy()
        self._term_np, self._trunc_np = self.terminated.numpy(), self.truncated.numpy()
        self._fobs_np, self._fidx_np = self.final_obs.numpy(), self.final_idx.numpy()
        self._fact_np, self._next_np = self.final_next_actions.numpy(), self.next_actions.numpy()
        self.ep_return = np.zeros(B, np.float64)
        self.ep_length = np.zeros(B, np.int64)
        self._seed = seed
        self._started = False
        self._last_t = 0
        self._pending: np.ndarray | None = None

    def collect(self, policy, n: int | None = None) -> tuple[Rollout, list[tuple[int, int, float, int]]]:
        """Act with `policy(obs [B, D] NumPy) -> actions [B]` for n (default t_max) steps.

        Returns the rollout and the episodes that ended in it as (t, env, return, length).
        """
        n = self.t_max if n is None else n
        obs_np, starts, acts = self._obs_np, self._starts_np, self.acts
        if not self._started:
            o, _ = self.venv.reset(seed=self._seed)
            self.write_obs.batch(obs_np[0], o)
            _reset_state(policy)
            starts[0] = True
            self._started = True
        else:
            obs_np[0] = obs_np[self._last_t]         # every env goes on from s_T
            starts[0] = starts[self._last_t]
        state0 = _get_state(policy)
        tape = getattr(policy, "tape", None)
        if tape is not None:
            tape.clear()                              # it records this segment's acting forwards
        finished: list[tuple[int, int, float, int]] = []
        step_acting = getattr(self.venv, "step_acting", None)
        if acts.continuous or self.next_action or not getattr(policy, "rows_independent", False):
            step_acting = None          # (continuous actions are clipped; a pending a_T is not chosen)
        k = 0                                          # final observations recorded
        pending, self._pending = self._pending, None
        for t in range(n):
            if step_acting is not None:     # groups of envs step while the next group's actions are chosen
                o, r, term, trunc, info = step_acting(policy, obs_np[t], self._act_np[t])
            else:
                self._act_np[t] = pending if (t == 0 and pending is not None) else policy(obs_np[t])
                o, r, term, trunc, info = self.venv.step(acts.for_env(self._act_np[t]))
            self._rew_np[t] = r
            self._term_np[t] = term
            self._trunc_np[t] = trunc
            self.write_obs.batch(obs_np[t + 1], o)
            self.ep_return += r
            self.ep_length += 1
            done = term | trunc
            starts[t + 1] = done                      # obs[t+1] begins the env's next episode
            if done.any():
                _reset_state(policy, done)
                over = done
                lost = info.get("final_info", {}).get("life_loss")
                if lost is not None:      # lives lost that end episodes for learning only
                    over = done & ~(lost & info["final_info"]["_life_loss"])
                for b in np.flatnonzero(over):
                    finished.append((t, int(b), float(self.ep_return[b]), int(self.ep_length[b])))
                self.ep_return[over] = 0.0
                self.ep_length[over] = 0
                cut = np.flatnonzero(trunc & ~term)   # bootstrapped: needs the true final obs
                if cut.size:
                    k = self._record_finals(policy, info, t, cut, k)
        self._last_t = n
        next_actions = None
        if self.next_action:
            self._next_np[:] = policy(obs_np[n])
            self._pending = self._next_np.copy()      # a_T is executed first next segment
            next_actions = self.next_actions
        ro = Rollout(self.obs[:n + 1], self.actions[:n], self.rewards[:n], self.terminated[:n], self.truncated[:n],
                     final_obs=self.final_obs[:k] if k else None,
                     final_idx=self.final_idx[:k] if k else None,
                     next_actions=next_actions,
                     final_next_actions=self.final_next_actions[:k] if (k and self.next_action) else None,
                     state0=state0, starts=None if state0 is None else self.starts[:n + 1], tape=tape)
        return ro, finished

    def _record_finals(self, policy, info: dict, t: int, envs: np.ndarray, k: int) -> int:
        finals = info["final_obs"]
        for b in envs:
            self.write_obs(self._fobs_np[k], finals[b])
            self._fidx_np[k] = (t, b)
            k += 1
        if self.next_action:   # the action the behaviour policy picks in each final obs
            batch = self._obs_np[t + 1].copy()
            batch[envs] = self._fobs_np[k - len(envs):k]
            self._fact_np[k - len(envs):k] = policy(batch)[envs]
        return k
