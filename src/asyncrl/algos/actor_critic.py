"""Advantage actor-critic: A3C under the hogwild executor, A2C under sync (paper, Alg. 3)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from ..envs import check_observation_space, require_discrete_actions
from ..models import ActorCritic, build_torso, numpy_scores
from ..returns import n_step_returns
from ..rollout import Rollout
from .base import Algorithm, Policy


def sample_categorical(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample a ~ softmax(logits) per row by the Gumbel-max trick: argmax(logits + G),
    G = -log(-log(U)). Exact, and a few NumPy calls instead of softmax + multinomial."""
    g = rng.random(logits.shape)
    np.log(g, out=g)
    np.negative(g, out=g)
    np.log(g, out=g)
    return (logits - g).argmax(-1)


def actor_critic_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                      returns: torch.Tensor, entropy_beta: float, value_coef: float
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A3C's loss for one segment (paper, Alg. 3; gradients summed over time, as the
    paper accumulates them, and averaged over the B environments of a batch).

        policy  = -sum_t log pi(a_t|s_t) * (R_t - V(s_t))      (advantage detached)
        entropy =  sum_t H(pi(.|s_t))
        value   =  sum_t (R_t - V(s_t))^2
        loss    =  policy - entropy_beta * entropy + value_coef * value

    Shapes: logits [T, B, A], values [T, B], actions [T, B], returns [T, B] (no grad).
    """
    logp = F.log_softmax(logits, dim=-1)
    logp_a = logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    advantage = returns - values
    policy_loss = -(logp_a * advantage.detach()).sum(0).mean()
    entropy_sum = entropy.sum(0).mean()
    value_loss = advantage.pow(2).sum(0).mean()
    loss = policy_loss - entropy_beta * entropy_sum + value_coef * value_loss
    stats = {"loss/policy": policy_loss.detach(), "loss/value": value_loss.detach(),
             "loss/entropy": entropy_sum.detach()}
    return loss, stats


class ActorCriticAlgorithm(Algorithm):
    name = "a3c"
    stat_keys = ("loss/policy", "loss/value", "loss/entropy")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.name = cfg.algo

    def check_spaces(self, obs_space: gym.Space, action_space: gym.Space, env_name: str) -> None:
        check_observation_space(obs_space, env_name)
        require_discrete_actions(action_space, env_name, self.name, "supports Discrete actions so far "
                                 "(continuous actions are not supported yet)")

    def build_model(self, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
        torso, feat = build_torso(obs_space, self.cfg)
        value_torso = None if self.cfg.shared_torso else build_torso(obs_space, self.cfg)[0]
        return ActorCritic(torso, feat, int(action_space.n), value_torso)

    def make_policy(self, model: ActorCritic, rng: np.random.Generator, greedy: bool = False,
                    n_envs: int = 1) -> Policy:
        logits_of = numpy_scores(model.torso, model.policy, model.policy_logits)
        if greedy:
            return Policy(lambda obs: logits_of(obs).argmax(-1))
        return Policy(lambda obs: sample_categorical(logits_of(obs), rng))

    def loss(self, model: ActorCritic, ro: Rollout, target: None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        T, B = ro.actions.shape
        x = ro.obs.reshape((T + 1) * B, -1)
        if ro.final_obs is not None:
            x = torch.cat([x, ro.final_obs])
        logits, values = model(x)
        v_all = values[:(T + 1) * B].view(T + 1, B)
        next_values = v_all[1:].detach()
        if ro.final_obs is not None:  # truncated mid-segment: bootstrap from the true final obs
            next_values = next_values.clone()
            next_values[ro.final_idx[:, 0], ro.final_idx[:, 1]] = values[(T + 1) * B:].detach()
        returns = n_step_returns(ro.rewards, ro.terminated, ro.truncated, next_values, self.cfg.gamma)
        return actor_critic_loss(logits[:T * B].view(T, B, -1), v_all[:T], ro.actions, returns,
                                 self.cfg.entropy_beta, self.cfg.value_coef)
