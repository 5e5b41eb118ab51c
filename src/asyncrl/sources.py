"""Where every default comes from: each Config field's own default, and each value a family
preset sets instead (presets.py says why beside the value). `asyncrl train --help` and the
configuration docs show these tags; tests/unit/test_presets.py checks that no field and no
preset value is without one.
"""
from __future__ import annotations

#: the tags and what they mean
SOURCES = {
    "paper": "the paper (Mnih et al. 2016, section 5 and supplementary section 8)",
    "authors": "the authors' published correspondence (muupan/async-rl wiki; PFRL's reproduction uses it)",
    "baselines": "OpenAI Baselines and the RL-Zoo (Stable-Baselines3)",
    "sb3": "Stable-Baselines3's MlpPolicy",
    "atari": "the Atari literature's protocol (Machado et al. 2018; DQN's evaluation)",
    "torch": "PyTorch's own default (Kingma and Ba's values for Adam)",
    "measured": "measured on this project's 2-core machine (the configs and benchmarks/results/)",
    "asyncrl": "asyncrl's choice: how the run is carried out, not what it learns",
}

_BY_TAG = {
    "paper": ("t_max", "async_update", "target_update", "epsilon_steps", "epsilon_finals", "epsilon_probs",
              "lr_anneal", "gamma", "entropy_beta", "gaussian_mean", "optimizer", "rms_alpha", "max_grad_norm",
              "net", "lstm_size", "shared_torso", "clip_rewards", "noop_max", "frame_skip", "frame_stack",
              "screen_size", "sticky_actions"),
    "authors": ("lr", "rms_eps", "value_coef"),
    "sb3": ("hidden", "activation"),
    "atari": ("life_loss_terminal",),
    "measured": ("torch_threads", "fused_optimizer", "sync_seconds"),
    "torch": ("adam_beta1", "adam_beta2", "adam_eps"),
}
#: Config field -> the source of its own default (the fields not named above are options: asyncrl)
DEFAULT_SOURCES = {name: tag for tag, names in _BY_TAG.items() for name in names}

#: (preset, field) -> the source of the value the preset sets (every algorithm's)
PRESET_SOURCES = {
    **{("classic", k): "measured" for k in ("steps", "t_max", "lr", "entropy_beta", "async_update",
                                            "target_update", "epsilon_steps", "eval_epsilon")},
    ("classic", "workers"): "baselines",          # a2c's 8 environments (the RL-Zoo's CartPole)
    **{("continuous", k): "measured" for k in ("steps", "t_max", "lr", "gamma")},
    ("continuous", "entropy_beta"): "paper",      # the paper's MuJoCo value, 1e-4
    ("continuous", "workers"): "baselines",
    **{("paper", k): "paper" for k in DEFAULT_SOURCES if DEFAULT_SOURCES[k] == "paper"},
    **{("paper", k): "authors" for k in ("lr", "rms_eps", "value_coef")},
    ("paper", "steps"): "paper",                  # 10M agent steps = 40M frames, Figure 1's horizon
    ("paper", "workers"): "paper",                # 16, where cores allow
    ("paper", "eval_epsilon"): "atari",
}


def default_source(name: str) -> str:
    """The tag of Config field `name`'s own default."""
    return DEFAULT_SOURCES.get(name, "asyncrl")


def preset_source(preset: str, name: str, algo: str = "a3c") -> str:
    """The tag of the value preset `preset` sets for field `name` (KeyError: none recorded).
    A2C's paper preset takes its RMSProp epsilon, value coefficient and clip from Baselines
    and the RL-Zoo (the paper has no A2C)."""
    preset = "paper" if preset == "atari" else preset
    if preset == "paper" and algo == "a2c" and name in ("rms_eps", "value_coef", "max_grad_norm"):
        return "baselines"
    return PRESET_SOURCES[(preset, name)]


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_note(name: str, default, shown: str | None = None) -> str:
    """`default 0.0007 [authors]; classic preset: a3c 0.002, a2c 0.005 [measured]; ...`: the
    field's own default (`shown` instead of the value, where it depends on the machine) and
    its source, then what each family preset sets instead, by algorithm (the values `preset
    auto` picks by the env's family). For `--help`."""
    from .presets import ALGOS_OF_PRESETS, preset_values

    parts = [f"default {shown or _fmt(default)} [{default_source(name)}]"]
    for preset in ("classic", "continuous"):
        by_value: dict[str, list[str]] = {}
        tags = set()
        for algo in ALGOS_OF_PRESETS[preset]:
            values = preset_values(preset, algo)
            if name in values and values[name] != default:
                by_value.setdefault(_fmt(values[name]), []).append(algo)
                tags.add(preset_source(preset, name, algo))
        if by_value:
            said = ", ".join(f"{'/'.join(algos)} {value}" for value, algos in by_value.items())
            parts.append(f"{preset} preset: {said} [{', '.join(sorted(tags))}]")
    return "; ".join(parts)
