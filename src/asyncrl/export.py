"""Policies out of Python: `asyncrl export RUN --format torchscript|onnx --out FILE`.

The exported file maps a batch of preprocessed observations (what the run's env returns,
the Atari preprocessing included) to the greedy actions the agent takes:

- discrete actions: the argmax of the policy's logits (A3C, A2C) or of Q (the Q methods),
  int64 [N];
- continuous actions: the Gaussian policy's mean, clipped to the action space's bounds
  (what `Agent.act` and evaluation do), float32 [N, A];
- LSTM policies take the recurrent state in and give it out: (obs, h, c) -> (action, h_next,
  c_next), each state float32 [N, H]; h and c are zeros at the start of each episode.

Inputs: `obs` [N, *observation shape] as uint8 for byte images, as int64 indices [N] for a
Discrete observation space, float32 otherwise. docs/export.md shows how to use the files
with plain PyTorch or ONNX Runtime. The same description is stored in the file
(`asyncrl.json` in the TorchScript archive, metadata `asyncrl` in the ONNX model).
"""
from __future__ import annotations

import copy
import io
import json
import os
import warnings

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .api import Agent
from .checkpoint import write_atomically
from .errors import ConfigError
from .nets import gaussian_mean_var
from .paths import check_output_file, existing_output
from .spaces import obs_dtype

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 17


