"""The rules of a Config: every problem, one line each, naming the bad value and what is
accepted. A field's own rules are here; the options that belong to one executor are
checked by that executor (`register`ed by asyncrl.executors: config knows none of them)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..atari.registry import is_atari_id
from ..paths import check_run_dir
from .limits import (INT_BOUNDS, MAX_HIDDEN, MAX_LAYERS, MIN_EPS, finite, int_field_problem, is_int,
                     is_number, list_problem, network_problem, seed_problem, worker_timeout_problem)

#: the executor classes whose option checks run with every validation (executors.base.Executor:
#: option_problems(cfg) and probe_problems(cfg), both -> list[str])
_CHECKERS: list = []


def register(checker: Any) -> None:
    """Have every validation also run `checker.option_problems(cfg)`, and every check() once
    nothing else is wrong `checker.probe_problems(cfg)`."""
    if checker not in _CHECKERS:
        _CHECKERS.append(checker)


def problems(cfg: Any) -> list[str]:
    """Every problem with the configuration `cfg` (empty when valid)."""
    p = field_problems(cfg)
    for checker in _CHECKERS:
        p.extend(checker.option_problems(cfg))
    return p


def probe_problems(cfg: Any) -> list[str]:
    """The checks that touch the outside: the run folder can be made and written
    (paths.check_run_dir), and the registered ones (a cluster's address)."""
    p = []
    if isinstance(cfg.run_dir, str) and cfg.run_dir:
        p.extend(q for q in [check_run_dir(cfg.run_dir)] if q)
    return p + [q for checker in _CHECKERS for q in checker.probe_problems(cfg)]


def field_problems(cfg: Any) -> list[str]:
    """The problems of the fields' own values and combinations. Every number is bounded
    (config.limits) and every check fails on NaN."""
    p: list[str] = []
    for f in fields(cfg):
        choices = f.metadata.get("choices")
        val = getattr(cfg, f.name)
        if choices and val not in choices:
            p.append(f"{f.name.replace('_', '-')} {val!r} is not one of: {', '.join(choices)}")
    if not cfg.env:
        p.append("env is empty; give a Gymnasium id such as CartPole-v1")
    ints_ok = _int_problems(cfg, p)
    p.extend(_float_problems(cfg))
    if {"seed", "workers", "max_worker_restarts"} <= ints_ok:
        p.extend(q for q in [seed_problem(cfg)] if q)
    finals = list_problem("epsilon_finals", cfg.epsilon_finals, 0.0, 1.0, "values in [0, 1]")
    if finals:
        p.append(finals)
    probs = cfg.epsilon_probs
    n = len(cfg.epsilon_finals) if isinstance(cfg.epsilon_finals, list) else 0
    if not isinstance(probs, list) or len(probs) != n or any(not (finite(q) and q >= 0) for q in probs) \
            or not abs(sum(probs) - 1.0) <= 1e-6:
        p.append(f"epsilon-probs must be {n} non-negative numbers summing to 1 "
                 f"(one per epsilon-finals value), got {probs}")
    if cfg.fused_optimizer == "on" and cfg.optimizer not in ("shared-rmsprop", "rmsprop"):
        p.append(f"fused-optimizer on is for optimizer shared-rmsprop or rmsprop, got optimizer "
                 f"{cfg.optimizer!r} (use fused-optimizer auto or off)")
    if cfg.net == "lstm" and cfg.algo not in ("a3c", "a2c"):
        p.append(f"net 'lstm' is available for a3c and a2c, not {cfg.algo}")
    elif cfg.net == "lstm" and cfg.shared_torso in (False, "no"):
        p.append("net 'lstm' shares its torso and core between policy and value (the paper's "
                 "A3C-LSTM); drop --no-shared-torso")
    hidden = cfg.hidden
    if not isinstance(hidden, list) or not hidden or any(not is_int(h) or h < 1 for h in hidden):
        p.append(f"hidden must be one or more positive integers, got {hidden}")
    elif len(hidden) > MAX_LAYERS or max(hidden) > MAX_HIDDEN:
        p.append(f"hidden must be 1 to {MAX_LAYERS} layers of at most {MAX_HIDDEN:,} units each, got "
                 f"{hidden if len(hidden) <= 10 else f'{len(hidden)} layers'}")
    elif "lstm_size" in ints_ok:
        p.extend(q for q in [network_problem(cfg, is_atari_id(cfg.env) if isinstance(cfg.env, str) else False)] if q)
    if cfg.wandb:
        p.extend(q for q in [_wandb_problem(cfg)] if q)
    elif cfg.wandb_project != "asyncrl":
        p.append(f"wandb-project {cfg.wandb_project!r} names the W&B project of a run that logs there: "
                 f"add --wandb (or drop wandb-project)")
    p.extend(q for q in [_obs_keys_problem(cfg.obs_keys)] if q)
    return p


def _obs_keys_problem(keys: Any) -> str | None:
    """obs-keys: distinct, non-empty names (whether the env's Dict has them is checked when
    the env is made: pixels.KeepKeys)."""
    if not isinstance(keys, list) or any(not isinstance(k, str) or not k.strip() for k in keys):
        return f"obs-keys must be names of Dict entries (non-empty strings), got {keys!r}"
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        return f"obs-keys names the entry {twice!r} twice; name each entry once, got {keys}"
    return None


def _wandb_problem(cfg: Any) -> str | None:
    """--wandb writes into the run folder, through the wandb package (the wandb extra)."""
    import importlib.util

    if not cfg.run_dir:
        return "wandb writes into the run folder: give run-dir"
    if importlib.util.find_spec("wandb") is None:
        return "wandb needs the wandb package: pip install 'asyncrl[wandb]'"
    if not isinstance(cfg.wandb_project, str) or not cfg.wandb_project.strip() or len(cfg.wandb_project) > 128 \
            or any(c in cfg.wandb_project for c in "/\\#?%:"):
        return (f"wandb-project must be a name of 1 to 128 characters without / \\ # ? % :, "
                f"got {cfg.wandb_project!r}")
    return None


#: the message for a value below an integer field's lowest, word for word as it always was
_LOW = {
    "workers": "workers must be >= 1, got {}",
    "steps": "steps must be a positive integer, got {}",
    "t_max": "t-max must be >= 1, got {}",
    "async_update": "async-update must be >= 1, got {}",
    "target_update": "target-update must be >= 1 global steps, got {}",
    "epsilon_steps": "epsilon-steps must be >= 0, got {}",
    "lstm_size": "lstm-size must be >= 1, got {}",
    "noop_max": "noop-max must be >= 0, got {}",
    "frame_skip": "frame-skip must be >= 1, got {}",
    "frame_stack": "frame-stack must be >= 1, got {}",
    "screen_size": "screen-size must be >= 8, got {}",
    "torch_threads": "torch-threads must be >= 0 (0: auto), got {}",
    "seed": "seed must be >= 0, got {}",
    "log_steps": "log-steps must be >= 0 (0: log by time), got {}",
    "keep_checkpoints": "keep-checkpoints must be >= 0 (0: latest.pt only), got {}",
    "max_worker_restarts": "max-worker-restarts must be >= 0, got {}",
    "max_nonfinite_updates": "max-nonfinite-updates must be >= 0 (0: never stop), got {}",
    "eval_episodes": "eval-episodes must be >= 0, got {}",
    "eval_every": "eval-every must be >= 0 global steps (0: only at the end), got {}",
    "workers_per_node": "workers-per-node must be >= 0 (0: spread over the nodes), got {}",
    "sync_updates": "sync-updates must be >= 0 (0: by time only), got {}",
    "learners": "learners must be >= 0 (0: one per node), got {}",
}


def _int_problems(cfg: Any, p: list[str]) -> set[str]:
    """Append the integer fields' problems to p; return the names of those that are fine."""
    ok = set()
    for name in INT_BOUNDS:
        value = getattr(cfg, name)
        problem = int_field_problem(name, value, _LOW[name].format(value))
        if problem:
            p.append(problem)
        else:
            ok.add(name)
    return ok


def _float_problems(cfg: Any) -> list[str]:
    """The float fields: each finite (stop-return may be inf: never stop) and in its range."""
    p = []
    rules = (   # name, accepted (a test NaN fails), what is accepted
        ("lr", lambda v: finite(v) and v > 0, "a finite number > 0"),
        ("gamma", lambda v: finite(v) and 0 < v <= 1, "in (0, 1]"),
        ("entropy_beta", lambda v: finite(v) and v >= 0, "a finite number >= 0"),
        ("value_coef", lambda v: finite(v) and v >= 0, "a finite number >= 0"),
        ("max_grad_norm", lambda v: finite(v) and v >= 0, "a finite number >= 0 (0 disables clipping)"),
        ("rms_alpha", lambda v: finite(v) and 0 <= v < 1, "in [0, 1)"),
        ("rms_eps", lambda v: finite(v) and v >= MIN_EPS, f"a finite number >= {MIN_EPS:g} (float32 keeps it)"),
        ("sgd_momentum", lambda v: finite(v) and 0 <= v < 1, "in [0, 1)"),
        ("adam_beta1", lambda v: finite(v) and 0 <= v < 1, "in [0, 1)"),
        ("adam_beta2", lambda v: finite(v) and 0 <= v < 1, "in [0, 1)"),
        ("adam_eps", lambda v: finite(v) and v >= MIN_EPS, f"a finite number >= {MIN_EPS:g} (float32 keeps it)"),
        ("sticky_actions", lambda v: finite(v) and 0 <= v <= 1, "a probability in [0, 1]"),
        ("eval_epsilon", lambda v: finite(v) and 0 <= v <= 1, "in [0, 1]"),
        ("log_interval", lambda v: finite(v) and v > 0, "a finite number > 0 seconds"),
        ("checkpoint_interval", lambda v: finite(v) and v > 0, "a finite number > 0 seconds"),
        ("sync_seconds", lambda v: finite(v) and 0 < v <= 86_400, "a number of seconds > 0 and at most 86400"),
        ("stop_return", lambda v: is_number(v) and v == v and v != float("-inf"),
         "a number, or inf (never stop early)"),
        ("stop_eval_return", lambda v: is_number(v) and v == v and v != float("-inf"),
         "a number, or inf (never stop early)"),
    )
    for name, accepted, what in rules:
        value = getattr(cfg, name)
        if not accepted(value):
            p.append(f"{name.replace('_', '-')} must be {what}, got {value}")
    problem = worker_timeout_problem(cfg.worker_timeout)
    if problem:
        p.append(problem)
    return p
