"""The networks the algorithms train: ActorCritic (policy and value heads on a shared torso,
optionally through an LSTM core; softmax or Gaussian policies) and QNetwork."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .cnn import AtariCNN
from .layers import init
from .tape import ActivationTape, cnn_backward


#: added to the softplus variance of the Gaussian policy so log(var) stays finite
VAR_EPS = 1e-5


class ActorCritic(nn.Module):
    """Policy and linear value head on a shared torso (paper, section 4), or on separate
    torsos when `value_torso` is given (the paper's MuJoCo networks), optionally with an
    LSTM core after the torso (A3C-LSTM, `core_size` cells; policy and value share it).

    The policy head is one linear layer: softmax logits [N, A] for discrete actions, or
    [N, 2A] = (mean, pre-softplus variance) for a Gaussian over A continuous dimensions; with
    mean_bounds (--gaussian-mean tanh) the first A are the mean before its squash into the
    bounds (see gaussian_mean_var).

    Feed-forward:  forward(obs [N, D]) -> (policy_out [N, P], value [N])
    Recurrent:     step(obs [B, D], (h, c)) -> (policy_out [B, P], value [B], (h, c))
                   unroll(obs [T, B, D], (h, c), starts [T, B]) -> (policy_out [T, B, P],
                   value [T, B], states after each step: h, c [T, B, H])
    """

    def __init__(self, torso: nn.Module, feat_dim: int, n_actions: int, value_torso: nn.Module | None = None,
                 *, continuous: bool = False, core_size: int = 0,
                 mean_bounds: tuple[np.ndarray, np.ndarray] | None = None):
        super().__init__()
        if core_size and value_torso is not None:
            raise ValueError("an LSTM core is shared by policy and value: no separate value torso")
        if mean_bounds is not None and not continuous:
            raise ValueError("mean_bounds bound a Gaussian policy's mean: continuous actions only")
        # the Gaussian's mean squashed into [low, high] (--gaussian-mean tanh): center + half *
        # tanh(linear); buffers, so that they follow the model to a device, but not saved (the
        # run's config and env give them back)
        if mean_bounds is not None:
            center, half = mean_center_half(*mean_bounds)
            self.register_buffer("mean_center", torch.from_numpy(center), persistent=False)
            self.register_buffer("mean_half", torch.from_numpy(half), persistent=False)
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
        self.policy = init(nn.Linear(out_dim, 2 * n_actions if continuous else n_actions), 0.01)
        self.value = init(nn.Linear(out_dim, 1), 1.0)

    @property
    def mean_squash(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(center, half) [A] of the bounded Gaussian mean, or None (the paper's linear mean)."""
        return (self.mean_center, self.mean_half) if hasattr(self, "mean_center") else None

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


def mean_center_half(low, high) -> tuple[np.ndarray, np.ndarray]:
    """The middle and half-width of [low, high] per dimension, float32 [A] each (computed in
    float64, halves first, so that wide finite bounds do not overflow on the way; a
    half-width beyond float32 is inf: ActorCriticAlgorithm.check_spaces refuses those)."""
    low, high = (np.asarray(b, np.float64).reshape(-1) for b in (low, high))
    with np.errstate(over="ignore"):
        return (high / 2 + low / 2).astype(np.float32), (high / 2 - low / 2).astype(np.float32)


def gaussian_mean_var(out: torch.Tensor, mean_squash: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian policy's head output [..., 2A] -> mean [..., A] (linear) and variance
    [..., A] = softplus(linear) + VAR_EPS (paper, section 5.2: "a linear layer for the mean
    and a softplus for the variance"). With mean_squash = (center, half) [A] (the model's,
    --gaussian-mean tanh) the mean is center + half * tanh(linear), inside the action bounds."""
    a = out.shape[-1] // 2
    mu = out[..., :a]
    if mean_squash is not None:
        mu = mean_squash[0] + mean_squash[1] * torch.tanh(mu)
    return mu, F.softplus(out[..., a:]) + VAR_EPS


class QNetwork(nn.Module):
    """One linear Q output per action on the same torsos: forward(obs [N, D]) -> q [N, A]."""

    def __init__(self, torso: nn.Module, feat_dim: int, n_actions: int):
        super().__init__()
        self.torso = torso
        self.q = init(nn.Linear(feat_dim, n_actions), 1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q(self.torso(obs))
