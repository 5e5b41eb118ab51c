"""NumPy mirrors of the networks' acting forwards, on live views of the parameters: batch-1
acting through torch is mostly per-call overhead (NumpyMLP, NumpyCNN, RecurrentScores)."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from .cnn import AtariCNN
from .heads import ActorCritic
from .tape import ActivationTape


def numpy_mlp(torso: nn.Module, head: nn.Linear | None) -> "NumpyMLP | None":
    """A NumPy mirror of `head(torso(x))` for a plain MLP torso, else None.

    Batch-1 acting through torch costs ~10 us of dispatch per module; NumPy on views of
    the same parameter memory costs ~1 us per layer. The views read the parameters live:
    they stay valid while the parameters are updated in place (as the worker's flat local
    copy is), and must be rebuilt if the parameter storage moves (e.g. share_memory_()).
    """
    layers: list[tuple] = []
    acts = {nn.ReLU: "relu", nn.Tanh: "tanh"}
    mods = list(torso) if isinstance(torso, nn.Sequential) else None
    if mods is None or any(p.device.type != "cpu" for p in torso.parameters()):
        return None
    for m in mods:
        if isinstance(m, nn.Linear):
            layers.append([m.weight.detach().numpy().T, m.bias.detach().numpy(), None])
        elif type(m) in acts and layers and layers[-1][2] is None:
            layers[-1][2] = acts[type(m)]
        else:
            return None
    if head is not None:
        layers.append([head.weight.detach().numpy().T, head.bias.detach().numpy(), None])
    return NumpyMLP([tuple(x) for x in layers])


def numpy_scores(torso: nn.Module, head: nn.Linear, forward, tape: "ActivationTape | None" = None
                 ) -> "Callable[[np.ndarray], np.ndarray]":
    """obs [B, D] -> head(torso(obs)) [B, A] as NumPy, for acting: the NumPy mirror when the
    torso is a plain MLP, or the paper's CNN for one observation at a time (keeping its
    activations in `tape`, if given), else `forward` (the torch equivalent) under no_grad."""
    fast = numpy_mlp(torso, head)
    if fast is not None:
        return fast
    device = head.weight.device
    if device.type == "cpu":
        def scores(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return forward(torch.from_numpy(obs)).numpy()
        if isinstance(torso, AtariCNN):
            return NumpyCNN(torso, head, scores, tape)
        return scores

    def scores_on_device(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return forward(torch.from_numpy(obs).to(device, non_blocking=True)).cpu().numpy()
    return scores_on_device


class NumpyMLP:
    def __init__(self, layers: list[tuple]):
        self.layers = layers

    def __call__(self, x):
        for w_t, b, act in self.layers:
            x = np.dot(x, w_t)
            x += b
            if act == "tanh":
                np.tanh(x, out=x)
            elif act == "relu":
                np.maximum(x, 0.0, out=x)
        return x


class _BlockConv:
    """ReLU(conv2d) with a kernel of twice the stride s, on one image [C, H, W], in NumPy.

    The input is copied once into s x s blocks (space to depth: [C*s*s, blocks], a row of
    blocks padded by one column); the kernel then covers 2x2 blocks, so the convolution is
    four matrix products, one per block shift, each reading a shifted view of that copy
    (its outputs in the padding column are discarded). The products are the whole cost, at
    about the CPU's peak for these shapes; torch's batch-1 convolution spends as long again
    in oneDNN's per-call weight reorders and allocations.
    """

    SHIFTS = ((0, 1), (1, 0), (1, 1))

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: int, hw: tuple[int, int], scale: float):
        o, c, k, _ = weight.shape
        s = stride
        assert k == 2 * s and weight.shape[3] == k
        self.c, self.s, self.scale = c, s, scale
        self.ho, self.wo = (hw[0] - k) // s + 1, (hw[1] - k) // s + 1
        row = self.wo + 1                              # blocks per row (one more than outputs)
        nb = (self.ho + 1) * row
        self.n = self.ho * row                         # outputs per channel, padding column included
        self.blocks = np.zeros((c * s * s, nb + 1), np.float32)   # + 1: the last shift reads one past
        self.blocks_in = self.blocks[:, :nb].reshape(c, s, s, self.ho + 1, row)
        self.span = (s * (self.ho + 1), s * row)
        # weight[o, c, di*s + a, dj*s + b] -> per shift (di, dj): [O, C*s*s] in the blocks' (c, a, b) order
        self.weight_in = weight.reshape(o, c, 2, s, 2, s).transpose(2, 4, 0, 1, 3, 5)   # live view
        self.w = np.empty((2, 2, o, c, s, s), np.float32)
        self.w_rows = self.w.reshape(2, 2, o, c * s * s)
        self.bias = bias[:, None]
        self.shifts = [((di, dj), di * row + dj) for di, dj in self.SHIFTS]
        self.y = np.empty((o, self.n), np.float32)
        self.y_out = self.y.reshape(o, self.ho, row)[:, :, :self.wo]
        self.tmp = np.empty_like(self.y)

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        """x [C, H, W] (any strides and real dtype) -> ReLU(conv(x) + bias) into out [O, ho, wo]."""
        s, n, y, blocks, w = self.s, self.n, self.y, self.blocks, self.w_rows
        hs, ws = self.span
        np.copyto(self.blocks_in, x[:, :hs, :ws].reshape(self.c, self.ho + 1, s, self.wo + 1, s)
                  .transpose(0, 2, 4, 1, 3), casting="unsafe")
        if self.scale == 1.0:                          # the parameters may have changed since the last call
            np.copyto(self.w, self.weight_in)
        else:
            np.multiply(self.weight_in, self.scale, out=self.w)
        np.matmul(w[0, 0], blocks[:, :n], out=y)
        for (di, dj), shift in self.shifts:
            np.matmul(w[di, dj], blocks[:, shift:shift + n], out=self.tmp)
            y += self.tmp
        y += self.bias
        np.maximum(self.y_out, 0.0, out=out)


class NumpyCNN:
    """A NumPy mirror of `head(cnn(x))` for acting on one observation (the paper's CNN),
    on views of the same parameter memory, read live like NumpyMLP's.

    Batch-1 acting is the hot path of a hogwild CNN worker: torch ran this forward in
    460-560 us here, mostly per-call overhead; this one takes 240-340 us (conv1 about 50 of
    them: 1.7M multiply-adds). With an ActivationTape it writes the activations straight
    into the tape's next row, as the torch forward keeps them for the learner's replay.
    Batches of more than one observation go to `fallback` (the torch forward).
    """

    def __init__(self, cnn: AtariCNN, head: nn.Linear, fallback: Callable[[np.ndarray], np.ndarray],
                 tape: "ActivationTape | None" = None):
        def view(t: torch.Tensor) -> np.ndarray:
            return t.detach().numpy()
        self.fallback, self.tape = fallback, tape
        self.channels_last = cnn.channels_last
        h, w = cnn.shape[:2] if cnn.channels_last else cnn.shape[1:]
        self.shape = cnn.shape
        self.conv1 = _BlockConv(view(cnn.conv1.weight), view(cnn.conv1.bias), cnn.conv1.stride[0], (h, w), cnn.scale)
        c1 = self.conv1
        self.conv2 = _BlockConv(view(cnn.conv2.weight), view(cnn.conv2.bias), cnn.conv2.stride[0],
                                (c1.ho, c1.wo), 1.0)
        self.h1_shape = (cnn.conv1.out_channels, c1.ho, c1.wo)
        self.h2_shape = (cnn.conv2.out_channels, self.conv2.ho, self.conv2.wo)
        self.h1, self.h2 = np.empty(self.h1_shape, np.float32), np.empty(math.prod(self.h2_shape), np.float32)
        self.h3 = np.empty(cnn.fc.out_features, np.float32)
        self.wf, self.bf = view(cnn.fc.weight), view(cnn.fc.bias)
        self.wh, self.bh = view(head.weight), view(head.bias)
        if tape is not None:
            self.tape_h1, self.tape_h2, self.tape_h3 = tape.h1.numpy(), tape.h2.numpy(), tape.h3.numpy()
            tape.features = self.features

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if obs.shape[0] != 1:
            return self.fallback(obs)       # which keeps its activations in the tape itself
        tape = self.tape
        n = -1 if tape is None else tape.start_row(obs.__array_interface__["data"][0])
        h3 = self.features(obs) if n < 0 else self._features(obs, self.tape_h1[n], self.tape_h2[n], self.tape_h3[n])
        out = np.matmul(h3, self.wh.T)[None]
        out += self.bh
        if n >= 0:
            tape.n = n + 1
        return out

    def features(self, obs: np.ndarray) -> np.ndarray:
        """The CNN's features [256] of one observation [1, D] (a scratch array, overwritten by
        the next call)."""
        return self._features(obs, self.h1, self.h2, self.h3)

    def _features(self, obs: np.ndarray, h1: np.ndarray, h2: np.ndarray, h3: np.ndarray) -> np.ndarray:
        x = obs.reshape(self.shape)
        if self.channels_last:
            x = x.transpose(2, 0, 1)
        elif x.ndim == 2:
            x = x[None]
        self.conv1(x, h1)
        self.conv2(h1, h2.reshape(self.h2_shape))
        np.matmul(self.wf, h2, out=h3)
        h3 += self.bf
        np.maximum(h3, 0.0, out=h3)
        return h3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)
    return x


class RecurrentScores:
    """Acting through an LSTM model for B environments: obs [B, D] -> policy head output
    [B, P] (NumPy), carrying (h, c) per environment between calls.

    On the CPU with an MLP torso it runs in NumPy on views of the parameters (read live,
    like NumpyMLP); otherwise in torch on the model's device. `reset(mask)` zeroes the
    state of the environments whose episode starts; `state()` is a copy of (h, c) as
    tensors, the initial state of a rollout segment.
    """

    def __init__(self, model: ActorCritic, n_envs: int):
        self.model = model
        self.torso_np = numpy_mlp(model.torso, None)
        H = model.core.hidden_size
        if self.torso_np is not None:
            core = model.core
            self.w_ih, self.w_hh = core.weight_ih_l0.detach().numpy().T, core.weight_hh_l0.detach().numpy().T
            self.b_ih, self.b_hh = core.bias_ih_l0.detach().numpy(), core.bias_hh_l0.detach().numpy()
            self.w_pi, self.b_pi = model.policy.weight.detach().numpy().T, model.policy.bias.detach().numpy()
            self.h = np.zeros((n_envs, H), np.float32)
            self.c = np.zeros((n_envs, H), np.float32)
        else:
            self.h, self.c = model.initial_state(n_envs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.torso_np is None:
            with torch.no_grad():
                x = torch.from_numpy(obs).to(self.h.device, non_blocking=True)
                out, _, (self.h, self.c) = self.model.step(x, (self.h, self.c))
                return out.cpu().numpy()
        H = self.h.shape[1]
        g = np.dot(self.torso_np(obs), self.w_ih)
        g += self.b_ih
        g += np.dot(self.h, self.w_hh)
        g += self.b_hh
        i, f, o = _sigmoid(g[:, :H]), _sigmoid(g[:, H:2 * H]), _sigmoid(g[:, 3 * H:])
        c = self.c
        c *= f
        c += i * np.tanh(g[:, 2 * H:3 * H])
        self.h = o * np.tanh(c)
        out = np.dot(self.h, self.w_pi)
        out += self.b_pi
        return out

    def reset(self, mask: np.ndarray | None = None) -> None:
        if mask is None:
            self.h[:] = 0.0
            self.c[:] = 0.0
        elif mask.any():
            idx = torch.from_numpy(np.flatnonzero(mask)).to(self.h.device) if torch.is_tensor(self.h) \
                else mask
            self.h[idx] = 0.0
            self.c[idx] = 0.0

    def state(self) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_tensor(self.h):
            return self.h.clone(), self.c.clone()
        return torch.from_numpy(self.h.copy()), torch.from_numpy(self.c.copy())