class _Greedy(nn.Module):
    """The agent's greedy action from its network's output rows [N, P]."""

    def __init__(self, agent: Agent):
        super().__init__()
        model = copy.deepcopy(agent.model).cpu().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        space = agent.observation_space
        self.one_hot = int(space.n) if isinstance(space, gym.spaces.Discrete) else 0
        box = agent.action_space if isinstance(agent.action_space, gym.spaces.Box) else None
        self.n_mean = int(np.prod(box.shape)) if box is not None else 0
        if box is not None:
            self.register_buffer("low", torch.as_tensor(box.low, dtype=torch.float32).reshape(-1))
            self.register_buffer("high", torch.as_tensor(box.high, dtype=torch.float32).reshape(-1))

    def rows(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations [N, ...] -> the float rows [N, D] the torso reads (Discrete: one-hot;
        byte images stay unscaled: the network's first layer folds in the 1/255)."""
        if self.one_hot:
            return F.one_hot(obs.long(), self.one_hot).float()
        return obs.reshape(obs.shape[0], -1).float()

    def action(self, out: torch.Tensor) -> torch.Tensor:
        if self.n_mean:
            mean = gaussian_mean_var(out, self.model.mean_squash)[0]
            return torch.maximum(torch.minimum(mean, self.high), self.low)
        return out.argmax(-1)


class FeedForwardPolicy(_Greedy):
    """obs [N, ...] -> action (see the module's docstring)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.rows(obs)
        model = self.model
        out = model.q(model.torso(x)) if hasattr(model, "q") else model.policy(model.torso(x))
        return self.action(out)


class RecurrentPolicy(_Greedy):
    """(obs [N, ...], h [N, H], c [N, H]) -> (action, h_next, c_next): one step of the LSTM core."""

    def forward(self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        model = self.model
        feats = model.torso(self.rows(obs))
        out, (h1, c1) = model.core(feats.unsqueeze(0), (h.unsqueeze(0), c.unsqueeze(0)))
        return self.action(model.policy(out[0])), h1[0], c1[0]


def exported_policy(agent: Agent) -> tuple[nn.Module, tuple[torch.Tensor, ...], dict]:
    """The module to export for `agent`, example inputs (a batch of 2 observations of the space,
    zero state) and the description stored with it; ConfigError for an observation space it
    cannot take (Box and Discrete can be exported)."""
    space = agent.observation_space
    if not isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
        entries = f" (entries {', '.join(space.spaces)})" if isinstance(space, gym.spaces.Dict) else ""
        raise ConfigError(f"export takes agents with Box or Discrete observations; this one has "
                          f"{type(space).__name__} observations{entries}, which export does not take yet "
                          f"(use the checkpoint with asyncrl.load and predict)")
    recurrent = bool(getattr(agent.model, "recurrent", False))
    policy = RecurrentPolicy(agent) if recurrent else FeedForwardPolicy(agent)
    if isinstance(space, gym.spaces.Discrete):
        obs, obs_spec = torch.zeros(2, dtype=torch.int64), {"dtype": "int64", "shape": ["N"]}
    else:
        dtype = torch.uint8 if obs_dtype(space) == torch.uint8 else torch.float32
        obs = torch.as_tensor(np.stack([space.sample(), space.sample()])).to(dtype)
        obs_spec = {"dtype": str(dtype).replace("torch.", ""), "shape": ["N", *space.shape]}
    inputs: tuple[torch.Tensor, ...] = (obs,)
    box = isinstance(agent.action_space, gym.spaces.Box)
    action_spec = ({"dtype": "float32", "shape": ["N", policy.n_mean], "low": policy.low.tolist(),
                    "high": policy.high.tolist()} if box else
                   {"dtype": "int64", "shape": ["N"], "n": int(agent.action_space.n)})
    info = {"algo": agent.algo, "env": agent.config.env, "step": int(agent.global_step),
            "inputs": {"obs": obs_spec}, "outputs": {"action": action_spec},
            "action": "the Gaussian policy's mean, clipped to the bounds" if box else "greedy (argmax)"}
    if recurrent:
        size = agent.model.core.hidden_size
        inputs += (torch.zeros(2, size), torch.zeros(2, size))
        for name in ("h", "c"):     # the state in; out as h_next, c_next (ONNX names are unique)
            state = {"dtype": "float32", "shape": ["N", size]}
            info["inputs"][name] = {**state, "start": "zeros at each episode's start"}
            info["outputs"][f"{name}_next"] = state
    return policy, inputs, info


def check_export_target(path: str, fmt: str, overwrite: bool) -> None:
    """ConfigError, before anything is loaded or written, for a format that is not known, an
    --out that exists (without `overwrite`) or cannot be written, or ONNX without its extra."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of: {', '.join(FORMATS)}, got {fmt!r}")
    problem = existing_output(path, "--out", overwrite) or check_output_file(path, "--out")
    if problem:
        raise ConfigError(problem)
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ConfigError("--format onnx needs the onnx package: pip install 'asyncrl[onnx]' (or pip install "
                              "onnx onnxruntime)") from None


def export_policy(agent: Agent, path: str, fmt: str = "torchscript", overwrite: bool = False) -> dict:
    """Write `agent`'s greedy policy to `path` as TorchScript (torch.jit.load) or ONNX, atomically
    (a temporary file renamed; an existing `path` is refused unless `overwrite`). Returns the
    description stored in the file (inputs, outputs, algorithm, env, step)."""
    check_export_target(path, fmt, overwrite)
    policy, inputs, info = exported_policy(agent)
    info["format"] = fmt
    buf = io.BytesIO()
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(policy, inputs), buf, _extra_files={"asyncrl.json": json.dumps(info)})
        else:
            _write_onnx(policy, inputs, info, buf)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, buf.getbuffer())
    return info


def _write_onnx(policy: nn.Module, inputs: tuple[torch.Tensor, ...], info: dict, out: io.BytesIO) -> None:
    import onnx

    names_in, names_out = list(info["inputs"]), list(info["outputs"])
    axes = {name: {0: "N"} for name in names_in + names_out}
    raw = io.BytesIO()
    with warnings.catch_warnings():     # the LSTM's state is an input, which is what this warning asks for
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        # the TorchScript-based exporter: the dynamo one needs onnxscript, which the extra does not install
        torch.onnx.export(policy, inputs, raw, input_names=names_in, output_names=names_out, dynamic_axes=axes,
                          opset_version=ONNX_OPSET, dynamo=False)
    model = onnx.load_from_string(raw.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = "asyncrl", json.dumps(info)
    onnx.checker.check_model(model)
    out.write(model.SerializeToString())
