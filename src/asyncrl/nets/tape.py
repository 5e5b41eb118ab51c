"""Replay of a CNN actor's acting forwards: the activations they computed (ActivationTape)
and the CNN's backward pass on them in closed form (cnn_backward), so that an A3C/A2C
learner gets the gradient without a second forward pass."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from . import cnn as cnn_module
from .cnn import AtariCNN


class ActivationTape:
    """What the paper's CNN computed in an actor's acting forwards during one segment: each
    forward of a batch of b observations (1 for a hogwild actor, B for the sync executor's
    lockstep envs) fills the next b rows with conv1's and conv2's (flattened) ReLU outputs
    and the features, in the batch's order.

    An A3C/A2C learner differentiates the loss at the same parameters the actor acted with,
    on the same observations, so these are exactly the activations a second forward pass
    would compute; replaying them saves that pass. `clear()` starts a segment;
    `holds(obs, cnn)` tells whether the tape is a valid record of forwards on `obs` at the
    CNN's present parameters, else the learner runs the forward itself: forwards of
    consecutive rows (each obs[t], or groups of its envs) that tile obs's rows in order, by
    address, and the flat parameter tensor the learner `watch`es must not have been written
    since the first forward (its version counter; a tape that watches nothing is never
    replayed).
    """

    def __init__(self, cnn: AtariCNN, rows: int):
        with torch.no_grad():
            x = cnn.image(torch.zeros(1, math.prod(cnn.shape)))
            h1 = F.conv2d(x, cnn.conv1.weight, stride=cnn.conv1.stride)
        self.rows = rows
        self.h1 = torch.zeros(rows, *h1.shape[1:])
        self.h2 = torch.zeros(rows, cnn.fc.in_features)
        self.h3 = torch.zeros(rows, cnn.fc.out_features)
        self._addr = [0] * rows             # data_ptr of each forward's observations
        self._batch = [0] * rows            # and their count
        self._cnn = cnn
        self._flat: torch.Tensor | None = None
        self._version = -1
        self.n = 0                          # rows filled
        self.k = 0                          # forwards kept
        # the features of one observation [1, D] -> [256] through the NumPy mirror that fills
        # this tape, without keeping them (NumpyCNN sets it): the learner's V(s_T)
        self.features: Callable[[np.ndarray], np.ndarray] | None = None

    def watch(self, flat: torch.Tensor) -> None:
        """`flat`: the tensor the CNN's parameters are views of (flat.flatten_params_); any
        write into it (a pull, an update) bumps its version and invalidates the rows."""
        self._flat = flat

    def clear(self) -> None:
        self.n = self.k = 0

    def start_row(self, addr: int, batch: int = 1) -> int:
        """The first of the `batch` rows a forward of that many observations at `addr` is kept
        in, or -1 when they would not fit (more forwards than a segment has: the tape is then
        no record of one). The caller fills the rows, then sets `n` past them."""
        n = self.n
        if n + batch > self.rows:
            self.n = self.rows + 1
            return -1
        if n == 0 and self._flat is not None:
            self._version = self._flat._version
        self._addr[self.k], self._batch[self.k] = addr, batch
        self.k += 1
        return n

    def keep_h1(self, x: torch.Tensor, h1: torch.Tensor) -> None:
        n = self.start_row(x.data_ptr(), x.shape[0])
        if n >= 0:
            self.h1[n:n + h1.shape[0]].copy_(h1)

    def keep_h2_h3(self, h2: torch.Tensor, h3: torch.Tensor) -> None:
        n, b = self.n, h2.shape[0]
        if n + b <= self.rows:
            self.h2[n:n + b].copy_(h2)
            self.h3[n:n + b].copy_(h3)
            self.n = n + b

    def holds(self, obs: torch.Tensor, cnn: AtariCNN) -> bool:
        """The rows are forwards, in order, of the rows of `obs` ([T, D] or [T, B, D]: T*B
        rows; each forward of consecutive rows, such as obs[t] or a group of its envs) at the
        CNN's present parameters."""
        d = math.prod(cnn.shape)
        n = obs.numel() // d
        if not (self.n == n and cnn is self._cnn and self._flat is not None
                and self._flat._version == self._version and obs.is_contiguous()):
            return False
        base, row = obs.data_ptr(), d * obs.element_size()
        r = 0
        for addr, b in zip(self._addr[:self.k], self._batch[:self.k]):
            if addr != base + r * row:
                return False
            r += b
        return r == n

    def replay(self, cnn: AtariCNN, obs: torch.Tensor) -> torch.Tensor:
        """AtariCNN.replay: the features of rows 0..N-1 (forwards on `obs` [N, D]), whose
        backward pass is cnn_backward."""
        return _CNNReplay.apply(cnn, self, obs, cnn.conv1.weight, cnn.conv1.bias, cnn.conv2.weight,
                                cnn.conv2.bias, cnn.fc.weight, cnn.fc.bias)


