"""The sync executor: one process steps B environments in lockstep and makes one batched
update per [t_max, B] segment (A2C when the algorithm is A3C's; the batched, synchronous
counterparts of the value-based methods otherwise). The algorithm's loss and the
Learner are the hogwild worker's own; only where the rollout comes from differs.

Deterministic on CPU: environment i is seeded with seed + i, exploration draws from one
generator seeded with the run's seed, and nothing depends on timing (use --log-steps for
metrics rows at fixed steps). Interrupts are deferred to the end of the current update.

An env subprocess (--vec-env split or subprocess) that dies, hangs or raises is restarted
with new seeds within the hogwild workers' budget (max-worker-restarts, the Supervisor's);
the segment's columns of the environments it stepped are left out of that update (see
`leave_out`).
"""
from __future__ import annotations

import multiprocessing
import time
import traceback

import gymnasium as gym
import numpy as np
import torch

from ..atari import AtariOptions, is_atari_id
from ..config import DEFAULT_SYNC_ENVS, Config
from ..errors import WorkerError
from ..learner import Learner, make_learner
from ..procs import DeferredInterrupt, signal_name
from ..rollout import Rollout, VectorSegmentCollector
from ..system import available_cores, lower_native_threads
from ..threads import math_threads
from ..vector import choose_vec_env, close_vector_env, make_vector_env
from ..vector.atari import envpool_option_problem
from .base import Executor, TrainJob
from .supervise import Supervisor


def choose_threads(cfg: Config, factory, vec_env: str) -> int:
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
    return WorkerError(f"{what} at step {step:,}; the run stops (an environment stepped in this process "
                       f"is not restarted){tb}")


def env_group_name(envs: range) -> str:
    """'the subprocess of environment 3' / 'of environments 0-3', for faults.log."""
    if len(envs) == 1:
        return f"the subprocess of environment {envs.start}"
    return f"the subprocess of environments {envs.start}-{envs.stop - 1}"


def rollout_columns(ro: Rollout, keep: list[int]) -> Rollout:
    """The rollout of the environments (columns) `keep` only, a copy: final observations and
    their actions of the others dropped, the rest renumbered; no acting tape (it holds the
    whole batch's forwards: the learner runs its own)."""
    cols = torch.tensor(keep, dtype=torch.int64)
    where = torch.full((ro.rewards.shape[1],), -1, dtype=torch.int64)
    where[cols] = torch.arange(len(keep))
    final_obs = final_idx = final_next = None
    if ro.final_idx is not None:
        sel = where[ro.final_idx[:, 1]] >= 0
        if bool(sel.any()):
            final_obs, final_idx = ro.final_obs[sel], ro.final_idx[sel].clone()
            final_idx[:, 1] = where[final_idx[:, 1]]
            final_next = None if ro.final_next_actions is None else ro.final_next_actions[sel]
    return Rollout(ro.obs[:, cols], ro.actions[:, cols], ro.rewards[:, cols], ro.terminated[:, cols],
                   ro.truncated[:, cols], final_obs=final_obs, final_idx=final_idx,
                   next_actions=None if ro.next_actions is None else ro.next_actions[cols],
                   final_next_actions=final_next,
                   state0=None if ro.state0 is None else tuple(x[cols] for x in ro.state0),
                   starts=None if ro.starts is None else ro.starts[:, cols])


def leave_out(ro: Rollout, finished: list, restarted: list[tuple[int, range]], first_step: int):
    """The segment without the columns of the environments restarted in it, and its finished
    episodes without the ones the restarts ended (restarted: (vector env step, envs);
    first_step: the vector env's step count at the segment's start). Dropped, not
    bootstrapped: the step an environment died in has no reward and no next observation,
    and a rollout has no per-step mask, so the one honest choice is to train on none of
    that environment's steps of this segment; the other columns are trained on as
    always. Returns (rollout or None when no column is left, finished)."""
    gone = {i for _, envs in restarted for i in envs}
    cut = {(s - first_step, i) for s, envs in restarted for i in envs}
    finished = [f for f in finished if (f[0], f[1]) not in cut]
    keep = [b for b in range(ro.rewards.shape[1]) if b not in gone]
    return (rollout_columns(ro, keep) if keep else None), finished


def sync_back(learner: Learner, job: TrainJob) -> None:
    """Copy parameters, target network and optimiser state to the agent's CPU tensors
    (nothing to do when the learner already works on them)."""
    if learner.params is not job.params:
        job.params.copy_(learner.params)
    if job.target_params is not None and learner.target_params is not job.target_params:
        job.target_params.copy_(learner.target_params)
    if learner.optimizer is not job.optimizer:
        job.optimizer.load_state_dict(learner.optimizer.state_dict())


