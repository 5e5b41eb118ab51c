"""The rules of a Config: every problem, one line each, naming the bad value and what is
accepted. A field's own rules are here; the options that belong to one executor are
checked by that executor (`register`ed by asyncrl.executors: config knows none of them)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

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
    """The registered checks that touch the outside (a cluster's address)."""
    return [q for checker in _CHECKERS for q in checker.probe_problems(cfg)]


def field_problems(cfg: Any) -> list[str]:
    """The problems of the fields' own values and combinations."""
    p: list[str] = []
    p: list[str] = []
    for f in fields(cfg):
        choices = f.metadata.get("choices")
        val = getattr(cfg, f.name)
        if choices and val not in choices:
            p.append(f"{f.name.replace('_', '-')} {val!r} is not one of: {', '.join(choices)}")
    if not cfg.env:
        p.append("env is empty; give a Gymnasium id such as CartPole-v1")
    if cfg.workers < 1:
        p.append(f"workers must be >= 1, got {cfg.workers}")
    if cfg.steps < 1:
        p.append(f"steps must be a positive integer, got {cfg.steps}")
    if cfg.t_max < 1:
        p.append(f"t-max must be >= 1, got {cfg.t_max}")
    if cfg.async_update < 1:
        p.append(f"async-update must be >= 1, got {cfg.async_update}")
    if cfg.target_update < 1:
        p.append(f"target-update must be >= 1 global steps, got {cfg.target_update}")
    if cfg.epsilon_steps < 0:
        p.append(f"epsilon-steps must be >= 0, got {cfg.epsilon_steps}")
    if not cfg.epsilon_finals or any(not 0 <= e <= 1 for e in cfg.epsilon_finals):
        p.append(f"epsilon-finals must be values in [0, 1], got {cfg.epsilon_finals}")
    if len(cfg.epsilon_probs) != len(cfg.epsilon_finals) or any(q < 0 for q in cfg.epsilon_probs) \
            or abs(sum(cfg.epsilon_probs) - 1.0) > 1e-6:
        p.append(f"epsilon-probs must be {len(cfg.epsilon_finals)} non-negative numbers summing to 1 "
                 f"(one per epsilon-finals value), got {cfg.epsilon_probs}")
    if not 0 < cfg.lr < float("inf"):
        p.append(f"lr must be a finite number > 0, got {cfg.lr}")
    if not 0 < cfg.gamma <= 1:
        p.append(f"gamma must be in (0, 1], got {cfg.gamma}")
    if not cfg.entropy_beta >= 0:
        p.append(f"entropy-beta must be >= 0, got {cfg.entropy_beta}")
    if not cfg.value_coef >= 0:
        p.append(f"value-coef must be >= 0, got {cfg.value_coef}")
    if not cfg.max_grad_norm >= 0:
        p.append(f"max-grad-norm must be >= 0 (0 disables clipping), got {cfg.max_grad_norm}")
    if not 0 <= cfg.rms_alpha < 1:
        p.append(f"rms-alpha must be in [0, 1), got {cfg.rms_alpha}")
    if not 0 <= cfg.sgd_momentum < 1:
        p.append(f"sgd-momentum must be in [0, 1), got {cfg.sgd_momentum}")
    if not cfg.rms_eps > 0:
        p.append(f"rms-eps must be > 0, got {cfg.rms_eps}")
    if cfg.fused_optimizer == "on" and cfg.optimizer not in ("shared-rmsprop", "rmsprop"):
        p.append(f"fused-optimizer on is for optimizer shared-rmsprop or rmsprop, got optimizer "
                 f"{cfg.optimizer!r} (use fused-optimizer auto or off)")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            p.append(f"{name.replace('_', '-')} must be in [0, 1), got {getattr(cfg, name)}")
    if not cfg.adam_eps > 0:
        p.append(f"adam-eps must be > 0, got {cfg.adam_eps}")
    if cfg.lstm_size < 1:
        p.append(f"lstm-size must be >= 1, got {cfg.lstm_size}")
    if cfg.net == "lstm" and cfg.algo not in ("a3c", "a2c"):
        p.append(f"net 'lstm' is available for a3c and a2c, not {cfg.algo}")
    elif cfg.net == "lstm" and cfg.shared_torso in (False, "no"):
        p.append("net 'lstm' shares its torso and core between policy and value (the paper's "
                 "A3C-LSTM); drop --no-shared-torso")
    if not cfg.hidden or any((not isinstance(h, int)) or h < 1 for h in cfg.hidden):
        p.append(f"hidden must be one or more positive integers, got {cfg.hidden}")
    if not cfg.log_interval > 0:
        p.append(f"log-interval must be > 0 seconds, got {cfg.log_interval}")
    if not cfg.checkpoint_interval > 0:
        p.append(f"checkpoint-interval must be > 0 seconds, got {cfg.checkpoint_interval}")
    if cfg.log_steps < 0:
        p.append(f"log-steps must be >= 0 (0: log by time), got {cfg.log_steps}")
    for name, low in (("noop_max", 0), ("frame_skip", 1), ("frame_stack", 1), ("screen_size", 8)):
        if getattr(cfg, name) < low:
            p.append(f"{name.replace('_', '-')} must be >= {low}, got {getattr(cfg, name)}")
    if not 0 <= cfg.sticky_actions <= 1:
        p.append(f"sticky-actions must be a probability in [0, 1], got {cfg.sticky_actions}")
    if not 0 <= cfg.eval_epsilon <= 1:
        p.append(f"eval-epsilon must be in [0, 1], got {cfg.eval_epsilon}")
    if cfg.torch_threads < 0:
        p.append(f"torch-threads must be >= 0 (0: auto), got {cfg.torch_threads}")
    if cfg.keep_checkpoints < 0:
        p.append(f"keep-checkpoints must be >= 0 (0: latest.pt only), got {cfg.keep_checkpoints}")
    if cfg.max_worker_restarts < 0:
        p.append(f"max-worker-restarts must be >= 0, got {cfg.max_worker_restarts}")
    if not cfg.worker_timeout >= 0:
        p.append(f"worker-timeout must be >= 0 seconds (0: no timeout), got {cfg.worker_timeout}")
    if cfg.max_nonfinite_updates < 0:
        p.append(f"max-nonfinite-updates must be >= 0 (0: never stop), got {cfg.max_nonfinite_updates}")
    if cfg.eval_episodes < 0:
        p.append(f"eval-episodes must be >= 0, got {cfg.eval_episodes}")
    return p
