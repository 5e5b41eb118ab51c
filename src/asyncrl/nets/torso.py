"""The torso for an observation space: the paper's CNN for images, the MLP for vectors."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from torch import nn

from ..config import Config
from ..errors import EnvError
from ..spaces import image_layout, is_image_space, obs_dim
from .cnn import AtariCNN
from .layers import mlp_torso


def build_torso(obs_space: gym.Space, cfg: Config) -> tuple[nn.Module, int]:
    """The torso (also the one before the LSTM core of --net lstm): (module, feature size).
    Images get the paper's CNN, vectors the MLP (`--net mlp` / `--net cnn` force one)."""
    image = is_image_space(obs_space)
    if cfg.net == "cnn" and not image:
        raise EnvError(f"net 'cnn' needs image observations (2-D or 3-D Box), got {obs_space}")
    if image and cfg.net != "mlp":
        if min(image_layout(obs_space.shape)[2]) < 36:
            raise EnvError(f"image observations {obs_space.shape} are too small for the paper's CNN "
                           f"(8x8 stride 4 then 4x4 stride 2 need at least 36x36); use --net mlp")
        scale = 1.0 / 255.0 if obs_space.dtype == np.uint8 else 1.0
        return AtariCNN(tuple(obs_space.shape), scale), 256
    return mlp_torso(obs_dim(obs_space), list(cfg.hidden), cfg.activation)
