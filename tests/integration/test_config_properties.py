"""Property-based tests (Hypothesis) of issue 28's promise: any configuration, across every
Config field and including extreme, NaN, inf, negative and huge values, is either accepted
by validation or refused with one ConfigError line; an accepted one trains a few steps; and
through the CLI a refused one is exit code 2, one line on stderr, no run folder.

Settings (fixed, so that `make test` runs the same examples every time: derandomize, and no
example database written to disk):
  - test_any_config_is_accepted_or_refused_in_one_line: VALIDATE_EXAMPLES examples
  - test_an_accepted_config_trains_a_few_steps: RUN_EXAMPLES examples, each a CartPole run of
    at most 60 steps with 1 worker (about 1-2 s each)
  - test_a_refused_config_through_the_cli_is_exit_2_and_one_line: CLI_EXAMPLES examples
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tempfile
from dataclasses import fields

from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from asyncrl import cli
from asyncrl.api import AGENTS
from asyncrl.config import Config
from asyncrl.config.limits import INT_BOUNDS
from asyncrl.errors import ConfigError

VALIDATE_EXAMPLES = 700
RUN_EXAMPLES = 25
CLI_EXAMPLES = 300

NAN, INF = float("nan"), float("inf")
FIELDS = {f.name: f for f in fields(Config)}
FIXED = ("algo", "env")          # what the Agent and the CLI set themselves


def _kind(f: dataclasses.Field) -> type:
    return type(f.default_factory() if f.default is dataclasses.MISSING else f.default)


INT_EXTREMES = [-2**64, -2**63, -1, 0, 1, 2, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64,
                10**12, 10**12 + 1, 10**20, 10**30]
FLOAT_EXTREMES = [NAN, INF, -INF, -0.0, 0.0, 5e-324, 1e-300, 1e-9, 0.5, 0.999999, 1.0, 1.5, 1e300, -1.0,
                  1.7976931348623157e308]
STRING_EXTREMES = ["", "nan", "inf", "-inf", "1e400", "1e20", "-1", "1.5", "abc", "0x10", "yes", "a\nb"]


def _ints():
    return st.one_of(st.sampled_from(INT_EXTREMES), st.integers(-10**6, 10**6), st.integers())


def _floats():
    return st.one_of(st.sampled_from(FLOAT_EXTREMES), st.floats())


def _scalar():
    return st.one_of(_ints(), _floats(), st.sampled_from(STRING_EXTREMES), st.booleans(), st.none())


def _value(f: dataclasses.Field):
    """Anything for field f: mostly of its own type, at the extremes, and sometimes not."""
    kind = _kind(f)
    if kind is int:
        own = _ints()
    elif kind is float:
        own = _floats()
    elif kind is bool:
        own = st.booleans()
    elif kind is list:
        item = _ints() if f.metadata.get("item_type") is int else _floats()
        own = st.one_of(st.lists(item, max_size=4), st.lists(_scalar(), max_size=3),
                        st.lists(st.integers(1, 3), min_size=101, max_size=102))
    elif f.name == "run_dir":
        own = st.sampled_from(["", "/proc/foo", "/sys/foo/bar", "/dev/null/x"])
    elif f.metadata.get("choices"):
        own = st.one_of(st.sampled_from(f.metadata["choices"]), st.text(max_size=6))
    else:
        own = st.text(max_size=12)
    return st.one_of(own, own, own, _scalar())


OPTIONAL = {name: _value(f) for name, f in FIELDS.items() if name not in FIXED}

#: valid values of the float fields, their edges included
SANE_FLOATS = {
    "lr": [5e-324, 7e-4, 1e300], "gamma": [5e-324, 0.99, 1.0], "entropy_beta": [0.0, 1e300],
    "value_coef": [0.0, 1e300], "max_grad_norm": [0.0, 1e300], "rms_alpha": [0.0, 0.999999],
    "rms_eps": [1e-30, 1e300], "sgd_momentum": [0.0, 0.999999], "adam_beta1": [0.0, 0.999999],
    "adam_beta2": [0.0, 0.999999], "adam_eps": [1e-30, 1e300], "sticky_actions": [0.0, 1.0],
    "eval_epsilon": [0.0, 1.0], "log_interval": [5e-324, 1e300], "checkpoint_interval": [5e-324, 1e300],
    "worker_timeout": [0.0, 1.0, 1e6], "stop_return": [INF, -1e300, 1e300], "stop_eval_return": [INF, -1e300, 1e300],
}


def _sane(f: dataclasses.Field):
    """A value field f accepts on its own (the combinations may still be refused)."""
    kind = _kind(f)
    if f.name in INT_BOUNDS:
        low, high = INT_BOUNDS[f.name]
        return st.one_of(st.sampled_from([low, high]), st.integers(low, min(high, low + 1000)))
    if f.name in SANE_FLOATS:
        return st.one_of(st.sampled_from(SANE_FLOATS[f.name]), st.floats(min(SANE_FLOATS[f.name]),
                                                                          max(SANE_FLOATS[f.name])))
    if f.name == "hidden":
        return st.lists(st.sampled_from([1, 64, 1_000_000]), min_size=1, max_size=3)
    if f.name in ("epsilon_finals", "epsilon_probs"):
        return st.just(f.default_factory())
    if f.metadata.get("choices"):
        return st.sampled_from(f.metadata["choices"])
    if kind is bool:
        return st.booleans()
    return st.just("")                   # run_dir, ray_address


SANE = {name: _sane(f) for name, f in FIELDS.items() if name not in FIXED}
#: a configuration: some fields at valid values (edges included), up to three anything at all
CONFIGS = st.tuples(
    st.fixed_dictionaries({}, optional=SANE),
    st.lists(st.sampled_from(sorted(OPTIONAL)), max_size=3, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: OPTIONAL[n] for n in names})),
).map(lambda parts: {**parts[0], **parts[1]})


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, repr(message)


@settings(max_examples=VALIDATE_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(values=CONFIGS, algo=st.sampled_from(["a3c", "a2c", "one-step-q", "one-step-sarsa", "n-step-q"]))
def test_any_config_is_accepted_or_refused_in_one_line(values, algo):
    try:
        cfg = Config.from_dict({**values, "algo": algo, "env": "CartPole-v1"}, source="test")
    except ConfigError as exc:
        _one_line(str(exc))
        event("refused while coerced")
        return
    found = cfg.validate()
    event("refused by validation" if found else "accepted by validation")
    for problem in found:
        _one_line(problem)
    if cfg.executor != "ray":            # check() probes a Ray cluster's address: not here
        try:
            cfg.check()
        except ConfigError as exc:
            _one_line(str(exc))


# ------------------------------------------------------------------ accepted -> it trains
def _finite(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


REQUIRED = {"steps": st.integers(1, 60), "eval_episodes": st.integers(0, 1)}     # a short run
RUNNABLE = {      # values within the bounds, at their edges too, that make a short CartPole run (lr at most
    # the paper's 7e-4 and Adam's beta2 from 0.9: a real divergence, a documented exit 4, is not the subject)
    "t_max": st.integers(1, 20), "async_update": st.integers(1, 10),
    "target_update": st.sampled_from([1, 7, 10**12]), "epsilon_steps": st.sampled_from([0, 1, 10**12]),
    "lr": st.sampled_from([1e-300, 1e-8, 7e-4]), "lr_anneal": st.booleans(),
    "gamma": st.sampled_from([5e-324, 0.5, 0.99, 1.0]), "entropy_beta": _finite(0, 1),
    "value_coef": _finite(0, 10), "max_grad_norm": st.sampled_from([0.0, 1e-300, 0.5, 40.0]),
    "optimizer": st.sampled_from(["shared-rmsprop", "rmsprop", "adam", "sgd"]),
    "rms_alpha": st.sampled_from([0.0, 0.99, 0.999999]), "rms_eps": st.sampled_from([1e-30, 1e-5, 0.1, 1.0]),
    "sgd_momentum": st.sampled_from([0.0, 0.9]), "adam_beta1": _finite(0, 0.99), "adam_beta2": _finite(0.9, 0.999),
    "adam_eps": st.sampled_from([1e-30, 1e-8, 1.0]), "fused_optimizer": st.just("off"),
    "hidden": st.lists(st.integers(1, 16), min_size=1, max_size=3), "lstm_size": st.integers(1, 16),
    "activation": st.sampled_from(["relu", "tanh"]), "shared_torso": st.sampled_from(["auto", "yes"]),
    "seed": st.sampled_from([0, 1, 2**31, 2**32 - 1 - 20_000 - 3_000]), "max_worker_restarts": st.integers(0, 3),
    "eval_epsilon": _finite(0, 1),
    "log_interval": st.sampled_from([1e-9, 0.5, 1e300]), "log_steps": st.sampled_from([0, 1, 10**12]),
    "keep_checkpoints": st.integers(0, 2), "worker_timeout": st.sampled_from([0.0, 300.0, 1e6]),
    "max_nonfinite_updates": st.sampled_from([0, 1, 10**12]), "stop_return": st.sampled_from([INF, 1e300, -5.0]),
    "clip_rewards": st.sampled_from(["auto", "yes", "no"]), "sticky_actions": _finite(0, 1),
    "eval_every": st.sampled_from([0, 0, 0, 7]),
}


@settings(max_examples=RUN_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.generate])   # no slow shrinking of runs
@given(values=st.fixed_dictionaries(REQUIRED, optional=RUNNABLE),
       algo=st.sampled_from(["a3c", "a2c", "one-step-q", "one-step-sarsa", "n-step-q"]),
       lstm=st.booleans(), epsilons=st.sampled_from([{}, {"epsilon_finals": [0.0, 1.0], "epsilon_probs": [0.5, 0.5]},
                                                       {"epsilon_finals": [1e-300], "epsilon_probs": [1.0]}]),
       in_folder=st.booleans())
def test_an_accepted_config_trains_a_few_steps(values, algo, lstm, epsilons, in_folder):
    values = {**values, **epsilons, "net": "lstm" if lstm and algo in ("a3c", "a2c") else "mlp"}
    if algo == "a2c":
        values["vec_env"] = "inline"
    folder = tempfile.mkdtemp(prefix="asyncrl-prop-")
    try:
        try:
            agent = AGENTS[algo]("CartPole-v1", workers=1, run_dir=os.path.join(folder, "run") if in_folder else None,
                                 **values)
        except ConfigError as exc:
            _one_line(str(exc))
            event("refused")
            return
        event("trained")
        steps = agent.config.steps
        agent.learn()
        assert agent.global_step <= steps
        if agent.config.stop_return == INF:
            assert agent.global_step == steps
        if in_folder:
            assert os.path.exists(os.path.join(folder, "run", "checkpoints", "final.pt"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ the CLI: exit 2, one line
def _bad_values(name: str) -> list[list[str]]:
    """Values flag --name refuses, as a user types them."""
    f = FIELDS[name]
    kind = _kind(f)
    if kind is bool:
        return []
    if kind is int:
        low, high = INT_BOUNDS.get(name, (None, None))
        out = [["abc"], ["1.5"], ["nan"], ["inf"], ["1e400"]]
        if low is not None:
            out += [[str(low - 1)], [str(-2**64)], [str(high + 1)], [str(2**64)], ["1e30"]]
        return out
    if kind is float:
        out = [["nan"], ["-inf"], ["abc"]]
        return out + ([] if f.default == INF else [["inf"]])      # inf: never stop, where it is the default
    if kind is list:
        bad = ["nan"] if f.metadata.get("item_type") is float else ["0"]
        return [bad * 3, ["abc"], ["1e400"] * 3]
    if f.metadata.get("choices"):
        return [["no-such-choice"], ["a\nb"]]
    if name == "run_dir":
        return [["/proc/foo"], ["/sys/foo/bar"]]
    return [["headnode"]]             # ray-address: needs --executor ray; wandb-project: needs --wandb


BAD_FLAGS = [(name, v) for name in FIELDS if name not in FIXED for v in _bad_values(name)]


@settings(max_examples=CLI_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(bad=st.sampled_from(BAD_FLAGS))
def test_a_refused_config_through_the_cli_is_exit_2_and_one_line(bad, capsys):
    name, value = bad
    work = tempfile.mkdtemp(prefix="asyncrl-prop-cli-")
    run_dir = os.path.join(work, "r")
    argv = ["train", "a3c", "--env", "CartPole-v1", "--steps", "10", "--workers", "1", "--eval-episodes", "0",
            "--quiet", "--run-dir", str(run_dir), "--" + name.replace("_", "-"), *value]
    capsys.readouterr()
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code = cli.main(argv)
    except SystemExit as exc:         # argparse's own refusals
        code = exc.code
    finally:
        signal.signal(signal.SIGTERM, handler)
    out = capsys.readouterr()
    made = os.path.exists(run_dir)
    shutil.rmtree(work, ignore_errors=True)
    assert code == 2, (name, value, code, out.err)
    assert len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err, out.err
    assert out.err.startswith(("asyncrl train: error: ", "asyncrl: error: ")), out.err
    assert not made, run_dir


def test_every_field_is_generated():
    """The strategies cover every field a user sets (all but algo and env), and the CLI's bad
    values every flag that takes a value."""
    assert set(OPTIONAL) == set(FIELDS) - set(FIXED)
    takes_value = {n for n in FIELDS if n not in FIXED and _kind(FIELDS[n]) is not bool}
    assert {name for name, _ in BAD_FLAGS} == takes_value
