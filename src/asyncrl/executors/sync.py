"""The sync executor: one process steps B environments in lockstep and makes one batched
update per [t_max, B] segment (A2C when the algorithm is A3C's; the batched, synchronous
counterparts of the value-based methods otherwise). The algorithm's loss and the
Learner are the hogwild worker's own; only where the rollout comes from differs.

Deterministic on CPU: environment i is seeded with seed + i, exploration draws from one
generator seeded with the run's seed, and nothing depends on timing (use --log-steps for
metrics rows at fixed steps). Interrupts are deferred to the end of the current update.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor, wait
from copy import deepcopy

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector.utils import concatenate, iterate

from ..algos import make_algorithm
from ..config import Config
from ..envs import EnvFactory
from ..errors import EnvError, WorkerError
from ..flat import bind_params_
from ..learner import Learner
from ..optim import FlatOptimizer
from ..rollout import VectorSegmentCollector
from . import TrainJob, math_threads
from .split_vec import SplitVectorEnv, group_bounds, step_env, merged_infos, raise_first
from .hogwild import _single_threaded_children, resolve_start_method, signal_name
from ..system import available_cores, lower_native_threads

#: an environment step slower than this is worth a subprocess (pipe round trip ~50-100 us)
SUBPROCESS_STEP_S = 200e-6


class _EnvInChild:
    """The env factory as a vector env's subprocess calls it. The subprocess leaves the
    process group first: Ctrl-C and a SIGTERM to the group are for the main process to
    handle (it stops at the end of an update and closes the envs), not for env workers,
    which would otherwise die mid-step (or run the parent's SIGTERM handler)."""

    def __init__(self, factory: EnvFactory):
        self.factory = factory

    def __call__(self) -> gym.Env:
        if multiprocessing.parent_process() is not None:   # AsyncVectorEnv also calls it in the parent
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return self.factory()


def env_step_seconds(factory: EnvFactory, seed: int, steps: int = 64, budget_s: float = 0.25) -> float:
    """Mean seconds per step (resets included) of one environment under random actions."""
    env = factory()
    try:
        env.action_space.seed(seed)
        env.reset(seed=seed)
        n, t0 = 0, time.perf_counter()
        while n < steps and time.perf_counter() - t0 < budget_s:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            n += 1
            if term or trunc:
                env.reset()
        return (time.perf_counter() - t0) / max(n, 1)
    finally:
        env.close()


def choose_vec_env(cfg: Config, factory: EnvFactory) -> str:
    """Where the environments step, for --vec-env auto. Atari games step inline: the same
    AtariPreprocessed envs as the hogwild workers' and evaluation's (ale-py's vector env resets
    slightly differently: --vec-env ale opts in; A2C on Pong ran at 0.99-1.07x of inline with
    it in interleaved pairs, a2c_pairs_ale_inline.json). Not in threads: ale-py 0.12's `act` holds
    the GIL (two threads stepping two games ran at 0.78-0.91x of one thread stepping both
    here), and A2C on Pong ran at 0.97-1.07x of inline with them (a2c_pairs_threads_inline.json).
    Nor split between processes: A2C on Pong ran at 0.97-1.10x of inline with a worker
    process stepping half the games (a2c_pairs_split_inline.json). Other envs: subprocesses
    pay off only for envs slower than a pipe round trip, and when there is more than one
    core to run them on."""
    if cfg.vec_env != "auto":
        return cfg.vec_env
    if factory.atari is not None:
        return "inline"
    if cfg.workers < 2 or available_cores() < 2:
        return "inline"
    return "subprocess" if env_step_seconds(factory, cfg.seed) > SUBPROCESS_STEP_S else "inline"


class _TimedAsyncVectorEnv(gym.vector.AsyncVectorEnv):
    """AsyncVectorEnv whose waits for its subprocesses give up after `wait_timeout` seconds
    (multiprocessing.TimeoutError) instead of blocking forever on a hung environment."""

    def __init__(self, *args, wait_timeout: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.wait_timeout = wait_timeout

    def reset_wait(self, timeout=None, *args, **kwargs):
        return super().reset_wait(self.wait_timeout if timeout is None else timeout, *args, **kwargs)

    def step_wait(self, timeout=None):
        return super().step_wait(self.wait_timeout if timeout is None else timeout)


class ThreadedVectorEnv(gym.vector.SyncVectorEnv):
    """A SyncVectorEnv whose step runs its environments in `threads` contiguous groups at
    once: the first group in the calling thread, the others in a pool of threads.

    It pays off only for environments whose step spends most of its time outside the GIL:
    MuJoCo's physics releases it (16 Ant-v5 envs stepped 1.44-1.59x faster in 2 groups than
    inline here), but HalfCheetah-v5, whose step is mostly Python, ran at 0.78-1.02x, and the
    ALE's `act` holds it (ale-py 0.12: Pong at 0.80x); benchmarks/vector_env_threads.py.

    Each environment is stepped (and reset at an episode's end) by one thread, with the same
    calls in the same order as the SyncVectorEnv, and the infos are merged in environment
    order once every group is done, so the results are the SyncVectorEnv's exactly, for
    environments that share no mutable state (a global random generator, a module-level
    cache). SAME_STEP autoreset only."""

    def __init__(self, env_fns, threads: int, **kwargs):
        self._pool: ThreadPoolExecutor | None = None
        mode = gym.vector.AutoresetMode(kwargs.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP))
        if mode != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(f"ThreadedVectorEnv steps with SAME_STEP autoreset only, not {mode}")
        super().__init__(env_fns, **kwargs)
        n = self.num_envs
        self._groups = group_bounds(n, threads)
        self._pool = (ThreadPoolExecutor(len(self._groups) - 1, thread_name_prefix="asyncrl-env")
                      if len(self._groups) > 1 else None)
        self._env_infos: list[dict] = [{}] * n
        self._finals: list = [None] * n     # (final obs, final info) where an episode ended, else None

    def _step_group(self, group: range, actions: list) -> None:
        envs, rewards, terms, truncs = self.envs, self._rewards, self._terminations, self._truncations
        for i in group:
            self._env_obs[i], rewards[i], terms[i], truncs[i], self._env_infos[i], self._finals[i] = \
                step_env(envs[i], actions[i])

    def _run_groups(self, actions: list) -> None:
        """Step every group; return (or raise the first group's error, the others' noted on
        it) only once no thread is stepping any more."""
        futures = [self._pool.submit(self._step_group, g, actions) for g in self._groups[1:]]
        errors: list[BaseException] = []
        try:
            self._step_group(self._groups[0], actions)
        except BaseException as exc:
            errors.append(exc)
        pending = set(futures)
        while pending:
            try:
                pending = wait(pending)[1]
            except BaseException as exc:        # e.g. a second Ctrl-C: keep waiting, then raise it
                errors.append(exc)
        errors += [exc for exc in (f.exception() for f in futures) if exc is not None]
        raise_first(errors)

    def step(self, actions):
        actions = list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise ValueError(f"{len(actions)} actions for {self.num_envs} environments")
        self._run_groups(actions)
        infos = merged_infos(self, self._env_infos,
                             {i: final for i, final in enumerate(self._finals) if final is not None})
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return (deepcopy(self._observations) if self.copy else self._observations, np.copy(self._rewards),
                np.copy(self._terminations), np.copy(self._truncations), infos)

    def close_extras(self, **kwargs) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        finally:
            super().close_extras(**kwargs)


def choose_threads(cfg: Config, factory: EnvFactory, vec_env: str) -> int:
    """The CPU learner's torch threads (cfg.torch_threads; 0: auto). Auto: one per core for
    Atari with in-process envs: the CNN's batched forward and backward gain from them, and
    nothing of ours runs beside the learner (measured here: A2C on Pong 5,150 -> 5,680 frames/s
    inline, 7,090 with ale). Otherwise one: small updates gain nothing from more, and a
    spare OpenMP thread spinning while the other core is busy (env subprocesses, another
    job) slowed updates 5-400x in measurements here."""
    if cfg.torch_threads:
        return cfg.torch_threads
    if factory.atari is not None and vec_env in ("inline", "split", "threads", "ale", "envpool"):
        return available_cores()
    return 1


def make_vector_env(factory: EnvFactory, n: int, mode: str, start_method: str = "auto",
                    timeout: float = 0.0) -> gym.vector.VectorEnv:
    """n copies of the env, reset within the step that ends an episode (SAME_STEP autoreset:
    the true final observation is in info['final_obs']). Subprocess envs that take longer
    than `timeout` seconds (> 0) to answer a step or reset raise multiprocessing.TimeoutError."""
    same_step = gym.vector.AutoresetMode.SAME_STEP
    if mode in ("ale", "envpool"):
        from ..atari import EnvPoolAtari, make_ale_vector_env

        if factory.atari is None:
            raise EnvError(f"vec-env {mode!r} steps Atari games only, not {factory.name!r}")
        make = make_ale_vector_env if mode == "ale" else EnvPoolAtari
        return make(factory.env_id, factory.atari, n, num_threads=min(n, available_cores()))
    if mode == "inline":
        if factory.atari is not None and factory.fn is None:
            from ..atari import AtariSyncVectorEnv

            return AtariSyncVectorEnv([factory] * n)
        return gym.vector.SyncVectorEnv([factory] * n, copy=False, autoreset_mode=same_step)
    if mode == "split":
        with _single_threaded_children():
            return SplitVectorEnv([factory] * n, available_cores(), context=resolve_start_method(start_method),
                                  copy=False, timeout=timeout or None)
    if mode == "threads":
        return ThreadedVectorEnv([factory] * n, available_cores(), copy=False, autoreset_mode=same_step)
    with _single_threaded_children():
        return _TimedAsyncVectorEnv([_EnvInChild(factory)] * n, shared_memory=True, copy=False,
                                    context=resolve_start_method(start_method), daemon=True,
                                    autoreset_mode=same_step, wait_timeout=timeout or None)


def close_vector_env(venv: gym.vector.VectorEnv, failed: bool) -> None:
    """Close the envs; after a failure without waiting on them (a dead or hung subprocess
    would never answer the close), killing what is left of the subprocesses."""
    if not failed:
        venv.close()
        return
    try:
        with warnings.catch_warnings():     # "close while waiting for step": that is the point
            warnings.simplefilter("ignore")
            venv.close(terminate=True)
    except Exception:                   # a dead subprocess's pipe: nothing left to say to it
        pass
    for proc in getattr(venv, "processes", ()):
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5.0)
    venv.closed = True


