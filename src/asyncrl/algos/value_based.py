"""The asynchronous value-based methods (paper, section 4): one-step Q-learning
(Algorithm 1), one-step SARSA, and n-step Q-learning (Algorithm 2).

One class; only the target differs. Each worker explores epsilon-greedily with its own
final epsilon, drawn from {0.1, 0.01, 0.5} with probabilities {0.4, 0.3, 0.3} and reached
by linear annealing from 1 over `epsilon_steps` global steps. Targets bootstrap from the
shared target network theta-, never carrying gradient into it.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from ..nets import QNetwork, build_torso, numpy_scores
from ..returns import n_step_returns, one_step_targets
from ..rollout import Rollout
from ..spaces import check_observation_space, require_discrete_actions
from .base import Algorithm, Policy

VALUE_BASED = ("one-step-q", "one-step-sarsa", "n-step-q")


def draw_final_epsilons(rng: np.random.Generator, n: int, finals: list[float], probs: list[float]) -> np.ndarray:
    """Each actor's final epsilon (paper: {0.1, 0.01, 0.5} w.p. {0.4, 0.3, 0.3})."""
    return rng.choice(np.asarray(finals, dtype=np.float64), size=n, p=np.asarray(probs, dtype=np.float64))


def epsilon_at(step: int, final: np.ndarray | float, anneal_steps: int) -> np.ndarray | float:
    """Linear from 1 at step 0 to `final` at `anneal_steps`, then constant."""
    frac = 1.0 if anneal_steps <= 0 else min(1.0, step / anneal_steps)
    return 1.0 + (final - 1.0) * frac


class EpsilonGreedy(Policy):
    """Epsilon-greedy over Q values, one epsilon per environment."""

    def __init__(self, q_of, n_actions: int, rng: np.random.Generator, finals: np.ndarray, anneal_steps: int):
        self.q_of, self.n_actions, self.rng = q_of, n_actions, rng
        self.finals, self.anneal_steps = finals, anneal_steps
        self.epsilon = epsilon_at(0, finals, anneal_steps)

    def at_step(self, step: int) -> None:
        self.epsilon = epsilon_at(step, self.finals, self.anneal_steps)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        actions = self.q_of(obs).argmax(-1)
        explore = self.rng.random(actions.shape[0]) < self.epsilon
        if explore.any():
            actions = np.where(explore, self.rng.integers(self.n_actions, size=actions.shape[0]), actions)
        return actions


class ValueBasedAlgorithm(Algorithm):
    stat_keys = ("loss/q", "q/taken")
    uses_target_network = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.name = cfg.algo
        self.needs_next_action = cfg.algo == "one-step-sarsa"

    @property
    def segment_length(self) -> int:
        return self.cfg.t_max if self.name == "n-step-q" else self.cfg.async_update

    def check_spaces(self, obs_space: gym.Space, action_space: gym.Space, env_name: str) -> None:
        check_observation_space(obs_space, env_name)
        require_discrete_actions(action_space, env_name, self.name,
                                 "is a value-based method and needs Discrete actions (one Q value per "
                                 "action); for continuous actions use a3c or a2c (Gaussian policy)")

    def build_model(self, obs_space: gym.Space, action_space: gym.Space) -> QNetwork:
        torso, feat = build_torso(obs_space, self.cfg)
        return QNetwork(torso, feat, int(action_space.n))

    def make_policy(self, model: QNetwork, rng: np.random.Generator, greedy: bool = False,
                    n_envs: int = 1) -> Policy:
        q_of = numpy_scores(model.torso, model.q, model)
        if greedy:
            return Policy(lambda obs: q_of(obs).argmax(-1))
        finals = draw_final_epsilons(rng, n_envs, self.cfg.epsilon_finals, self.cfg.epsilon_probs)
        return EpsilonGreedy(q_of, model.q.out_features, rng, finals, self.cfg.epsilon_steps)

    def bootstrap_values(self, target: QNetwork, ro: Rollout) -> torch.Tensor:
        """next_values [T, B] from theta-: max_a Q(s_{t+1}, a) (SARSA: Q(s_{t+1}, a_{t+1})).

        n-step Q reads them only where its return is cut (s_T, truncations), but they are
        computed for every row in one batched forward: obs[t+1] is the true final
        observation of a truncation unless final_obs says otherwise (Rollout's contract)."""
        T, B = ro.actions.shape
        with torch.no_grad():
            x = ro.obs[1:].reshape(T * B, -1)
            q_next = target(x).view(T, B, -1)
            if self.name == "one-step-sarsa":
                a_next = torch.cat([ro.actions[1:], ro.next_actions.view(1, B)])
                nv = q_next.gather(-1, a_next.unsqueeze(-1)).squeeze(-1)
            else:
                nv = q_next.max(-1).values
            if ro.final_obs is not None:
                q_final = target(ro.final_obs)
                if self.name == "one-step-sarsa":
                    if ro.final_next_actions is None:
                        raise ValueError("one-step-sarsa needs the action chosen in each truncated "
                                         "episode's final observation (Rollout.final_next_actions)")
                    v_final = q_final.gather(-1, ro.final_next_actions.unsqueeze(-1)).squeeze(-1)
                else:
                    v_final = q_final.max(-1).values
                nv[ro.final_idx[:, 0], ro.final_idx[:, 1]] = v_final
            return nv

    def loss(self, model: QNetwork, ro: Rollout, target: QNetwork | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """sum_t (y_t - Q(s_t, a_t; theta'))^2, averaged over environments (Algorithms 1-2)."""
        T, B = ro.actions.shape
        q = model(ro.obs[:T].reshape(T * B, -1)).view(T, B, -1)
        q_taken = q.gather(-1, ro.actions.unsqueeze(-1)).squeeze(-1)
        nv = self.bootstrap_values(target, ro)
        if self.name == "n-step-q":
            y = n_step_returns(ro.rewards, ro.terminated, ro.truncated, nv, self.cfg.gamma)
        else:
            y = one_step_targets(ro.rewards, ro.terminated, nv, self.cfg.gamma)
        loss = (y - q_taken).pow(2).sum(0).mean()
        return loss, {"loss/q": loss.detach(), "q/taken": q_taken.detach().mean()}
