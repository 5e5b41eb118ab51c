"""Which Gymnasium ids are Atari games (ale-py's), which game each plays, and the random and
human reference scores that normalise a game's score."""
from __future__ import annotations

import gymnasium as gym

from ..errors import EnvError

ALE_ENTRY_POINT = "ale_py.env:AtariEnv"

#: (random, human) scores of the 57 games of the paper's Table 1. Source: DeepMind's DQN Zoo,
#: dqn_zoo/atari_data.py (github.com/deepmind/dqn_zoo; the table the later DeepMind agents
#: normalise with): the mean of at least 3 episodes from no-op starts (1 to 30 no-ops), capped
#: at 108,000 frames (30 minutes), of a uniformly random policy and of a professional human
#: game tester. Human-normalised score = (score - random) / (human - random); 1.0 is human level.
REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7), "amidar": (5.8, 1719.5), "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3), "asteroids": (719.1, 47388.7), "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1), "battle_zone": (2360.0, 37187.5), "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4), "bowling": (23.1, 160.7), "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5), "centipede": (2090.9, 12017.0), "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4), "defender": (2874.5, 18688.9), "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4), "enduro": (0.0, 860.5), "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6), "frostbite": (65.2, 4334.7), "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4), "hero": (1027.0, 30826.4), "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8), "kangaroo": (52.0, 3035.0), "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3), "montezuma_revenge": (0.0, 4753.3), "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0), "phoenix": (761.4, 7242.6), "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6), "private_eye": (24.9, 69571.3), "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0), "road_runner": (11.5, 7845.0), "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7), "skiing": (-17098.1, -4336.9), "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7), "star_gunner": (664.0, 10250.0), "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3), "time_pilot": (3568.0, 5229.2), "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2), "venture": (0.0, 1187.5), "video_pinball": (16256.9, 17667.9),
    "wizard_of_wor": (563.5, 4756.5), "yars_revenge": (3092.9, 54576.9), "zaxxon": (32.5, 9173.3),
}
REFERENCE_SOURCE = "DQN Zoo (dqn_zoo/atari_data.py): random and professional human tester, no-op starts"


def atari_id(game: str) -> str:
    """The ale-py id of a game of REFERENCE_SCORES: 'ALE/Pong-v5' for 'pong'."""
    return "ALE/" + "".join(part.capitalize() for part in game.split("_")) + "-v5"


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

