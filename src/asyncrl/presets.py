"""Named starting points for a run's hyperparameters (`--preset NAME`, `preset=NAME`).

A preset only fills in values: a config file and command-line flags (or keyword
arguments) given with it override any of them. config.yaml records the final values.
"""
from __future__ import annotations

from .system import available_cores

PRESETS = ("none", "atari")


def preset_values(name: str, algo: str) -> dict:
    """The values preset `name` gives algorithm `algo` (empty for 'none')."""
    if name != "atari":
        return {}
    # The paper's Atari settings (section 5 and supplementary section 8; shared/ANCHORS.md):
    # 16 actor-learners, t_max = I_AsyncUpdate = 5, gamma 0.99, entropy beta 0.01, RMSProp
    # with statistics shared across threads (alpha 0.99, epsilon 0.1 inside the square root),
    # lr 7e-4 annealed linearly to 0, gradient norm clipped at 40, target network copied every
    # 40,000 frames (10,000 agent steps), epsilon-greedy finals {0.1, 0.01, 0.5} with
    # probabilities {0.4, 0.3, 0.3} annealed over 4M frames (1M agent steps); rewards clipped
    # to [-1, 1]; the paper's CNN (net auto on image observations). Steps are agent steps
    # (4 emulator frames each): 10M steps = 40M frames, the horizon of the paper's Figure 1 games.
    values = {
        "steps": 10_000_000, "t_max": 5, "async_update": 5, "gamma": 0.99, "entropy_beta": 0.01,
        "value_coef": 0.5, "optimizer": "shared-rmsprop", "rms_alpha": 0.99, "rms_eps": 0.1,
        "lr": 7e-4, "lr_anneal": True, "max_grad_norm": 40.0, "target_update": 10_000,
        "epsilon_steps": 1_000_000, "epsilon_finals": [0.1, 0.01, 0.5], "epsilon_probs": [0.4, 0.3, 0.3],
        "net": "auto", "clip_rewards": "yes", "noop_max": 30, "frame_skip": 4, "frame_stack": 4,
        "screen_size": 84, "sticky_actions": 0.0,
        # a value-based method is evaluated epsilon-greedily with 0.05, as DQN-style results are
        "eval_epsilon": 0.0 if algo in ("a3c", "a2c") else 0.05,
    }
    if algo != "a2c":
        values["workers"] = min(16, available_cores())   # 16 "where cores allow"
    else:
        # The paper has no A2C. The synchronous variant's Atari settings are OpenAI Baselines'
        # and the RL-Zoo's (Stable-Baselines3): 16 environments, RMSProp epsilon 1e-5 inside
        # the square root (TensorFlow's RMSProp, as ours), gradient norm clipped at 0.5 on the
        # loss averaged over the 80 samples, and the RL-Zoo's value coefficient 0.25 on the
        # squared error (Baselines: 0.5). Our loss sums over a segment's t_max = 5 steps (and
        # averages over environments), so its gradient is 5x theirs: the same clip is 2.5.
        # With the paper's epsilon
        # 0.1 the step is about lr x g / 0.32: A3C makes 16x more updates per frame and learns
        # Pong with it, A2C did not in 36M frames (docs/benchmarks.md, "Learning Pong with A2C").
        values.update(rms_eps=1e-5, value_coef=0.25, max_grad_norm=0.5 * values["t_max"])
    return values