def env_failure(venv: gym.vector.VectorEnv, exc: Exception, step: int, timeout: float) -> WorkerError:
    """A WorkerError that says which environment failed and how (its traceback included)."""
    procs = getattr(venv, "processes", ())
    deadline = time.monotonic() + (2.0 if isinstance(exc, (EOFError, OSError)) else 0.0)
    while True:                         # a broken pipe: its process may not be reaped just yet
        dead = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode not in (None, 0)]
        if dead or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    tb = ""
    if isinstance(exc, multiprocessing.TimeoutError):
        what = f"the environment subprocesses did not answer within {timeout:g} s (worker-timeout)"
    elif dead:
        i, code = dead[0]
        how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with code {code}"
        what = f"environment subprocess {i} {how}"
    else:
        what = f"acting in the environments failed: {type(exc).__name__}: {exc}"
        tb = "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return WorkerError(f"{what} at step {step:,}; the run stops (the sync executor does not restart "
                       f"environments){tb}")


def make_sync_learner(cfg: Config, obs_space: gym.Space, action_space: gym.Space, params: torch.Tensor,
                      target_params: torch.Tensor | None, optimizer: FlatOptimizer,
                      schedule: tuple[int, int], device: torch.device | str = "cpu", rank: int = 0) -> Learner:
    """The sync executor's learner: the model trains on the parameters themselves (bound,
    not copied: on the CPU they *are* the agent's flat parameters; on another device a copy
    there, which `sync_back` returns). The ray executor applies each actor's gradients with
    one of these per rank (`rank` picks the optimiser's per-worker rows, where it has them)."""
    algo = make_algorithm(cfg)
    model = algo.build_model(obs_space, action_space).to(device)
    dev_params = params.to(device)
    bind_params_(model, dev_params, requires_grad=True)
    target = dev_target = None
    if target_params is not None:
        dev_target = target_params.to(device)
        target = algo.build_model(obs_space, action_space).to(device)
        bind_params_(target, dev_target)
    return Learner(algo, model, dev_params, dev_params, optimizer.to(device), cfg, schedule, rank,
                   target, dev_target)


