"""The bounds of a Config's numbers, machine-independent: every integer that ends up in a C
int64 (the shared step counter), a NumPy seed or an allocation has a sane maximum, every
float must be finite unless infinity means something, and a network whose hidden layers
alone pass MAX_PARAMS is refused before anything is built (asyncrl.budget checks what a
run needs against the memory of this machine once the spaces are known).

Each check here is written so that a NaN fails it (math.isfinite, or `not lo <= x <= hi`):
NaN compares false with everything, so `x > hi` alone would let it through."""
from __future__ import annotations

import math
from typing import Any

#: global steps: the step counter is a C int64, and no run is anywhere near 1e12 steps
MAX_STEPS = 10**12
#: hogwild processes, ray actors, or the sync executor's environments in lockstep
MAX_WORKERS = 1024
#: the largest seed NumPy's legacy np.random.seed takes
MAX_SEED = 2**32 - 1
#: a replacement worker's seed is seed + rank + RESEED_STRIDE * lives (executors.actor)
RESEED_STRIDE = 1000
#: the Agent's acting generator is seeded with seed + ACT_SEED_OFFSET (api.py); evaluation
#: episodes use seed + 10,000 + i, below it while eval_episodes <= MAX_EVAL_EPISODES
ACT_SEED_OFFSET = 20_000
MAX_EVAL_EPISODES = 10_000
#: parameters of one network: 4 GB for each copy of them (parameters, gradients, optimiser
#: statistics, each worker's own copy)
MAX_PARAMS = 10**9
MAX_HIDDEN = 1_000_000
MAX_LAYERS = 100
MAX_LIST = 100
#: RMSProp's and Adam's epsilon: the statistics are float32, where a smaller one is 0 and a zero
#: gradient gives 0/0 = NaN
MIN_EPS = 1e-30
#: worker-timeout: 0 waits forever; below 1 s every worker would count as hung; above
#: about 24 days a poll() timeout in milliseconds overflows a C int
MIN_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 1_000_000.0

#: field -> (lowest, highest) for the integer fields; the message for a value below the
#: lowest is validate.py's (kept word for word), the one above is said here
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "workers": (1, MAX_WORKERS),
    "steps": (1, MAX_STEPS),
    "t_max": (1, 100_000),
    "async_update": (1, 100_000),
    "target_update": (1, MAX_STEPS),
    "epsilon_steps": (0, MAX_STEPS),
    "lstm_size": (1, 100_000),
    "noop_max": (0, 100_000),
    "frame_skip": (1, 1000),
    "frame_stack": (1, 1000),
    "screen_size": (8, 4096),
    "torch_threads": (0, 1024),
    "seed": (0, MAX_SEED),
    "log_steps": (0, MAX_STEPS),
    "keep_checkpoints": (0, 10_000),
    "max_worker_restarts": (0, 1_000_000),
    "max_nonfinite_updates": (0, MAX_STEPS),
    "eval_episodes": (0, MAX_EVAL_EPISODES),
    "eval_every": (0, MAX_STEPS),
    "workers_per_node": (0, MAX_WORKERS),
    "sync_updates": (0, MAX_STEPS),
    "learners": (0, MAX_WORKERS),
}

#: why a maximum is what it is, where that helps the reader of the message
_WHY = {
    "workers": " (processes, ray actors or sync environments of one run)",
    "steps": " (1e12)",
    "seed": " (2**32 - 1, the largest seed NumPy takes)",
}


def flag(name: str) -> str:
    return name.replace("_", "-")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v: Any) -> bool:
    """A real number that is neither inf nor NaN (False for anything else, never raises)."""
    if not is_number(v):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:          # an int too large for a float
        return False


def int_field_problem(name: str, value: Any, low_message: str) -> str | None:
    """The problem of integer field `name` (None when it is within INT_BOUNDS): `low_message`
    below the lowest value, a message naming the maximum above the highest."""
    low, high = INT_BOUNDS[name]
    if not is_int(value):
        return f"{flag(name)} must be an integer, got {value!r}"
    if value < low:
        return low_message
    if value > high:
        return f"{flag(name)} must be at most {high:,}{_WHY.get(name, '')}, got {value}"
    return None


def seed_problem(cfg: Any) -> str | None:
    """Every seed a run derives must fit NumPy's: worker i's is seed + i, a replacement's
    adds RESEED_STRIDE per life (up to max_worker_restarts), the acting generator's adds
    ACT_SEED_OFFSET. Checked once seed, workers and max_worker_restarts are each in bounds."""
    seed, workers, restarts = cfg.seed, cfg.workers, cfg.max_worker_restarts
    top = (workers - 1) + RESEED_STRIDE * restarts + ACT_SEED_OFFSET
    if seed + top > MAX_SEED:
        return (f"seed must be at most {MAX_SEED - top:,} with workers {workers} and max-worker-restarts "
                f"{restarts} (the seeds a run derives reach seed + workers - 1 + {RESEED_STRIDE} x "
                f"max-worker-restarts + {ACT_SEED_OFFSET}, and NumPy takes seeds up to 2**32 - 1), got {seed}")
    return None


def uses_mlp(cfg: Any, is_atari: bool) -> bool:
    """Whether the hidden layers may be built: an MLP torso (not the CNN of --net cnn or of an
    Atari game under auto/lstm)."""
    return cfg.net == "mlp" or (cfg.net in ("auto", "lstm") and not is_atari)


def min_params(cfg: Any, is_atari: bool) -> int:
    """A lower bound on the parameters of the network, from what the config alone says
    (one input, one output): the MLP's layers between hidden sizes, and the LSTM core's."""
    n = 0
    if uses_mlp(cfg, is_atari):
        sizes = [1, *cfg.hidden, 1]
        n += sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if cfg.net == "lstm":
        n += 4 * cfg.lstm_size * (cfg.lstm_size + 1) + 8 * cfg.lstm_size
    return n


def network_problem(cfg: Any, is_atari: bool) -> str | None:
    """A network too large to be built anywhere (more than MAX_PARAMS parameters)."""
    n = min_params(cfg, is_atari)
    if n <= MAX_PARAMS:
        return None
    what = []
    if uses_mlp(cfg, is_atari):
        what.append(f"hidden {cfg.hidden}")
    if cfg.net == "lstm":
        what.append(f"lstm-size {cfg.lstm_size}")
    return (f"{' and '.join(what)} make a network of at least {n:,} parameters; at most {MAX_PARAMS:,} "
            f"are supported (4 bytes each, for every copy: parameters, gradients, optimiser statistics, "
            f"each worker's own)")


def list_problem(name: str, items: Any, low: float, high: float, what: str) -> str | None:
    """A list of numbers each finite and in [low, high], one to MAX_LIST of them."""
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_LIST \
            or any(not (finite(x) and low <= x <= high) for x in items):
        shown = items if not isinstance(items, list) or len(items) <= 10 else f"{len(items)} values"
        return f"{flag(name)} must be 1 to {MAX_LIST} {what}, got {shown}"
    return None


def worker_timeout_problem(value: Any) -> str | None:
    if is_number(value) and (value == 0 or (finite(value) and MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S)):
        return None
    return (f"worker-timeout must be >= 0 seconds: 0 (no timeout) or from {MIN_TIMEOUT_S:g} to "
            f"{MAX_TIMEOUT_S:,.0f}, got {value}")
