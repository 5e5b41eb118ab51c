"""Which Gymnasium ids are Atari games (ale-py's), which game each plays, and the random and
human reference scores that normalise a game's score."""
from __future__ import annotations

import gymnasium as gym

from ..errors import EnvError

ALE_ENTRY_POINT = "ale_py.env:AtariEnv"

#: (random, human) scores per game. Source: Mnih et al. (2015), "Human-level control
#: through deep reinforcement learning", Nature 518, Extended Data Table 2 (random play
#: and the professional human tester); the same values normalise no-op-start results in
#: van Hasselt et al. (2016) and Wang et al. (2016). Human-normalised score =
#: (score - random) / (human - random); 1.0 is human level.
REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "asterix": (210.0, 8503.0),
    "beam_rider": (363.9, 5775.0),
    "boxing": (0.1, 4.3),
    "breakout": (1.7, 31.8),
    "enduro": (0.0, 309.6),
    "ms_pacman": (307.3, 15693.0),
    "pong": (-20.7, 9.3),
    "qbert": (163.9, 13455.0),
    "seaquest": (68.4, 20182.0),
    "space_invaders": (148.0, 1652.0),
}
REFERENCE_SOURCE = "Mnih et al. 2015 (Nature), Extended Data Table 2"

_registered = False


def register() -> bool:
    """Register ale-py's ids with Gymnasium (Gymnasium 1.x needs it); False without ale-py."""
    global _registered
    if not _registered:
        try:
            import ale_py
        except ImportError:
            return False
        # the emulator's banner and warnings would break the CLI's one-line errors
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        gym.register_envs(ale_py)
        _registered = True
    return True


def looks_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def is_atari_id(env_id: str) -> bool:
    """True for a Gymnasium id that ale-py serves (ALE/Pong-v5, PongNoFrameskip-v4, Pong-v4...)."""
    if not isinstance(env_id, str) or not env_id or ":" in env_id:
        return False
    if not register():
        return looks_atari(env_id)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return False
    return spec.entry_point == ALE_ENTRY_POINT


def game_of(env_id: str) -> str:
    """The ALE game an id plays, e.g. 'pong' for ALE/Pong-v5 and PongNoFrameskip-v4."""
    require_ale(env_id)
    return str(gym.spec(env_id).kwargs["game"])


def human_normalized(game: str, score: float) -> float | None:
    """(score - random) / (human - random) for a game in REFERENCE_SCORES, else None."""
    ref = REFERENCE_SCORES.get(game)
    if ref is None:
        return None
    random, human = ref
    return (float(score) - random) / (human - random)


def require_ale(env_id: str) -> None:
    if not register():
        raise EnvError(f"environment {env_id!r} is an Atari game, which needs ale-py and opencv: "
                       f"pip install 'asyncrl[atari]'")