def sync_back(learner: Learner, job: TrainJob) -> None:
    """Copy parameters, target network and optimiser state to the agent's CPU tensors
    (nothing to do when the learner already works on them)."""
    if learner.params is not job.params:
        job.params.copy_(learner.params)
    if job.target_params is not None and learner.target_params is not job.target_params:
        job.target_params.copy_(learner.target_params)
    if learner.optimizer is not job.optimizer:
        job.optimizer.load_state_dict(learner.optimizer.state_dict())


class _DeferredInterrupt:
    """SIGINT/SIGTERM set a flag instead of raising mid-update; the loop stops at the end of
    the current update (parameters and optimiser statistics are never half-written)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._saved: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested:              # a second Ctrl-C: stop right now
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._saved[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._saved.items():
            signal.signal(s, h)


class SyncExecutor:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.device = torch.device(cfg.torch_device())
        self.vec_env: str | None = None
        self.act_threads = 1
        self.threads = 1
        self.interrupted = False
        self.step: int | None = None    # global step of the parameters, after every update

    def resolve(self, factory: EnvFactory) -> dict:
        """The concrete choices behind `auto` values (written to the run's config.yaml)."""
        if self.vec_env is None:
            self.vec_env = choose_vec_env(self.cfg, factory)
            self.threads = choose_threads(self.cfg, factory, self.vec_env)
            # split: the acting forwards run while the env workers step, on one thread
            self.act_threads = 1 if self.vec_env == "split" else self.threads
        out = {"executor": "sync", "device": str(self.device), "vec_env": self.vec_env}
        if self.device.type == "cpu":
            out["torch_threads"] = self.threads     # the learner's; acting: act_threads
        return out

    def run(self, job: TrainJob) -> int:
        cfg = job.cfg
        self.resolve(job.env_factory)
        self.step = job.start_step
        venv = make_vector_env(job.env_factory, cfg.workers, self.vec_env, cfg.start_method, cfg.worker_timeout)
        learner = None
        failed = True
        threads = self.threads if self.device.type == "cpu" else torch.get_num_threads()
        with math_threads(threads):
            if self.device.type == "cpu" and self.act_threads != threads:
                torch.zeros(1 << 17).add_(1.0)   # the OpenMP pool exists: lower its threads
                lower_native_threads()
            try:
                learner = make_sync_learner(cfg, venv.single_observation_space, venv.single_action_space,
                                            job.params, job.target_params, job.optimizer, job.schedule,
                                            self.device)
                self._train(job, venv, learner)
                failed = False
            finally:
                if learner is not None:
                    sync_back(learner, job)
                close_vector_env(venv, failed)
        return self.step

    def _train(self, job: TrainJob, venv, learner: Learner) -> None:
        """The lockstep loop; self.step follows the parameters' global step after every update."""
        cfg, log, device = job.cfg, job.logger, self.device
        algo, B = learner.algo, venv.num_envs
        collector = VectorSegmentCollector(venv, algo.segment_length, cfg.seed, algo.needs_next_action)
        policy = algo.make_policy(learner.model, np.random.default_rng(cfg.seed), n_envs=B)
        if policy.tape is not None:     # the learner replays the acting forwards of each segment
            policy.tape.watch(learner.local)
        step, target, seg = job.start_step, job.target_step, algo.segment_length
        policy.at_step(step)
        learn_threads = torch.get_num_threads()
        act_threads = self.act_threads if device.type == "cpu" else learn_threads
        torch.set_num_threads(act_threads)
        last_ckpt = time.monotonic()
        with _DeferredInterrupt() as stop:
            while step < target and not stop.requested:
                t = min(seg, -(-(target - step) // B))   # the last segment may be shorter
                try:
                    ro, finished = collector.collect(policy, t)
                except Exception as exc:
                    raise env_failure(venv, exc, step, cfg.worker_timeout) from exc
                before, step = step, step + ro.num_steps
                if act_threads != learn_threads:
                    torch.set_num_threads(learn_threads)
                learner.update(ro.to(device), step)
                if act_threads != learn_threads:
                    torch.set_num_threads(act_threads)
                self.step = step
                policy.at_step(step)
                if finished:
                    now = time.time() - job.time_origin
                    for ti, b, ret, length in finished:
                        log.episode(worker=b, step=before + (ti + 1) * B, wall_time=now, ret=ret, length=length)
                log.stats(0, *learner.take_stats())
                log.tick(step)
                if log.solved(cfg.stop_return):
                    break
                if time.monotonic() - last_ckpt >= cfg.checkpoint_interval:
                    sync_back(learner, job)
                    job.checkpoint(step)
                    last_ckpt = time.monotonic()
            self.interrupted = stop.requested
        log.tick(step, force=True)
