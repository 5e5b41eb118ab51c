"""The torso for an observation space: the paper's CNN for images, the MLP for vectors, and
for a Dict one of those per entry (nets.multi.DictTorso)."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from torch import nn

from ..config import Config
from ..errors import EnvError
from ..spaces import has_image, image_layout, is_image_space, obs_dim
from .cnn import AtariCNN
from .layers import mlp_torso
from .multi import DictTorso


def build_torso(obs_space: gym.Space, cfg: Config) -> tuple[nn.Module, int]:
    """The torso (also the one before the LSTM core of --net lstm): (module, feature size).
    Images get the paper's CNN, vectors the MLP (`--net mlp` / `--net cnn` force one); a Dict
    gets one per entry, side by side (`--net cnn` needs an image entry, `--net mlp` makes
    every entry an MLP)."""
    if isinstance(obs_space, gym.spaces.Dict):
        if cfg.net == "cnn" and not has_image(obs_space):
            raise EnvError(f"net 'cnn' needs image observations: no entry of {obs_space} is an image")
        parts = [_entry_torso(sub, cfg, key) for key, sub in obs_space.spaces.items()]
        torso = DictTorso(obs_space, parts)
        return torso, torso.out_dim
    image = is_image_space(obs_space)
    if cfg.net == "cnn" and not image:
        raise EnvError(f"net 'cnn' needs image observations (2-D or 3-D Box), got {obs_space}")
    return _entry_torso(obs_space, cfg, None)


def _entry_torso(space: gym.Space, cfg: Config, key: str | None) -> tuple[nn.Module, int]:
    if is_image_space(space) and cfg.net != "mlp":
        if min(image_layout(space.shape)[2]) < 36:
            where = f"the Dict entry {key!r}: " if key is not None else ""
            raise EnvError(f"{where}image observations {space.shape} are too small for the paper's CNN "
                           f"(8x8 stride 4 then 4x4 stride 2 need at least 36x36); use --net mlp")
        scale = 1.0 / 255.0 if space.dtype == np.uint8 else 1.0
        return AtariCNN(tuple(space.shape), scale), 256
    return mlp_torso(obs_dim(space), list(cfg.hidden), cfg.activation)