class _CNNReplay(torch.autograd.Function):
    """Features from an ActivationTape; backward: the CNN's layers' backward on the kept
    activations (what autograd would run after a forward on the same rows)."""

    @staticmethod
    def forward(ctx, cnn, tape, obs, w1, b1, w2, b2, wf, bf):
        T = obs.shape[0]
        ctx.cnn, ctx.tape, ctx.obs = cnn, tape, obs
        return tape.h3[:T].clone()

    @staticmethod
    def backward(ctx, d3):
        return (None, None, None, *cnn_backward(ctx.cnn, ctx.tape, ctx.obs, d3))


def cnn_backward(cnn: AtariCNN, tape: ActivationTape, obs: torch.Tensor, d3: torch.Tensor,
                 write: bool = False) -> tuple:
    """The CNN's backward pass on tape rows 0..T-1 (acting forwards on `obs` [T, D] at the
    present parameters), from the gradient `d3` [T, 256] of its (post-ReLU) features.

    write=False (autograd's replay, _CNNReplay): returns the gradients (dw1, db1, dw2, db2,
    dwf, dbf) for autograd to accumulate, except the fc weight's, which is accumulated into
    its .grad in place when that is a contiguous tensor (then dwf is None).
    write=True (a closed-form gradient, ActorCritic.replay_grads): writes every CNN
    parameter's .grad (all must exist), overwriting it; returns ().
    """
    T = obs.shape[0]
    h1, h2, h3 = tape.h1[:T], tape.h2[:T], tape.h3[:T]
    d3 = _relu_backward(d3, h3)
    dbf, dwf = d3.sum(0), None
    g = cnn.fc.weight.grad
    if write:
        # the fc weight's gradient (2.6 MB) written by NumPy's BLAS: about a third of the time
        # of accumulating it with torch's addmm_ when the gradient is not in cache
        np.matmul(d3.numpy().T, h2.numpy(), out=g.numpy())
    elif g is not None and g.is_contiguous():
        # accumulated in place: no temporary and no second pass to add it (single process:
        # 104 against 224 us)
        g.addmm_(d3.t(), h2)
    else:
        dwf = d3.t().mm(h2)
    d2 = _relu_backward(d3.mm(cnn.fc.weight), h2).view(T, cnn.conv2.out_channels, *_conv_hw(cnn, h1))
    # the module's constant, read here as AtariCNN reads it (a patched value holds for both)
    fmt = torch.channels_last if T >= cnn_module.CHANNELS_LAST_MIN_BATCH else torch.contiguous_format
    h1 = h1.contiguous(memory_format=fmt)
    d1, dw2, db2 = torch.ops.aten.convolution_backward(
        d2.contiguous(memory_format=fmt), h1, cnn.conv2.weight, [cnn.conv2.out_channels],
        list(cnn.conv2.stride), [0, 0], [1, 1], False, [0, 0], 1, [True, True, True])
    d1 = _relu_backward(d1, h1)
    with torch.enable_grad():     # the learner's (channels-last) input scratch for T rows
        x = cnn.image(obs)
    _, dw1, db1 = torch.ops.aten.convolution_backward(
        d1, x, cnn.conv1_weight().detach(), [cnn.conv1.out_channels], list(cnn.conv1.stride),
        [0, 0], [1, 1], False, [0, 0], 1, [False, True, True])
    if cnn.scale != 1.0:
        dw1.mul_(cnn.scale)                             # conv1 sees weight x scale
    if not write:
        return dw1, db1, dw2, db2, dwf, dbf
    for p, d in ((cnn.conv1.weight, dw1), (cnn.conv1.bias, db1), (cnn.conv2.weight, dw2),
                 (cnn.conv2.bias, db2), (cnn.fc.bias, dbf)):
        p.grad.copy_(d)
    return ()


def _relu_backward(d: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The gradient d through a ReLU whose output was `out`: d where out > 0, else 0, in one
    fused pass that keeps d's memory format (d * (out > 0) takes a mask and a multiply: 10x
    slower here on conv1's 80-row channels-last output, 0.47 against 0.04 ms)."""
    return torch.ops.aten.threshold_backward(d, out, 0.0)


def _conv_hw(cnn: AtariCNN, h1: torch.Tensor) -> tuple[int, int]:
    """conv2's output height and width for conv1 outputs h1 [N, C, H, W]."""
    k, s = cnn.conv2.kernel_size, cnn.conv2.stride
    return (h1.shape[2] - k[0]) // s[0] + 1, (h1.shape[3] - k[1]) // s[1] + 1
