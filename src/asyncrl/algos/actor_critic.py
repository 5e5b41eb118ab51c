"""Advantage actor-critic (paper, Alg. 3): A3C when each actor-learner steps one environment,
A2C when B environments step in lockstep into one batched update.

Softmax policies for Discrete actions, Gaussian policies (linear mean, softplus variance;
or a mean squashed into the action bounds, --gaussian-mean tanh) for continuous ones;
feed-forward or with an LSTM core (truncated BPTT over a segment)."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import EnvError
from ..nets import (VAR_EPS, ActivationTape, ActorCritic, AtariCNN, RecurrentScores, build_torso,
                    gaussian_mean_var, mean_center_half, numpy_scores)
from ..returns import n_step_returns, n_step_returns_np
from ..rollout import Rollout
from ..spaces import check_observation_space, has_image, require_discrete_actions
from .base import Algorithm, Policy


def sample_categorical(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample a ~ softmax(logits) per row by the Gumbel-max trick: argmax(logits + G),
    G = -log(-log(U)). Exact, and a few NumPy calls instead of softmax + multinomial."""
    g = rng.random(logits.shape)
    np.log(g, out=g)
    np.negative(g, out=g)
    np.log(g, out=g)
    return (logits - g).argmax(-1)


def categorical_log_prob_entropy(logits: torch.Tensor, actions: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(a|s) and H(pi(.|s)) of a softmax policy: logits [..., A], actions [...] int."""
    logp = F.log_softmax(logits, dim=-1)
    logp_a = logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp_a, entropy


LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob_entropy(out: torch.Tensor, actions: torch.Tensor,
                              mean_squash: tuple[torch.Tensor, torch.Tensor] | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(a|s) and H(pi(.|s)) of the Gaussian policy, summed over the A independent
    dimensions: out [..., 2A] (the head: mean, or with mean_squash the mean before its squash;
    pre-softplus variance), actions [..., A] as sampled (unclipped); mean_squash: the model's
    (center, half) of the bounded mean (gaussian_mean_var).
        log N(a; mu, var) = -1/2 ((a - mu)^2 / var + log(2 pi var))
        H = 1/2 log(2 pi e var)
    """
    mu, var = gaussian_mean_var(out, mean_squash)
    log_var = torch.log(var)
    logp_a = -0.5 * ((actions - mu).pow(2) / var + LOG_2PI + log_var).sum(-1)
    entropy = 0.5 * (LOG_2PI + 1.0 + log_var).sum(-1)
    return logp_a, entropy


def policy_gradient_loss(logp_a: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor,
                         returns: torch.Tensor, entropy_beta: float, value_coef: float
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A3C's loss for one segment (paper, Alg. 3; gradients summed over time, as the
    paper accumulates them, and averaged over the B environments of a batch).

        policy  = -sum_t log pi(a_t|s_t) * (R_t - V(s_t))      (advantage detached)
        entropy =  sum_t H(pi(.|s_t))
        value   =  sum_t (R_t - V(s_t))^2
        loss    =  policy - entropy_beta * entropy + value_coef * value

    Shapes: all [T, B]; returns carry no gradient.
    """
    advantage = returns - values
    policy_loss = -(logp_a * advantage.detach()).sum(0).mean()
    entropy_sum = entropy.sum(0).mean()
    value_loss = advantage.pow(2).sum(0).mean()
    loss = policy_loss - entropy_beta * entropy_sum + value_coef * value_loss
    stats = {"loss/policy": policy_loss.detach(), "loss/value": value_loss.detach(),
             "loss/entropy": entropy_sum.detach()}
    return loss, stats


def actor_critic_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                      returns: torch.Tensor, entropy_beta: float, value_coef: float
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """policy_gradient_loss for a softmax policy. Shapes: logits [T, B, A], values [T, B],
    actions [T, B], returns [T, B] (no grad)."""
    logp_a, entropy = categorical_log_prob_entropy(logits, actions)
    return policy_gradient_loss(logp_a, entropy, values, returns, entropy_beta, value_coef)


def categorical_loss_grads(logits: np.ndarray, values: np.ndarray, actions: np.ndarray, returns: np.ndarray,
                           entropy_beta: float, value_coef: float
                           ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """actor_critic_loss for one environment in closed form, in NumPy: its gradient with
    respect to logits [T, A] and values [T] (actions [T] int, returns [T]), and its
    statistics. With pi = softmax(logits_t), H_t its entropy and A_t = R_t - V(s_t):

        d loss / d logits_t = -A_t (onehot(a_t) - pi) + entropy_beta * pi * (log pi + H_t)
        d loss / d V(s_t)   = -2 * value_coef * A_t

    the first from d(-log pi_a)/dz = -(onehot(a) - pi) (A_t is a constant: detached) and
    dH/dz = -pi * (log pi + H).
    """
    T = logits.shape[0]
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(logp)
    entropy = -(p * logp).sum(1)
    rows = np.arange(T)
    adv = returns - values
    d_logits = p * (adv[:, None] + entropy_beta * (logp + entropy[:, None]))
    d_logits[rows, actions] -= adv
    d_values = (-2.0 * value_coef) * adv
    stats = {"loss/policy": -float(np.dot(logp[rows, actions], adv)), "loss/value": float(np.dot(adv, adv)),
             "loss/entropy": float(entropy.sum())}
    return d_logits, d_values, stats


def softplus_np(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _numpy_mean(model: ActorCritic):
    """The Gaussian's mean [N, A] from the head's output rows [N, 2A] in NumPy, as
    gaussian_mean_var computes it."""
    a = model.n_actions
    if model.mean_squash is None:
        return lambda out: out[:, :a]
    center, half = (t.detach().cpu().numpy() for t in model.mean_squash)

    def squashed(out: np.ndarray) -> np.ndarray:
        mu = np.tanh(out[:, :a])
        mu *= half
        mu += center
        return mu
    return squashed


class ActorCriticAlgorithm(Algorithm):
    name = "a3c"
    stat_keys = ("loss/policy", "loss/value", "loss/entropy")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.name = cfg.algo

    def check_spaces(self, obs_space: gym.Space, action_space: gym.Space, env_name: str) -> None:
        check_observation_space(obs_space, env_name)
        if isinstance(action_space, gym.spaces.Box):
            if len(action_space.shape) != 1 or not np.all(np.isfinite(action_space.low)) \
                    or not np.all(np.isfinite(action_space.high)):
                raise EnvError(f"environment {env_name!r} has a continuous action space {action_space}; "
                               f"{self.name}'s Gaussian policy needs a 1-D Box with finite bounds")
            if self.cfg.gaussian_mean == "tanh" and not all(np.isfinite(x).all() for x in mean_center_half(
                    action_space.low, action_space.high)):
                raise EnvError(f"gaussian-mean tanh squashes the mean into the action bounds, and environment "
                               f"{env_name!r} has bounds too wide for float32 ({action_space}); use gaussian-mean "
                               f"linear, or rescale the actions")
            return
        require_discrete_actions(action_space, env_name, self.name, "supports Discrete actions (softmax "
                                 "policy) and 1-D Box actions (Gaussian policy)")
        if self.cfg.gaussian_mean != "linear":
            raise EnvError(f"gaussian-mean {self.cfg.gaussian_mean} bounds a Gaussian policy's mean, and "
                           f"environment {env_name!r} has {action_space} actions (a softmax policy): "
                           f"leave gaussian-mean at linear")

    def build_model(self, obs_space: gym.Space, action_space: gym.Space) -> ActorCritic:
        torso, feat = build_torso(obs_space, self.cfg)
        continuous = isinstance(action_space, gym.spaces.Box)
        n = int(action_space.shape[0]) if continuous else int(action_space.n)
        core = self.cfg.lstm_size if self.cfg.net == "lstm" else 0
        # the CNN's torso is shared (the paper's), a Dict's with an image entry too; an MLP's is not,
        # even on an image (--net mlp)
        cnn = isinstance(torso, AtariCNN) or (isinstance(obs_space, gym.spaces.Dict) and has_image(obs_space))
        shared = core or self.cfg.shares_torso(cnn=cnn)
        value_torso = None if shared else build_torso(obs_space, self.cfg)[0]
        bounds = (action_space.low, action_space.high) if continuous and self.cfg.gaussian_mean == "tanh" else None
        return ActorCritic(torso, feat, n, value_torso, continuous=continuous, core_size=core, mean_bounds=bounds)

    def make_policy(self, model: ActorCritic, rng: np.random.Generator, greedy: bool = False,
                    n_envs: int = 1) -> Policy:
        recurrent = RecurrentScores(model, n_envs) if model.recurrent else None
        tape = None
        if model.replayable and not greedy and model.value.weight.device.type == "cpu":
            # a learner's actor (one env, or n_envs in lockstep): keep the acting forwards
            # for the learner to replay
            tape = ActivationTape(model.torso, self.segment_length * n_envs)
            out_of = numpy_scores(model.torso, model.policy, lambda x: model.policy_out(x, tape), tape)
        else:
            out_of = recurrent or numpy_scores(model.torso, model.policy, model.policy_out)
        if model.continuous:
            a = model.n_actions
            mean = _numpy_mean(model)
            if greedy:
                return Policy(lambda obs: mean(out_of(obs)), recurrent)

            def sample(obs: np.ndarray) -> np.ndarray:
                out = out_of(obs)
                std = np.sqrt(softplus_np(out[:, a:]) + VAR_EPS)
                return mean(out) + std * rng.standard_normal(std.shape, dtype=np.float32)
            return Policy(sample, recurrent, tape, rows_independent=True)
        if greedy:
            return Policy(lambda obs: out_of(obs).argmax(-1), recurrent)
        return Policy(lambda obs: sample_categorical(out_of(obs), rng), recurrent, tape, rows_independent=True)

    @staticmethod
    def _replays(model: ActorCritic, ro: Rollout) -> bool:
        """A tape that holds the segment's acting forwards at the present parameters: the
        learner replays them (through autograd, or in closed form for one env)."""
        T = ro.rewards.shape[0]
        return ro.tape is not None and model.replayable and ro.tape.holds(ro.obs[:T], model.torso)

    @classmethod
    def _replays_one_env(cls, model: ActorCritic, ro: Rollout) -> bool:
        """_replays for a rollout of one environment whose segment cut no episode mid-way: its
        V(s_T) then bootstraps every row (a vector collector's truncation inside the segment
        brings final_obs, which this path ignores)."""
        return ro.rewards.shape[1] == 1 and ro.final_obs is None and cls._replays(model, ro)

    def gradients(self, model: ActorCritic, ro: Rollout, target: None = None) -> dict[str, float] | None:
        """One environment's CNN gradient in closed form: a softmax policy, one
        environment and a tape that holds the segment's acting forwards (as `loss` replays
        them). The heads, the loss and its gradient run in NumPy with no autograd graph (on
        Pong, one process: 2.6 against 3.6 ms for the learner's part of a segment,
        benchmarks/a3c_learner_ab.py); the CNN's backward is the replay's. None
        (differentiate `loss`) otherwise: a Gaussian policy's CNN learner replays the tape
        through autograd."""
        T = ro.rewards.shape[0]
        if model.continuous or not self._replays_one_env(model, ro):
            return None
        logits, values = model.replay_numpy(ro.tape, T)
        next_values = np.zeros((T, 1), np.float32)
        next_values[:T - 1, 0] = values[1:]
        if not ro.terminated[T - 1, 0]:
            next_values[T - 1, 0] = float(model.bootstrap_value(ro.tape, ro.obs[T]))
        returns = n_step_returns_np(ro.rewards.numpy(), ro.terminated.numpy(), ro.truncated.numpy(),
                                    next_values, self.cfg.gamma)[:, 0]
        d_logits, d_values, stats = categorical_loss_grads(logits, values, ro.actions.numpy()[:, 0], returns,
                                                           self.cfg.entropy_beta, self.cfg.value_coef)
        model.replay_grads(ro.tape, ro.obs[:T, 0], d_logits, d_values)
        return stats

    def loss(self, model: ActorCritic, ro: Rollout, target: None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        T, B = ro.rewards.shape
        if model.recurrent:
            idx = [] if ro.final_obs is None else ro.final_idx.tolist()
            pi, v_all, states = model.unroll(ro.obs, ro.state0, ro.starts, keep=[t for t, _ in idx])
            pi = pi[:T]
            next_values = v_all[1:].detach()
            if idx:  # continue each cut episode's state (after step t) into its final obs
                h = torch.stack([states[t][0][b] for t, b in idx])
                c = torch.stack([states[t][1][b] for t, b in idx])
                _, v_final, _ = model.step(ro.final_obs, (h, c))
                next_values = next_values.clone()
                next_values[ro.final_idx[:, 0], ro.final_idx[:, 1]] = v_final.detach()
        elif self._replays_one_env(model, ro):
            # one environment, replaying the acting forwards (unless an episode was cut
            # mid-segment): the acting forwards ran on these rows at these
            # parameters (theta'), so the backward replays their activations; only V(s_T)
            # needs a forward (none when s_T is terminal: its value is never read)
            out, values = model.replay(ro.tape, ro.obs[:T, 0])
            pi, v_all = out.view(T, 1, -1), values.view(T, 1)
            next_values = torch.zeros(T, 1)
            next_values[:T - 1] = v_all[1:].detach()
            if not ro.terminated[T - 1, 0]:
                next_values[T - 1] = model.bootstrap_value(ro.tape, ro.obs[T])
        elif model.costly_torso and B > 1:
            # a batch of images through the CNN: only s_0..s_{T-1} need gradients; V(s_T) and
            # V(final_obs) are computed apart without a graph (a sixth fewer rows through the
            # backward pass at t_max 5). For one environment the extra call costs more.
            # The acting forwards ran on s_0..s_{T-1} at these parameters: replayed when kept.
            x = ro.obs[:T].reshape(T * B, -1)
            out, values = model.replay(ro.tape, x) if self._replays(model, ro) else model(x)
            pi, v_all = out.view(T, B, -1), values.view(T, B)
            rest = ro.obs[T] if ro.final_obs is None else torch.cat([ro.obs[T], ro.final_obs])
            with torch.no_grad():
                v_rest = model(rest)[1]
            next_values = torch.cat([v_all[1:].detach(), v_rest[:B].view(1, B)])
            if ro.final_obs is not None:  # truncated mid-segment: bootstrap from the true final obs
                next_values[ro.final_idx[:, 0], ro.final_idx[:, 1]] = v_rest[B:]
        else:
            x = ro.obs.reshape((T + 1) * B, -1)
            if ro.final_obs is not None:
                x = torch.cat([x, ro.final_obs])
            out, values = model(x)
            v_all = values[:(T + 1) * B].view(T + 1, B)
            pi = out[:T * B].view(T, B, -1)
            next_values = v_all[1:].detach()
            if ro.final_obs is not None:  # truncated mid-segment: bootstrap from the true final obs
                next_values = next_values.clone()
                next_values[ro.final_idx[:, 0], ro.final_idx[:, 1]] = values[(T + 1) * B:].detach()
        returns = n_step_returns(ro.rewards, ro.terminated, ro.truncated, next_values, self.cfg.gamma)
        if model.continuous:
            logp_a, entropy = gaussian_log_prob_entropy(pi, ro.actions, model.mean_squash)
        else:
            logp_a, entropy = categorical_log_prob_entropy(pi, ro.actions)
        return policy_gradient_loss(logp_a, entropy, v_all[:T], returns, self.cfg.entropy_beta,
                                    self.cfg.value_coef)