class BlockSampler:
    """The sampling generator of one of several learners that split a batch of `total`
    environments into blocks, the envs first .. first + n - 1 being this learner's: it stands
    in for the np.random.Generator a policy draws from (`random`, `standard_normal`), and
    every draw of shape (n, ...) takes (total, ...) numbers from the generator it wraps, which
    every learner seeds alike, into a buffer allocated once, returning this learner's rows.
    Environment i's random numbers are then those that one learner stepping all `total` envs
    from the same generator gives it, whatever the split: N learners x n envs act as one
    learner x N n envs does (executors.ray_a2c)."""

    def __init__(self, rng: np.random.Generator, first: int, n: int, total: int):
        if first < 0 or n < 1 or first + n > total:
            raise ValueError(f"envs {first}..{first + n - 1} are not within {total}")
        self.rng, self.first, self.n, self.total = rng, first, n, total
        self._bufs: dict = {}

    def _block(self, shape, dtype) -> np.ndarray:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not shape or shape[0] != self.n:
            raise ValueError(f"a block sampler draws for its {self.n} environments (a shape ({self.n}, ...)), "
                             f"not a shape {shape}")
        key = (shape, np.dtype(dtype))
        buf = self._bufs.get(key)
        if buf is None:
            buf = self._bufs[key] = np.empty((self.total, *shape[1:]), dtype)
        return buf

    def random(self, shape, dtype=np.float64) -> np.ndarray:
        buf = self._block(shape, dtype)
        self.rng.random(out=buf, dtype=dtype)
        return buf[self.first:self.first + self.n]

    def standard_normal(self, shape, dtype=np.float64) -> np.ndarray:
        buf = self._block(shape, dtype)
        self.rng.standard_normal(out=buf, dtype=dtype)
        return buf[self.first:self.first + self.n]


def cuda_available() -> bool:
    return torch.cuda.is_available()


class SyncExecutor(Executor):
    name = "sync"
    default_workers = DEFAULT_SYNC_ENVS     # environments stepped in lockstep

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self.device = torch.device(cfg.torch_device())
        self.vec_env: str | None = None
        self.act_threads = 1
        self.threads = 1

    @classmethod
    def option_problems(cls, cfg: Config) -> list[str]:
        """Its own options: device, vec-env (torch-threads is refused by the actor executors)."""
        p = []
        if cfg.device == "cuda" and cfg.executor in ("auto", "sync") and not cuda_available():
            p.append("device 'cuda' was asked for but CUDA is not available (no GPU, or torch "
                     "built without CUDA); use --device cpu or --device auto")
        if cfg.vec_env in ("ale", "envpool") and not is_atari_id(cfg.env):
            p.append(f"vec-env {cfg.vec_env!r} steps Atari games only (ALE/Pong-v5, PongNoFrameskip-v4, ...), "
                     f"not {cfg.env!r}")
        elif cfg.vec_env in ("ale", "envpool") and cfg.env_kwargs:
            p.append(f"vec-env {cfg.vec_env!r} makes its games itself and takes no env-kwargs "
                     f"({', '.join(cfg.env_kwargs)}); use --vec-env inline, split, threads or subprocess")
        elif cfg.vec_env == "ale" and cfg.life_loss_terminal:
            p.append("vec-env 'ale' cannot end episodes on a lost life for learning only; use "
                     "--vec-env inline, split, threads or subprocess with --life-loss-terminal")
        elif cfg.vec_env == "envpool":
            problem = envpool_option_problem(AtariOptions.from_config(cfg))
            if problem:
                p.append(problem)
        return p

    def describe(self) -> str:
        return (f"{self.cfg.workers} environments in lockstep (sync executor, device "
                f"{self.cfg.torch_device()})")

    def update_layout(self) -> tuple[bool, int]:
        return False, (self.threads if self.device.type == "cpu" else torch.get_num_threads())

    def resolve(self, factory) -> dict:
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
        self.supervisor = supervisor = Supervisor(job)

        def restart(envs: range, why: str, detail: str) -> None:     # past the budget: WorkerError
            supervisor.failed(envs.start, why, self.step, detail, who=env_group_name(envs),
                              how="restarting it with new seeds")
        venv = make_vector_env(job.env_factory, cfg.workers, self.vec_env, cfg.start_method, cfg.worker_timeout,
                               on_failure=restart)
        learner = None
        failed = True
        threads = self.threads if self.device.type == "cpu" else torch.get_num_threads()
        with math_threads(threads):
            if self.device.type == "cpu" and self.act_threads != threads:
                torch.zeros(1 << 17).add_(1.0)   # the OpenMP pool exists: lower its threads
                lower_native_threads()
            try:
                learner = make_learner(cfg, venv.single_observation_space, venv.single_action_space,
                                       job.params, job.target_params, job.optimizer, job.schedule,
                                       local_copy=False, device=self.device)
                job.live_params = learner.params
                self._train(job, venv, learner)
                failed = False
            finally:
                if learner is not None:
                    sync_back(learner, job)
                close_vector_env(venv, failed)
        return self.step

    def _train(self, job: TrainJob, venv, learner: Learner) -> None:
        """The lockstep loop (lockstep_updates); self.step follows the parameters' global step
        after every update, which is logged, supervised and checkpointed here."""
        log, supervisor = job.logger, self.supervisor
        updates = lockstep_updates(job.cfg, venv, learner, self.device, self.act_threads, job.start_step,
                                   job.target_step)
        with DeferredInterrupt() as stop:
            while not stop.requested:
                done = next(updates, None)
                if done is None:
                    break
                self.step, finished = done
                if finished:
                    now = time.time() - job.time_origin
                    for worker, step, ret, length in finished:
                        log.episode(worker=worker, step=step, wall_time=now, ret=ret, length=length)
                log.stats(0, *learner.take_stats())
                supervisor.tick(self.step, before_checkpoint=lambda: sync_back(learner, job))
                if supervisor.solved():
                    break
            self.interrupted = stop.requested
        log.tick(self.step, force=True)


