"""The torso for Dict observations (Stable-Baselines3's MultiInputPolicy convention): the
paper's CNN for each image entry, an MLP for each vector entry, their features side by
side before the core (feed-forward heads or the LSTM)."""
from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

from ..spaces import dict_entries


class DictTorso(nn.Module):
    """forward(rows [N, D]) -> features [N, F]: each entry's columns of the row (where
    spaces.dict_entries puts them) through its own torso, the outputs concatenated.

    `parts` are the entries' torsos, in the Dict's order, with their feature sizes."""

    def __init__(self, space: gym.spaces.Dict, parts: list[tuple[nn.Module, int]]):
        super().__init__()
        entries = dict_entries(space)
        self.keys = [key for key, _, _ in entries]
        self.columns = [(cols.start, cols.stop) for _, _, cols in entries]
        self.parts = nn.ModuleList(module for module, _ in parts)
        self.out_dim = sum(size for _, size in parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for (a, b), part in zip(self.columns, self.parts):
            cols = x[:, a:b]
            feats.append(part(cols if b - a == x.shape[1] else cols.contiguous()))
        return feats[0] if len(feats) == 1 else torch.cat(feats, 1)
