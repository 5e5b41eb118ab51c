"""Optimisers over flat parameter/gradient tensors, with statistics that can live in
shared memory so every actor-learner updates the same ones (paper, section 4 and
supplementary section 7: "shared RMSProp" was the most robust).

Each optimiser's state is created eagerly (so it can be moved to shared memory before
any worker starts) and is a flat dict of tensors (so it checkpoints with weights_only).
The step is lock-free: concurrent workers race exactly as Hogwild! intends.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import shutil
import warnings
from typing import Iterator

import torch

from .config import Config
from .errors import ConfigError
from .threads import math_threads


#: elements per slice of a CPU update. Shared statistics and parameters are written by every
#: worker: one pass of each op over the whole 2.7 MB (the paper's Atari CNN) had each op miss
#: on lines the other core had just written; a slice runs all its ops while it is in cache.
#: Measured with 2 hogwild workers on Pong: 1.5-1.7 ms per update instead of 2.2-2.5 ms.
CHUNK = 1 << 17


#: `fused-optimizer auto` compiles the RMSProp update from this many parameters on (the
#: paper's Atari CNN has 678K): the compile takes 5-30 s the first time on a machine (then it
#: is cached), which a small model's updates would not repay.
FUSED_MIN_PARAMS = 250_000


@functools.lru_cache(maxsize=16)
def _slices(n: int, cpu: bool) -> tuple[slice, ...]:
    chunk = CHUNK if cpu else max(n, 1)
    return tuple(slice(s, s + chunk) for s in range(0, n, chunk))


class FlatOptimizer:
    name = ""

    def __init__(self) -> None:
        self._buf: torch.Tensor | None = None  # per-process scratch, never shared

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        if self._buf is None or self._buf.numel() < like.numel() or self._buf.device != like.device \
                or self._buf.dtype != like.dtype:
            self._buf = torch.empty(like.numel(), dtype=like.dtype, device=like.device)
        return self._buf[:like.numel()].view(like.shape)

    @staticmethod
    def _slices(like: torch.Tensor) -> tuple[slice, ...]:
        """The CHUNK-element slices a CPU update runs in (one slice on other devices)."""
        return _slices(like.numel(), like.device.type == "cpu")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The optimiser's statistics (private scratch, named with a leading _, excluded)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor) and not k.startswith("_")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
            raise ValueError(f"optimiser state does not match {self.name}: keys {sorted(state)}")
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)

    def share_memory_(self) -> "FlatOptimizer":
        for v in self.state_dict().values():
            v.share_memory_()
        return self

    def to(self, device: "torch.device | str") -> "FlatOptimizer":
        """This optimiser with its state on `device`: itself if it is already there, else a
        copy (the sync executor's GPU learner; `load_state_dict` brings the state back)."""
        state = self.state_dict()
        moved = {k: v.to(device) for k, v in state.items()}
        if all(moved[k] is state[k] for k in state):
            return self
        other = copy.copy(self)
        other._buf = None
        for k, v in moved.items():
            setattr(other, k, v)
        return other

    def is_shared(self) -> bool:
        return all(v.is_shared() for v in self.state_dict().values())

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_buf"] = None
        return state

    def step(self, params: torch.Tensor, grad: torch.Tensor, lr: float, rank: int = 0,
             mirror: torch.Tensor | None = None) -> None:
        """params -= the update for `grad`, then mirror <- params when a mirror is given (a
        hogwild worker's theta', refreshed for its next segment while the update is in cache)."""
        raise NotImplementedError

    def use_fused(self, mode: str, params: torch.Tensor, device: str, mirror: bool, threads: int = 1) -> str:
        """Set up the fused (compiled) update per `mode` (the config's fused_optimizer: auto,
        on, off) for updates of `params` on `device`, with a mirror (hogwild) or without, run
        with `threads` torch threads (the compiled code depends on it); returns what was
        chosen ("on" or "off"), for the run's resolved config. Only RMSProp has one."""
        if mode == "on":
            raise ConfigError(f"fused-optimizer on is for rmsprop and shared-rmsprop, not optimizer "
                              f"{self.name}; use --fused-optimizer auto or off")
        return "off"


class RMSprop(FlatOptimizer):
    """RMSProp as the paper defines it, epsilon inside the square root:

        g     <- alpha * g + (1 - alpha) * grad^2
        theta <- theta - lr * grad / sqrt(g + eps)

    shared=True: one g for all workers ("shared RMSProp"). shared=False: one row of g per
    worker (still allocated up front, so it is checkpointed and survives a resume).

    On the CPU the update is either torch ops over 128K-element slices, or, once `use_fused`
    has compiled it, one loop over the elements (torch.compile: each element of g, grad and
    theta read once, g and theta written once; about 3x faster with 2 workers, see docs/algorithms.md).
    """

    def __init__(self, n: int, alpha: float = 0.99, eps: float = 0.1, shared: bool = True, workers: int = 1):
        super().__init__()
        self.name = "shared-rmsprop" if shared else "rmsprop"
        self.alpha, self.eps, self.shared = alpha, eps, shared
        self.square_avg = torch.zeros(n) if shared else torch.zeros(workers, n)
        self._fused = False

    def use_fused(self, mode: str, params: torch.Tensor, device: str, mirror: bool, threads: int = 1) -> str:
        self._fused = False
        if mode == "off" or str(device) != "cpu":
            return "off"
        if mode == "auto":
            if params.numel() < FUSED_MIN_PARAMS:
                return "off"
            if _cpp_compiler() is None:
                return "off"
        try:
            _warm_kernel(self, params, mirror, threads)
        except Exception as exc:     # noqa: BLE001 - any compile failure means the eager update
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if mode == "on":
                raise ConfigError(f"fused-optimizer on: compiling the fused RMSProp update failed ({line}); "
                                  f"use --fused-optimizer off") from exc
            warnings.warn(f"fused-optimizer auto: compiling the fused RMSProp update failed ({line}); "
                          f"using the unfused update", RuntimeWarning, stacklevel=2)
            return "off"
        self._fused = True
        return "on"

    @torch.no_grad()
    def step(self, params: torch.Tensor, grad: torch.Tensor, lr: float, rank: int = 0,
             mirror: torch.Tensor | None = None) -> None:
        g = self.square_avg if self.shared else self.square_avg[rank % self.square_avg.shape[0]]
        if self._fused and params.device.type == "cpu":
            hp = self._hyper(lr)
            if mirror is None:
                _kernel(False)(g, grad, params, hp)
            else:
                _kernel(True)(g, grad, params, hp, mirror)
            return
        alpha, eps = self.alpha, self.eps
        for sl in self._slices(g):
            gs, gr = g[sl], grad[sl]
            gs.mul_(alpha).addcmul_(gr, gr, value=1.0 - alpha)
            # lr * grad * rsqrt(g + eps): 0.72-0.74 ms per Pong-CNN update against 0.83-0.96
            # for sqrt then addcdiv, one process (the same value to a rounding)
            inv = torch.add(gs, eps, out=self._scratch(gs)).rsqrt_()
            ps = params[sl].addcmul_(gr, inv, value=-lr)
            if mirror is not None:
                mirror[sl].copy_(ps)

    def _hyper(self, lr: float) -> torch.Tensor:
        """[alpha, 1 - alpha, eps, -lr] as the fused kernel takes them: a tensor, so that a new
        lr is not a new compile; written through a numpy view (no torch op per update)."""
        hp = getattr(self, "_hp", None)
        if hp is None:
            self._hp = hp = torch.tensor([self.alpha, 1.0 - self.alpha, self.eps, 0.0])
            self._hp_np = hp.numpy()
        self._hp_np[3] = -lr
        return hp

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_hp", None)
        state.pop("_hp_np", None)
        return state


def _rmsprop_update(g: torch.Tensor, grad: torch.Tensor, params: torch.Tensor, hp: torch.Tensor,
                    mirror: torch.Tensor | None = None) -> None:
    """RMSprop.step's update as whole-tensor expressions, for torch.compile to fuse into one
    loop; hp = [alpha, 1 - alpha, eps, -lr]."""
    g_new = g * hp[0] + hp[1] * grad * grad
    g.copy_(g_new)
    p_new = params + hp[3] * grad * torch.rsqrt(g_new + hp[2])
    params.copy_(p_new)
    if mirror is not None:
        mirror.copy_(p_new)


_KERNELS: dict[bool, "object"] = {}
#: compiles of the fused update one process may make (model sizes x thread counts)
RECOMPILE_LIMIT = 1024


def _kernel(mirror: bool):
    """The compiled update, with a mirror or without (one compiled function each: a compile
    specialises on the sizes, so each model size is compiled once per machine, then cached)."""
    k = _KERNELS.get(mirror)
    if k is None:
        if mirror:
            def update(g, grad, params, hp, mirror):
                _rmsprop_update(g, grad, params, hp, mirror)
        else:
            def update(g, grad, params, hp):
                _rmsprop_update(g, grad, params, hp)
        # each model size and thread count is one more compile of this same code: a process
        # that trains many sizes (a sweep, the test suite) must not hit dynamo's default limit
        # of 8 compiles per function (raised, never lowered; a compiled update is never
        # recompiled on the hot path: its size and threads are the warmed ones)
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
        k = _KERNELS[mirror] = torch.compile(update, dynamic=False, fullgraph=True)
    return k


def _warm_kernel(opt: RMSprop, params: torch.Tensor, mirror: bool, threads: int) -> None:
    """Compile the fused update for `params`' size now, in this process, on scratch tensors:
    before hogwild workers fork, so that they inherit the compiled code. Compiled with the
    `threads` torch threads the updates will run with (the compiled code is specific to it;
    with a hogwild worker's one thread it has no OpenMP region, which a forked worker must
    not share with its parent) and one compile thread (no compile worker processes). The
    compiler's progress bars get no tqdm monitor thread: the main process starts no helper
    thread before hogwild workers fork."""
    import torch._inductor.config as inductor_config

    n = params.numel()
    g, grad, p = torch.zeros(n), torch.zeros(n), torch.zeros(n)
    with torch.no_grad(), math_threads(threads), inductor_config.patch(compile_threads=1), \
            _no_tqdm_monitor():
        hp = opt._hyper(0.0)
        if mirror:
            _kernel(True)(g, grad, p, hp, torch.zeros(n))
        else:
            _kernel(False)(g, grad, p, hp)


@contextlib.contextmanager
def _no_tqdm_monitor() -> Iterator[None]:
    """tqdm bars made inside the block start no monitor thread (if tqdm is installed)."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield
        return
    interval, tqdm.monitor_interval = tqdm.monitor_interval, 0
    try:
        yield
    finally:
        tqdm.monitor_interval = interval


def _cpp_compiler() -> str | None:
    """The C++ compiler torch.compile would use on the CPU (CXX, else g++/c++/clang++), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


class MomentumSGD(FlatOptimizer):
    """Momentum SGD as the paper's supplementary section 7 runs it asynchronously: each
    worker i keeps its own momentum m_i (one row per worker, allocated up front so it is
    checkpointed) and applies, without locks,

        m_i   <- alpha * m_i + (1 - alpha) * grad
        theta <- theta - lr * m_i

    alpha 0 is plain SGD.
    """

    name = "sgd"

    def __init__(self, n: int, momentum: float = 0.9, workers: int = 1):
        super().__init__()
        self.momentum = momentum
        self.momentum_buf = torch.zeros(workers, n)

    @torch.no_grad()
    def step(self, params: torch.Tensor, grad: torch.Tensor, lr: float, rank: int = 0,
             mirror: torch.Tensor | None = None) -> None:
        m = self.momentum_buf[rank % self.momentum_buf.shape[0]]
        alpha = self.momentum
        for sl in self._slices(m):
            ms = m[sl].mul_(alpha).add_(grad[sl], alpha=1.0 - alpha)
            ps = params[sl].add_(ms, alpha=-lr)
            if mirror is not None:
                mirror[sl].copy_(ps)


class Adam(FlatOptimizer):
    """Adam with first/second moments and the step count shared by all workers."""

    name = "adam"

    def __init__(self, n: int, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__()
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = torch.zeros(n)
        self.exp_avg_sq = torch.zeros(n)
        self.step_count = torch.zeros(1, dtype=torch.float64)

    @torch.no_grad()
    def step(self, params: torch.Tensor, grad: torch.Tensor, lr: float, rank: int = 0,
             mirror: torch.Tensor | None = None) -> None:
        b1, b2 = self.beta1, self.beta2
        self.exp_avg.mul_(b1).add_(grad, alpha=1.0 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        t = float(self.step_count.add_(1.0)[0])
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        denom = torch.sqrt(self.exp_avg_sq, out=self._scratch(grad)).div_(math.sqrt(bc2)).add_(self.eps)
        params.addcdiv_(self.exp_avg, denom, value=-lr / bc1)
        if mirror is not None:
            mirror.copy_(params)


def build_optimizer(cfg: Config, n_params: int) -> FlatOptimizer:
    if cfg.optimizer == "shared-rmsprop":
        return RMSprop(n_params, cfg.rms_alpha, cfg.rms_eps, shared=True)
    if cfg.optimizer == "rmsprop":
        return RMSprop(n_params, cfg.rms_alpha, cfg.rms_eps, shared=False, workers=cfg.workers)
    if cfg.optimizer == "adam":
        return Adam(n_params, (cfg.adam_beta1, cfg.adam_beta2), cfg.adam_eps)
    if cfg.optimizer == "sgd":
        return MomentumSGD(n_params, cfg.sgd_momentum, workers=cfg.workers)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; available: shared-rmsprop, rmsprop, adam, sgd")


def annealed_lr(lr: float, step: int, start: int, end: int, anneal: bool) -> float:
    """Linear decay from lr at `start` to 0 at `end` (paper: 7e-4 annealed to 0)."""
    if not anneal or end <= start:
        return lr
    return lr * max(0.0, 1.0 - (step - start) / (end - start))
