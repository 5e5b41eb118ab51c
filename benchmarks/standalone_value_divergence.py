"""Is the ReLU value divergence on CartPole asyncrl's bug, or the configuration's?

A standalone advantage actor-critic written with plain torch (no asyncrl code): separate
policy and value MLPs (64x64, orthogonal init: gain sqrt(2), 0.01 on the policy head, 1 on
the value head), one CartPole-v1 environment, 5-step returns, loss summed over the segment
(policy + 0.5 value - 0.01 entropy), Adam, the gradient's norm clipped at 40 (asyncrl's
default, the paper's Atari value) or not at all. Each run prints the mean V on the last
segment and the mean length of the last 20 episodes every 500 updates. No return can
exceed 1/(1-gamma) = 100. Value-only runs on a random policy's data are the control: there
V should settle near the true values of random play (V(s_0) ~20).

    python benchmarks/standalone_value_divergence.py [--updates 4000] [--lr 7e-4]

Prints one JSON object; benchmarks/results/standalone_value_divergence.json holds the
figures the README's "Default network" paragraph quotes.
"""
from __future__ import annotations

import argparse
import json
import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn

T, GAMMA = 5, 0.99


def mlp(act: type[nn.Module], out: int, gain: float) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(4, 64), act(), nn.Linear(64, 64), act(), nn.Linear(64, out))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, math.sqrt(2))
            nn.init.zeros_(m.bias)
    nn.init.orthogonal_(net[-1].weight, gain)
    return net


def returns(rewards: np.ndarray, terminal: np.ndarray, bootstrap: float) -> torch.Tensor:
    out, r = torch.zeros(T), bootstrap
    for t in range(T - 1, -1, -1):
        r = float(rewards[t]) + GAMMA * (0.0 if terminal[t] else 1.0) * r
        out[t] = r
    return out


def run(activation: str, updates: int, lr: float, learn_policy: bool, clip: float, seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    act = nn.ReLU if activation == "relu" else nn.Tanh
    vnet, pnet = mlp(act, 1, 1.0), mlp(act, 2, 0.01)
    params = list(vnet.parameters()) + (list(pnet.parameters()) if learn_policy else [])
    opt = torch.optim.Adam(params, lr=lr)
    env = gym.make("CartPole-v1")
    obs = env.reset(seed=seed)[0]
    rng = np.random.default_rng(seed)
    lengths, length, log = [], 0, []
    for u in range(1, updates + 1):
        o = np.zeros((T + 1, 4), np.float32)
        rew, term, acts = np.zeros(T, np.float32), np.zeros(T, bool), np.zeros(T, np.int64)
        for t in range(T):
            o[t] = obs
            if learn_policy:
                with torch.no_grad():
                    logits = pnet(torch.from_numpy(obs[None]).float())
                acts[t] = int(torch.distributions.Categorical(logits=logits).sample())
            else:
                acts[t] = int(rng.integers(2))
            obs, rew[t], term[t], trunc, _ = env.step(int(acts[t]))
            length += 1
            if term[t] or trunc:
                lengths.append(length)
                length, obs = 0, env.reset()[0]
        o[T] = obs
        x = torch.from_numpy(o)
        v = vnet(x).squeeze(-1)
        adv = returns(rew, term, float(v[T].detach())) - v[:T]
        loss = 0.5 * adv.pow(2).sum()
        if learn_policy:
            logp = torch.log_softmax(pnet(x[:T]), -1)
            logp_a = logp.gather(1, torch.from_numpy(acts)[:, None]).squeeze(1)
            entropy = -(logp.exp() * logp).sum(-1)
            loss = loss - (logp_a * adv.detach()).sum() - 0.01 * entropy.sum()
        opt.zero_grad()
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if u % 500 == 0:
            log.append({"updates": u, "mean_V_segment": round(float(v[:T].detach().mean()), 1),
                        "mean_episode_length_last_20": round(float(np.mean(lengths[-20:])), 1)})
    return log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=4000)
    ap.add_argument("--lr", type=float, default=7e-4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = {"updates": args.updates, "lr": args.lr, "optimizer": "adam", "t_max": T, "gamma": GAMMA}
    for name, act, policy, clip in (("actor_critic_relu_clip40", "relu", True, 40.0),
                                    ("actor_critic_relu_noclip", "relu", True, 0.0),
                                    ("actor_critic_tanh_clip40", "tanh", True, 40.0),
                                    ("value_only_random_policy_relu_clip40", "relu", False, 40.0),
                                    ("value_only_random_policy_relu_noclip", "relu", False, 0.0)):
        out[name] = run(act, args.updates, args.lr, policy, clip)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
