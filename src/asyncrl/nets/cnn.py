"""The paper's CNN torso for image observations (AtariCNN) and the channels-last layout of
its learner batches."""
from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..spaces import image_layout
from .layers import init


#: the smallest learner batch the CNN's input is laid out channels-last for (see _float_input)
CHANNELS_LAST_MIN_BATCH = 2


class AtariCNN(nn.Module):
    """The paper's network body (from Mnih et al. 2013): conv 16 8x8 stride 4, conv 32 4x4
    stride 2, fully connected 256, ReLU after each. Input: flat rows [N, C*H*W] of an image
    observation (uint8 pixels are scaled to [0, 1]); [H, W, C] layouts are transposed."""

    def __init__(self, shape: tuple[int, ...], scale: float, hidden: int = 256):
        super().__init__()
        self.channels_last, c, _ = image_layout(shape)
        self.shape = (1, *shape) if len(shape) == 2 else tuple(shape)
        self.scale = scale
        self.conv1 = init(nn.Conv2d(c, 16, 8, stride=4), math.sqrt(2))
        self.conv2 = init(nn.Conv2d(16, 32, 4, stride=2), math.sqrt(2))
        self._floats: dict = {}       # scratch for byte -> float input, one per input shape
        with torch.no_grad():
            n = self._convs(torch.zeros(1, *self.shape)).shape[1]
        self.fc = init(nn.Linear(n, hidden), math.sqrt(2))

    def _float_input(self, x: torch.Tensor) -> torch.Tensor:
        """x as float32 (pixel values unscaled: the 1/255 is folded into conv1's weights).
        Bytes are converted into a scratch tensor kept per shape: a fresh 10 MB tensor per
        learner batch cost 4x the copy itself in page faults. Reusing it is safe: autograd
        refuses a backward whose saved input was overwritten (it never is by the learners:
        one forward per input shape before each backward)."""
        if x.dtype == torch.float32:
            return x
        grad = torch.is_grad_enabled()
        key = (x.shape, grad)    # a no-grad forward never touches a saved input
        buf = self._floats.get(key)
        if buf is None or buf.device != x.device:
            # channels-last for a learner's batch on the CPU: the convolutions' backward runs
            # faster on it, the transposing copy included (B=96: fwd+bwd 21.8 against 25.5 ms
            # here; a hogwild segment's 6 rows: 3.3 against 3.6 ms, conv1's weight gradient
            # alone 0.25 against 0.57 ms)
            cl = grad and x.device.type == "cpu" and x.shape[0] >= CHANNELS_LAST_MIN_BATCH
            fmt = torch.channels_last if cl else torch.contiguous_format
            buf = self._floats[key] = torch.empty(x.shape, device=x.device).contiguous(memory_format=fmt)
            self._floats.pop((key, "bytes"), None)
            if cl:   # bytes are transposed first (into their own scratch): 1.5x faster than at once
                self._floats[key, "bytes"] = torch.empty(x.shape, dtype=x.dtype).contiguous(memory_format=fmt)
        staged = self._floats.get((key, "bytes"))
        if staged is not None and not x.is_contiguous(memory_format=torch.channels_last):
            x = _interleave_channels(x, staged)
        return buf.copy_(x)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        """Flat rows [N, D] -> float images [N, C, H, W] (pixel values unscaled)."""
        x = x.view(-1, *self.shape)
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self._float_input(x)

    def conv1_weight(self) -> torch.Tensor:
        return self.conv1.weight if self.scale == 1.0 else self.conv1.weight * self.scale

    def _convs(self, x: torch.Tensor, tape=None) -> torch.Tensor:
        # functional calls and in-place ReLUs (no backward needs a pre-ReLU output): an acting
        # forward at batch 1 is mostly overhead, and these cut it by about a sixth
        h1 = F.conv2d(self.image(x), self.conv1_weight(), self.conv1.bias, stride=self.conv1.stride).relu_()
        if tape is not None:
            tape.keep_h1(x, h1)
        return F.conv2d(h1, self.conv2.weight, self.conv2.bias, stride=self.conv2.stride).relu_().flatten(1)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_floats"] = {}
        return state

    def forward(self, x: torch.Tensor, tape=None) -> torch.Tensor:
        """The features [N, 256]; with a `tape` (acting; a tape.ActivationTape), the activations
        are kept in its next N rows for a backward pass without a second forward (replay)."""
        h2 = self._convs(x, tape)
        h3 = F.linear(h2, self.fc.weight, self.fc.bias).relu_()
        if tape is not None:
            tape.keep_h2_h3(h2, h3)
        return h3

    def replay(self, tape, obs: torch.Tensor) -> torch.Tensor:
        """The features of tape rows 0..N-1 (kept by acting forwards on the rows of `obs`
        [N, D] with the current parameters), as a tensor whose backward pass runs the layers'
        backward on the kept activations: the gradient of forward(obs), without computing
        forward(obs). `tape`: a tape.ActivationTape, which runs that backward."""
        return tape.replay(self, obs)


@functools.cache
def _opencv():
    """The cv2 module, or None without OpenCV (looked up once)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _interleave_channels(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out <- x: images [N, C, H, W] in their usual layout copied into `out`, the same shape
    laid out channels-last. For bytes on the CPU with OpenCV installed (the atari extra), by
    cv2.merge, which interleaves the C planes of all N images in one call: 0.10 against 1.25 ms
    for torch's copy_ on an A2C batch of 80 Pong observations here; else by copy_."""
    n, c = x.shape[:2]
    if x.dtype == torch.uint8 and x.device.type == "cpu" and 1 < c <= 4 and x.is_contiguous():
        cv2 = _opencv()
        if cv2 is not None:
            src = x.numpy().reshape(n, c, -1)
            dst = out.permute(0, 2, 3, 1).numpy().reshape(n, -1, c)     # a view: out is channels-last
            if cv2.merge([src[:, i] for i in range(c)], dst=dst) is dst:
                return out
    return out.copy_(x)
