"""Networks: torso (MLP for vectors, the paper's CNN for images), optional LSTM core, heads.

Policy and value share every non-output layer (paper, section 4). Initialisation is
orthogonal (gain sqrt(2) in the torso, 0.01 on the policy head so the initial policy is
near-uniform, 1 on the value head).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .config import Config
from .errors import EnvError

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def obs_dim(space: gym.Space) -> int:
    """Size of the float vector an observation is encoded to (Discrete: one-hot)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return int(math.prod(space.shape))


def is_image_space(space: gym.Space) -> bool:
    """Box observations with 2 or 3 dimensions are images (the CNN's input)."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) in (2, 3)


def image_layout(shape: tuple[int, ...]) -> tuple[bool, int, tuple[int, int]]:
    """(channels_last, channels, (height, width)) of an image observation's shape: [C, H, W],
    [H, W, C] (a last axis of at most 4 after a larger first one, as gym images come) or [H, W]."""
    if len(shape) == 2:
        return False, 1, (shape[0], shape[1])
    if shape[-1] <= 4 < shape[0]:
        return True, shape[-1], (shape[0], shape[1])
    return False, shape[0], (shape[1], shape[2])


def obs_dtype(space: gym.Space) -> torch.dtype:
    """How rollouts store an observation: images of bytes stay uint8 (4x less memory and
    no conversion per step; the CNN scales them), everything else is float32."""
    if is_image_space(space) and space.dtype == np.uint8:
        return torch.uint8
    return torch.float32


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp_torso(in_dim: int, hidden: list[int], activation: str) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [_init(nn.Linear(d, h), math.sqrt(2)), _ACTIVATIONS[activation]()]
        d = h
    return nn.Sequential(*layers), d


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
        self.conv1 = _init(nn.Conv2d(c, 16, 8, stride=4), math.sqrt(2))
        self.conv2 = _init(nn.Conv2d(16, 32, 4, stride=2), math.sqrt(2))
        self._floats: dict = {}       # scratch for byte -> float input, one per input shape
        with torch.no_grad():
            n = self._convs(torch.zeros(1, *self.shape)).shape[1]
        self.fc = _init(nn.Linear(n, hidden), math.sqrt(2))

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

    def _image(self, x: torch.Tensor) -> torch.Tensor:
        """Flat rows [N, D] -> float images [N, C, H, W] (pixel values unscaled)."""
        x = x.view(-1, *self.shape)
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self._float_input(x)

    def _conv1_weight(self) -> torch.Tensor:
        return self.conv1.weight if self.scale == 1.0 else self.conv1.weight * self.scale

    def _convs(self, x: torch.Tensor, tape: "ActivationTape | None" = None) -> torch.Tensor:
        # functional calls and in-place ReLUs (no backward needs a pre-ReLU output): an acting
        # forward at batch 1 is mostly overhead, and these cut it by about a sixth
        h1 = F.conv2d(self._image(x), self._conv1_weight(), self.conv1.bias, stride=self.conv1.stride).relu_()
        if tape is not None:
            tape.keep_h1(x, h1)
        return F.conv2d(h1, self.conv2.weight, self.conv2.bias, stride=self.conv2.stride).relu_().flatten(1)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_floats"] = {}
        return state

    def forward(self, x: torch.Tensor, tape: "ActivationTape | None" = None) -> torch.Tensor:
        """The features [N, 256]; with a `tape` (acting), the activations are kept in its next
        N rows for a backward pass without a second forward (replay)."""
        h2 = self._convs(x, tape)
        h3 = F.linear(h2, self.fc.weight, self.fc.bias).relu_()
        if tape is not None:
            tape.keep_h2_h3(h2, h3)
        return h3

    def replay(self, tape: "ActivationTape", obs: torch.Tensor) -> torch.Tensor:
        """The features of tape rows 0..N-1 (kept by acting forwards on the rows of `obs`
        [N, D] with the current parameters), as a tensor whose backward pass runs the layers'
        backward on the kept activations: the gradient of forward(obs), without computing
        forward(obs)."""
        return _CNNReplay.apply(self, tape, obs, self.conv1.weight, self.conv1.bias, self.conv2.weight,
                                self.conv2.bias, self.fc.weight, self.fc.bias)


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
            x = cnn._image(torch.zeros(1, math.prod(cnn.shape)))
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
    fmt = torch.channels_last if T >= CHANNELS_LAST_MIN_BATCH else torch.contiguous_format
    h1 = h1.contiguous(memory_format=fmt)
    d1, dw2, db2 = torch.ops.aten.convolution_backward(
        d2.contiguous(memory_format=fmt), h1, cnn.conv2.weight, [cnn.conv2.out_channels],
        list(cnn.conv2.stride), [0, 0], [1, 1], False, [0, 0], 1, [True, True, True])
    d1 = _relu_backward(d1, h1)
    with torch.enable_grad():     # the learner's (channels-last) input scratch for T rows
        x = cnn._image(obs)
    _, dw1, db1 = torch.ops.aten.convolution_backward(
        d1, x, cnn._conv1_weight().detach(), [cnn.conv1.out_channels], list(cnn.conv1.stride),
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


#: added to the softplus variance of the Gaussian policy so log(var) stays finite
VAR_EPS = 1e-5


class ActorCritic(nn.Module):
    """Policy and linear value head on a shared torso (paper, section 4), or on separate
    torsos when `value_torso` is given (the paper's MuJoCo networks), optionally with an
    LSTM core after the torso (A3C-LSTM, `core_size` cells; policy and value share it).

    The policy head is one linear layer: softmax logits [N, A] for discrete actions, or
    [N, 2A] = (mean, pre-softplus variance) for a Gaussian over A continuous dimensions
    (see gaussian_mean_var).

    Feed-forward:  forward(obs [N, D]) -> (policy_out [N, P], value [N])
    Recurrent:     step(obs [B, D], (h, c)) -> (policy_out [B, P], value [B], (h, c))
                   unroll(obs [T, B, D], (h, c), starts [T, B]) -> (policy_out [T, B, P],
                   value [T, B], states after each step: h, c [T, B, H])
    """

    def __init__(self, torso: nn.Module, feat_dim: int, n_actions: int, value_torso: nn.Module | None = None,
                 *, continuous: bool = False, core_size: int = 0):
        super().__init__()
        if core_size and value_torso is not None:
            raise ValueError("an LSTM core is shared by policy and value: no separate value torso")
        self.torso = torso
        self.value_torso = value_torso
        self.continuous = continuous
        self.n_actions = n_actions
        # one LSTM layer; whole segments run through nn.LSTM's native loop (about twice as
        # fast forward+backward on the CPU as a Python loop of LSTMCell steps)
        self.core = nn.LSTM(feat_dim, core_size) if core_size else None
        if self.core is not None:
            nn.init.orthogonal_(self.core.weight_ih_l0)
            nn.init.orthogonal_(self.core.weight_hh_l0)
            nn.init.zeros_(self.core.bias_ih_l0)
            nn.init.zeros_(self.core.bias_hh_l0)
        out_dim = core_size or feat_dim
        self.policy = _init(nn.Linear(out_dim, 2 * n_actions if continuous else n_actions), 0.01)
        self.value = _init(nn.Linear(out_dim, 1), 1.0)

    @property
    def recurrent(self) -> bool:
        return self.core is not None

    @property
    def costly_torso(self) -> bool:
        """The CNN: worth keeping rows that need no gradient out of the learner's graph."""
        return isinstance(self.torso, AtariCNN)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.torso(obs)
        hv = h if self.value_torso is None else self.value_torso(obs)
        return self.policy(h), self.value(hv).squeeze(-1)

    def policy_out(self, obs: torch.Tensor, tape: ActivationTape | None = None) -> torch.Tensor:
        """Acting needs the policy only: the value torso is skipped (feed-forward). With a
        `tape` (the CNN) the torso's activations are kept for replay()."""
        h = self.torso(obs) if tape is None else self.torso(obs, tape)
        return F.linear(h, self.policy.weight, self.policy.bias)

    @property
    def replayable(self) -> bool:
        """Feed-forward CNN shared by policy and value: its gradient can be computed from an
        ActivationTape of the acting forwards (replay) instead of a second forward."""
        return self.costly_torso and self.value_torso is None and self.core is None

    def bootstrap_value(self, tape: ActivationTape, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) [1] of one observation [1, D], without a graph: through the NumPy mirror of
        the acting forwards when the tape has one (half the time of torch's batch-1 forward)."""
        with torch.no_grad():
            if tape.features is None:
                return self(obs)[1]
            h = torch.from_numpy(tape.features(obs.numpy()))
            return F.linear(h, self.value.weight, self.value.bias)

    def replay(self, tape: ActivationTape, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward(obs) [N, D] from the tape's rows 0..N-1 (the tape must hold acting forwards
        on these rows: tape.holds): the same outputs and, on backward, the same gradients, with
        no CNN forward."""
        h = self.torso.replay(tape, obs)
        return self.policy(h), self.value(h).squeeze(-1)

    def replay_numpy(self, tape: ActivationTape, T: int) -> tuple[np.ndarray, np.ndarray]:
        """replay()'s outputs for tape rows 0..T-1 as NumPy, with no graph: (policy_out [T, P],
        value [T]), for a closed-form gradient (replay_grads)."""
        h3 = tape.h3.numpy()[:T]
        out = np.matmul(h3, self.policy.weight.detach().numpy().T)
        out += self.policy.bias.detach().numpy()
        values = np.matmul(h3, self.value.weight.detach().numpy()[0])
        values += self.value.bias.detach().numpy()
        return out, values

    @torch.no_grad()
    def replay_grads(self, tape: ActivationTape, obs: torch.Tensor, d_out: np.ndarray,
                     d_value: np.ndarray) -> None:
        """Write every parameter's .grad (all must exist; they are overwritten): the gradient of
        a loss whose gradient with respect to replay_numpy's outputs is d_out [T, P] and
        d_value [T], backpropagated through the heads and the CNN on the tape's rows (which
        tape.holds(obs, torso) vouches for), with no autograd graph."""
        T = obs.shape[0]
        h3 = tape.h3.numpy()[:T]
        wp, wv = self.policy.weight.detach().numpy(), self.value.weight.detach().numpy()
        np.matmul(d_out.T, h3, out=self.policy.weight.grad.numpy())
        np.sum(d_out, 0, out=self.policy.bias.grad.numpy())
        np.matmul(d_value[None], h3, out=self.value.weight.grad.numpy())
        self.value.bias.grad.numpy()[0] = d_value.sum()
        d3 = np.matmul(d_out, wp)
        d3 += d_value[:, None] * wv
        cnn_backward(self.torso, tape, obs, torch.from_numpy(d3), write=True)

    # ------------------------------------------------------------------ recurrent
    def initial_state(self, batch: int, device: torch.device | str | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c) for `batch` environments: the state at every episode's start."""
        n = self.core.hidden_size
        dev = device if device is not None else self.value.weight.device
        return torch.zeros(batch, n, device=dev), torch.zeros(batch, n, device=dev)

    def cell(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the LSTM core on features x [B, F]: (h, c) [B, H] each."""
        core = self.core
        return torch.lstm_cell(x, state, core.weight_ih_l0, core.weight_hh_l0, core.bias_ih_l0, core.bias_hh_l0)

    def step(self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        h, c = self.cell(self.torso(obs), state)
        return self.policy(h), self.value(h).squeeze(-1), (h, c)

    def unroll(self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], starts: torch.Tensor,
               keep: "list[int] | None" = None):
        """Run the core over T steps of B environments from `state`, zeroing an environment's
        state before step t where starts[t] (its episode begins there). Gradients flow back
        through these T steps only: truncated BPTT, with `state` a constant.

        Returns (policy_out [T, B, P], value [T, B], states):
          keep=None: states = (h, c) [T, B, H] after every step (one LSTM cell call per step);
          keep=[t, ...]: states = {t: (h, c) [B, H]} after those steps only. The segment then
            runs as chunks between the steps where some environment starts an episode (one
            chunk for a hogwild segment), each one nn.LSTM call: about twice as fast forward
            and backward on the CPU as the per-step cell. The learner uses this form.
        """
        T, B = obs.shape[:2]
        feats = self.torso(obs.reshape(T * B, -1)).view(T, B, -1)   # the torso batched over time
        h, c = state[0].detach(), state[1].detach()
        if keep is None:
            hs, cs = [], []
            for t in range(T):
                if bool(starts[t].any()):
                    h, c = _zero_rows(h, c, starts[t])
                h, c = self.cell(feats[t], (h, c))
                hs.append(h)
                cs.append(c)
            H = torch.stack(hs)
            states = (H, torch.stack(cs))
        else:
            wanted = {int(t) for t in keep}
            cuts = {t for t in range(1, T) if bool(starts[t].any())} | {t + 1 for t in wanted if t + 1 < T}
            bounds = [0, *sorted(cuts), T]
            outs, states = [], {}
            for t0, t1 in zip(bounds[:-1], bounds[1:]):
                if bool(starts[t0].any()):
                    h, c = _zero_rows(h, c, starts[t0])
                out, (hn, cn) = self.core(feats[t0:t1], (h.unsqueeze(0), c.unsqueeze(0)))
                h, c = hn[0], cn[0]
                outs.append(out)
                if t1 - 1 in wanted:
                    states[t1 - 1] = (h, c)
            H = torch.cat(outs)
        return self.policy(H), self.value(H).squeeze(-1), states


def _zero_rows(h: torch.Tensor, c: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, c) with the rows where `rows` [B] is True set to zero (out of place, for autograd)."""
    keep = (~rows).to(h.dtype).unsqueeze(-1)
    return h * keep, c * keep


def gaussian_mean_var(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian policy's head output [..., 2A] -> mean [..., A] (linear) and variance
    [..., A] = softplus(linear) + VAR_EPS (paper, section 5.2: "a linear layer for the mean
    and a softplus for the variance")."""
    a = out.shape[-1] // 2
    return out[..., :a], F.softplus(out[..., a:]) + VAR_EPS


class QNetwork(nn.Module):
    """One linear Q output per action on the same torsos: forward(obs [N, D]) -> q [N, A]."""

    def __init__(self, torso: nn.Module, feat_dim: int, n_actions: int):
        super().__init__()
        self.torso = torso
        self.q = _init(nn.Linear(feat_dim, n_actions), 1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(self.torso(obs))


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

    def __init__(self, cnn: "AtariCNN", head: nn.Linear, fallback: Callable[[np.ndarray], np.ndarray],
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

    def __init__(self, model: "ActorCritic", n_envs: int):
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
