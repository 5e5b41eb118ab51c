"""Continuing a run folder: `asyncrl train --resume --run-dir D` (and `--resume auto`).

The folder stores everything a run needs (its checkpoint holds the algorithm, the config,
the model, the optimiser state, the global step and the learning-rate schedule), so a
resume needs the folder alone. Flags given with it are compared with what is stored: a
value equal to the stored one (the original command repeated) is accepted, a changed value
is refused naming both, except for the options in RESUME_OPTIONS (how faults and
checkpoints are handled, not what is learned) and `steps`, which may be raised to train
longer. Raising `steps` re-targets the paper's linear learning-rate schedule: from the
run's start it anneals lr to 0 at the new total, exactly the schedule a run started with
that `steps` would have had (so the rate goes up at the resume from where the shorter
schedule had brought it, e.g. from 0 for a finished run).
"""
from __future__ import annotations

import os
from typing import Any

from .api import Agent, load
from .checkpoint import step_checkpoints
from .config import Config
from .errors import ConfigError
from .presets import FAMILY_PRESETS
from .run import load_resumable
from .spaces import env_family

#: options that a --resume may change: how faults and checkpoints are handled, not what is learned
RESUME_OPTIONS = ("checkpoint_interval", "keep_checkpoints", "max_worker_restarts", "worker_timeout",
                  "max_nonfinite_updates", "ray_address", "fused_optimizer")


def has_checkpoint(run_dir: str) -> bool:
    """The folder holds a checkpoint to resume from (checkpoints/latest.pt or a step-<N>.pt)."""
    folder = os.path.join(run_dir, "checkpoints")
    return os.path.exists(os.path.join(folder, "latest.pt")) or bool(step_checkpoints(folder))


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _same(stored: Config, key: str, value: Any, family_preset: str) -> bool:
    """`value` for field `key` is what the run stored: equal, or an `auto` that resolves to it
    (`--preset auto`: the env family's preset; `--executor auto`: the algorithm's executor)."""
    if value == getattr(stored, key):
        return True
    if key == "preset" and value == "auto":
        return stored.preset == family_preset
    if value == "auto":
        return getattr(stored.replace(**{key: value}).resolved(), key) == getattr(stored.resolved(), key)
    return False


def planned_config(agent: Agent, values: dict, run_dir: str) -> tuple[Config, int]:
    """The config and target step that `agent` (loaded from `run_dir`) resumes with, given the
    options `values` of the resume's command line; ConfigError naming the first changed value
    (and its stored value) that a resume may not change."""
    stored, target = agent.config, int(agent.schedule[1])
    family = FAMILY_PRESETS[env_family(agent.observation_space, agent.action_space)]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key == "steps":
            if value < target:
                raise ConfigError(f"--resume: --steps {value} is below the run's target of {target} steps stored in "
                                  f"{run_dir!r}; a resume may raise --steps (to train longer), not lower it")
            if value < agent.global_step:
                raise ConfigError(f"--resume: --steps {value} is below the run's global step {agent.global_step}")
            changes["steps"] = value
        elif key in RESUME_OPTIONS:
            changes[key] = value
        elif key != "run_dir" and not _same(stored, key, value, family):
            raise ConfigError(f"--resume: {_flag(key)} {_shown(value)} differs from the run's stored value "
                              f"{_shown(getattr(stored, key))} in {run_dir!r}; a resume continues the saved "
                              f"configuration (start a new run to change it; a resume may raise --steps and change "
                              f"{', '.join(_flag(k) for k in RESUME_OPTIONS)})")
    cfg = stored.replace(run_dir=run_dir, **changes).check()     # the folder may have moved
    return cfg, max(target, changes.get("steps", target))


def load_for_resume(run_dir: str, algo: str | None = None, env: str | None = None, values: dict | None = None,
                    progress: bool | None = False) -> Agent:
    """The agent that continues a run folder (run.load_resumable: latest.pt, or the newest
    readable step-<N>.pt), holding the folder's lock (ConfigError naming the process that
    holds it), its config and target step set from `values` (planned_config). `algo` and
    `env`, where given, must be the folder's (ConfigError). A saved env `module:Id` is
    trusted only when the caller named it (`env`): a checkpoint is data, and making that env
    imports the module. Every refusal comes before anything in the folder changes."""
    plan: dict[str, Any] = {}

    def check(agent: Agent) -> None:
        saved = agent.config.env
        if (algo is not None and agent.algo != algo) or (env is not None and saved != env):
            raise ConfigError(f"--resume: {run_dir!r} holds a run of {agent.algo} on {saved}, "
                              f"not {algo or agent.algo} on {env or saved}")
        if env is None and ":" in saved:
            raise ConfigError(f"--resume: {run_dir!r} holds a run on {saved!r}, which imports module "
                              f"{saved.split(':', 1)[0]!r} (and runs its code); a checkpoint is data, so name the env "
                              f"yourself if you trust that module: --env {saved}")
        plan["config"], plan["target"] = planned_config(agent, dict(values or {}), run_dir)

    agent, lock = load_resumable(run_dir, lambda path: load(path, progress=progress, trust_env_module=env is not None), check)
    agent.config = plan["config"]
    agent.schedule = (agent.schedule[0], plan["target"])
    agent._run_lock = lock
    return agent