def lockstep_updates(cfg: Config, venv, learner: Learner, device: torch.device, act_threads: int, step: int,
                     target: int, first_env: int = 0, all_envs: int | None = None, life: int = 0):
    """The sync executor's loop, one batched update per [t_max, B] segment of the B envs of
    `venv` from global step `step` to `target`: yields (global step, episodes that ended as
    (env, global step, return, length)) after every update.

    Data-parallel learners (executors.ray_a2c) run it too, each on its block of `all_envs`
    environments (first_env .. first_env + B - 1) with a gradient reduction installed in its
    learner (Learner.reduce_with): env i is seeded seed + i and draws its sampling noise as
    one learner stepping all `all_envs` would (BlockSampler), the global step advances
    by all the envs' steps, and episodes are named by their global env index. `life` > 0: a
    restarted group's envs and sampling noise are seeded afresh."""
    algo, B = learner.algo, venv.num_envs
    all_envs = B if all_envs is None else all_envs
    others = all_envs - B                        # envs stepped in lockstep by the other learners
    seed = cfg.seed + life * all_envs
    collector = VectorSegmentCollector(venv, algo.segment_length, seed + first_env, algo.needs_next_action)
    rng = np.random.default_rng(cfg.seed if life == 0 else [cfg.seed, life])
    if others:
        rng = BlockSampler(rng, first_env, B, all_envs)
    policy = algo.make_policy(learner.model, rng, n_envs=B)
    if policy.tape is not None:     # the learner replays the acting forwards of each segment
        policy.tape.watch(learner.local)
    seg = algo.segment_length
    policy.at_step(step)
    learn_threads = torch.get_num_threads()
    act_threads = act_threads if device.type == "cpu" else learn_threads
    torch.set_num_threads(act_threads)
    restarted = getattr(venv, "restarted", None)     # (step, envs) of env subprocesses restarted
    while step < target:
        t = min(seg, -(-(target - step) // all_envs))   # the last segment may be shorter
        first = getattr(venv, "steps_taken", 0)
        try:
            ro, finished = collector.collect(policy, t)
        except WorkerError:
            raise                   # an env subprocess failed past the restart budget
        except Exception as exc:
            raise env_failure(venv, exc, step, cfg.worker_timeout) from exc
        if restarted:
            ro, finished = leave_out(ro, finished, restarted, first)
            restarted.clear()
        width = 0 if ro is None else ro.rewards.shape[1] + others
        before = step
        if ro is not None:
            step += ro.length * width
            if act_threads != learn_threads:
                torch.set_num_threads(learn_threads)
            learner.update(ro.to(device), step)
            if act_threads != learn_threads:
                torch.set_num_threads(act_threads)
        policy.at_step(step)
        yield step, [(first_env + b, before + (ti + 1) * width, ret, length) for ti, b, ret, length in finished]
