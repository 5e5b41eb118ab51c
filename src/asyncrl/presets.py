"""Named starting points for a run's hyperparameters (`--preset NAME`, `preset=NAME`).

A preset only fills in values: a config file and command-line flags (or keyword
arguments) given with it override any of them. config.yaml records the final values and
the preset that was used.

    auto        the default: chosen by the environment's family once its spaces are known
                (asyncrl.spaces.env_family): `classic`, `continuous` or `paper`
    classic     vector observations, discrete actions (CartPole, Acrobot, LunarLander, ...)
    continuous  vector observations, continuous actions (MuJoCo-style)
    paper       the paper's Atari settings, exactly (also for other image observations)
    atari       the former name of `paper`
    none        the Config fields' own defaults (the paper's Atari values, whatever the env)

Where each value comes from is said beside it: the paper (Mnih et al. 2016, supplementary
section 8), the authors' published correspondence (muupan/async-rl wiki), OpenAI Baselines
and the RL-Zoo (Stable-Baselines3), or measured on this project's 2-core machine (the
configs/ files and benchmarks/results/ hold the measurements).
"""
from __future__ import annotations

from .system import available_cores

PRESETS = ("auto", "classic", "continuous", "paper", "atari", "none")
#: the algorithms each family preset has values for (continuous actions: A3C and A2C only)
ALGOS_OF_PRESETS = {"classic": ("a3c", "a2c", "one-step-q", "one-step-sarsa", "n-step-q"),
                    "continuous": ("a3c", "a2c")}
#: what `auto` becomes for each environment family (asyncrl.spaces.env_family)
FAMILY_PRESETS = {"classic": "classic", "continuous": "continuous", "images": "paper"}


#: Gymnasium id prefixes of image environments beyond Atari, and the frames `--pixels auto`
#: gives them: colour, as the paper's other pixel domains (Labyrinth and TORCS: 84x84 RGB). Their
#: observations are images (or Dicts with an image entry), so `--preset auto` gives them the
#: paper's settings (the `images` family: FAMILY_PRESETS), frame skip, stack and size included.
PIXEL_ENVS = {"Vizdoom": "color", "CarRacing": "color"}


def pixel_mode(env_id: "str | None", pixels: str) -> "str | None":
    """'gray' or 'color' when the image preprocessing of `asyncrl.pixels` applies to `env_id`
    under `--pixels` (auto: the ids of PIXEL_ENVS; None for a factory), else None (off)."""
    if pixels in ("gray", "color"):
        return pixels
    if pixels == "auto" and isinstance(env_id, str):
        name = env_id.split(":", 1)[-1]
        return next((mode for prefix, mode in PIXEL_ENVS.items() if name.startswith(prefix)), None)
    return None


def preset_values(name: str, algo: str) -> dict:
    """The values preset `name` gives algorithm `algo` (empty for 'none' and for 'auto',
    which the Agent resolves to a family's preset once it knows the env's spaces)."""
    if name in ("paper", "atari"):
        return paper_values(algo)
    if name == "classic":
        return classic_values(algo)
    if name == "continuous":
        return continuous_values(algo)
    return {}


def classic_values(algo: str) -> dict:
    """Vector observations, discrete actions. Tuned on CartPole-v1 with 2 workers here; the
    MLP is two 64-unit tanh layers with separate policy and value networks (the Config's
    defaults, as SB3's MlpPolicy)."""
    if algo == "a3c":
        # configs/cartpole-a3c.yaml: t_max 10 and lr 2e-3 (the update dominates a step's cost on
        # CartPole: longer segments amortise it); beta 1e-3 (with 0.01 only 3 of 8 seeds held a
        # last-100 training mean of 475 within 300k steps, with 1e-3 all 8 did, 75k-210k steps)
        return {"steps": 300_000, "t_max": 10, "lr": 2e-3, "entropy_beta": 1e-3}
    if algo == "a2c":
        # configs/cartpole-a2c.yaml: RL-Zoo's CartPole A2C (8 envs, 5-step segments, beta 0);
        # lr 5e-3 measured here: seeds 0-4 solved in 70k-90k steps (7e-4: 350k-390k, one unsolved)
        return {"steps": 300_000, "workers": 8, "t_max": 5, "lr": 5e-3, "entropy_beta": 0.0}
    if algo == "one-step-q":
        # configs/cartpole-one-step-q.yaml: greedy evaluation 500 on seeds 0-2 at 500k steps
        # (benchmarks/results/cartpole_value_based.json)
        return {"steps": 500_000, "async_update": 5, "lr": 3e-3, "target_update": 1000, "epsilon_steps": 20_000,
                "eval_epsilon": 0.0}
    if algo == "one-step-sarsa":
        # configs/cartpole-one-step-sarsa.yaml: 500 on seeds 0-2 at 1M steps (same benchmark)
        return {"steps": 1_000_000, "async_update": 5, "lr": 1e-3, "target_update": 1000,
                "epsilon_steps": 20_000, "eval_epsilon": 0.0}
    if algo == "n-step-q":
        # configs/cartpole-n-step-q.yaml: 500 on seeds 0-2 at 400k steps (same benchmark)
        return {"steps": 400_000, "t_max": 10, "lr": 1e-3, "target_update": 5000, "epsilon_steps": 30_000,
                "eval_epsilon": 0.0}
    return {}


def continuous_values(algo: str) -> dict:
    """Vector observations, continuous actions (a Gaussian policy; A3C and A2C only). The
    paper's MuJoCo choices: entropy beta 1e-4 and separate policy and value networks (the
    Config's default for MLPs). t_max 5, lr 1e-3 and gamma 0.95 measured here on
    InvertedPendulum-v5 (configs/inverted-pendulum-a3c.yaml)."""
    values = {"steps": 300_000, "t_max": 5, "lr": 1e-3, "gamma": 0.95, "entropy_beta": 1e-4}
    if algo == "a2c":
        values["workers"] = 8
    return values


def paper_values(algo: str) -> dict:
    """The paper's Atari settings (section 5 and supplementary section 8; shared/ANCHORS.md)."""
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
        # With the paper's epsilon 0.1 the step is about lr x g / 0.32: A3C makes 16x more
        # updates per frame and learns Pong with it, A2C did not in 36M frames
        # (docs/benchmarks/pong-a2c.md).
        values.update(rms_eps=1e-5, value_coef=0.25, max_grad_norm=0.5 * values["t_max"])
    return values
