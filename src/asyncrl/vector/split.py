"""SplitVectorEnv: the sync executor's environments split between the calling process and
one worker process per other core (--vec-env split).

Why: an A2C learner on one process steps its B environments one after another while the
other cores wait, and threads cannot share that work for environments that hold the GIL
(ale-py's `act` does). Here the calling process steps the first group itself while each
worker process steps its own group at the same time; observations come back through
shared memory, everything else (rewards, flags, infos) through one pipe message per worker
and step. With step_acting, each group's actions are chosen and sent before the next
group's, so the workers step while the learner's acting forwards run; the update still
runs with every core while the workers wait. Nothing of the learner's math changes.

SubprocessVectorEnv (--vec-env subprocess) is the same with no group in the calling
process: one worker process per environment. Given `on_failure`, both restart a worker
that dies, hangs or raises while stepping (see SplitVectorEnv).
"""
from __future__ import annotations

import itertools
import multiprocessing
from copy import deepcopy
from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import (batch_space, create_shared_memory, iterate, read_from_shared_memory,
                                    write_to_shared_memory)

from ..procs import kill_group, single_threaded_children
from .common import call_envs, group_bounds, merged_infos, raise_first, step_env
from .envproc import fault_cause, start_worker

#: a restarted environment's seed: its last seed + RESEED x its restarts (hogwild's rule)
RESEED = 1000

_SAME_STEP = gym.vector.AutoresetMode.SAME_STEP


class SplitVectorEnv(gym.vector.VectorEnv):
    """B environments stepped in `groups` contiguous groups at once: the last group by the
    calling process, each other group by a worker process of its own.

    Each environment is stepped (and reset at an episode's end: SAME_STEP autoreset, the
    true final observation in info['final_obs']) with the same calls in the same order as a
    SyncVectorEnv of the same factories would make, and the infos are merged in environment
    order, so the results are the SyncVectorEnv's exactly. Observations of every environment
    live in one shared-memory batch that step and reset return (copied when copy=True).

    A worker that raises re-raises its exception here, its traceback noted on it. A worker
    that dies raises EOFError; one that does not answer within `timeout` seconds (when
    given) raises multiprocessing.TimeoutError. `processes` lists the workers, for a caller
    that wants their exit codes.

    With `on_failure(envs, why, detail)`, a worker that dies, raises or does not answer
    while stepping is restarted instead (a live one killed first): on_failure is called
    first (it may raise to stop: the env is then broken), then a new process rebuilds the
    group's environments and resets them with new seeds (each env's last seed + RESEED x
    the group's restarts), and the step returns for them: the new first observations,
    reward 0, truncated, and info['final_info'] with 'env_restarted' True (their
    'final_obs' is no true final observation: the step never happened; a learner must not
    bootstrap from it). `restarted` lists (index of that step, envs) for the caller, who
    clears it; `steps_taken` counts the steps. The other groups' results are unaffected.
    `local=False`: no group in the calling process (the spaces come from an env made and
    closed here).
    """

    metadata = {"autoreset_mode": _SAME_STEP}

    def __init__(self, env_fns, groups: int, context: str | None = None, copy: bool = True,
                 timeout: float | None = None, local: bool = True,
                 on_failure: Callable[[range, str, str], None] | None = None):
        env_fns = list(env_fns)
        if not env_fns:
            raise ValueError("SplitVectorEnv needs at least one environment")
        self.processes: list = []
        self._conns: list = []
        self._broken = ""
        self.copy, self.timeout, self.on_failure = copy, timeout, on_failure
        self.num_envs = n = len(env_fns)
        self._env_fns, self._seeds = env_fns, [None] * n
        self.steps_taken = 0
        self.restarted: list[tuple[int, range]] = []
        self._raised: dict[int, str] = {}       # worker k -> the traceback it sent
        if local:
            *self._remote, self._local = group_bounds(n, groups)
        else:
            self._remote, self._local = group_bounds(n, groups), range(n, n)
        self._lives = [0] * len(self._remote)
        self.envs: list[gym.Env] = []
        try:
            for fn in env_fns[self._local.start:self._local.stop]:
                self.envs.append(fn())
            probe = self.envs[0] if self.envs else env_fns[0]()
            try:
                self.metadata = dict(probe.metadata, autoreset_mode=_SAME_STEP)
                self.render_mode = probe.render_mode
                self.single_observation_space = probe.observation_space
                self.single_action_space = probe.action_space
            finally:
                if not self.envs:
                    probe.close()
            self.observation_space = batch_space(self.single_observation_space, n)
            self.action_space = batch_space(self.single_action_space, n)
            self._ctx = ctx = multiprocessing.get_context(context)
            self._shm = create_shared_memory(self.single_observation_space, n=n, ctx=ctx)
            self._observations = read_from_shared_memory(self.single_observation_space, self._shm, n=n)
            for group in self._remote:
                proc, conn = start_worker(ctx, env_fns, group, self.single_observation_space, self._shm)
                self.processes.append(proc)
                self._conns.append(conn)
            self._receive_all([])       # every worker has built its environments
        except BaseException:
            self.close(terminate=True)
            raise
        self._rewards = np.zeros(n, np.float64)
        self._terminations = np.zeros(n, np.bool_)
        self._truncations = np.zeros(n, np.bool_)

    # -- talking to the workers ----------------------------------------------------------
    def _receive(self, k: int):
        conn = self._conns[k]
        if self.timeout is not None and not conn.poll(self.timeout):
            raise multiprocessing.TimeoutError(
                f"environment worker {self.processes[k].name} did not answer within {self.timeout:g} s")
        status, payload = conn.recv()
        if status == "error":
            exc, tb = payload
            self._raised[k] = tb
            exc.add_note(f"raised in environment worker {self.processes[k].name}:\n{tb}")
            raise exc
        return payload

    def _receive_all(self, errors: list[BaseException], down: dict | None = None) -> list:
        """Every worker's answer, in order, once all have answered; else raise the first
        error (`errors` holds this process's own, if any), the others noted on it. A worker
        that fails, dies or does not answer leaves the vector env broken (its worker has
        ended, or is out of step with it): only close() is left. So does an interrupt while
        waiting, which is raised at once rather than waiting on a worker that may hang.
        `down` (a step, with on_failure): worker k -> what its failure raised, collected
        there instead (its answer None) for the caller to restart it; a worker already in
        it (its step could not be sent) is not waited for."""
        out = []
        for k in range(len(self._conns)):
            if down is not None and k in down:
                out.append(None)
                continue
            try:
                out.append(self._receive(k))
            except KeyboardInterrupt as exc:
                self._broken = f"interrupted while waiting for worker {self.processes[k].name}"
                errors.append(exc)
                break
            except BaseException as exc:
                if down is not None and self.on_failure is not None:
                    down[k] = exc
                    out.append(None)
                    continue
                self._broken = f"worker {self.processes[k].name} failed: {type(exc).__name__}: {exc}"
                errors.append(exc)
                out.append(None)
        raise_first(errors)
        return out

    def _restart(self, k: int, exc: BaseException) -> tuple:
        """Worker k failed while stepping (`exc`): say so (on_failure may raise to stop), start
        a new one for its group, reset its environments with new seeds (a restart that fails
        is one more failure), and return its step's answer: (rewards 0, not terminated,
        truncated, the reset infos, finals marked env_restarted)."""
        group = self._remote[k]
        while True:
            self._broken = f"worker {self.processes[k].name} failed and is being restarted"
            why, detail = fault_cause(self.processes[k], exc, self._raised.pop(k, None), self.timeout)
            self._conns[k].close()
            self.on_failure(group, why, detail)
            self._lives[k] += 1
            seeds = [None if self._seeds[i] is None else self._seeds[i] + RESEED * self._lives[k] for i in group]
            try:
                with single_threaded_children():
                    self.processes[k], self._conns[k] = start_worker(self._ctx, self._env_fns, group,
                                                                     self.single_observation_space, self._shm)
                self._receive(k)
                self._conns[k].send(("reset", (seeds, None)))
                infos = self._receive(k)
                break
            except Exception as again:  # it failed as it started: one more failure
                exc = again
        self._broken = ""
        self.restarted.append((self.steps_taken - 1, group))
        all_obs = iterate(self.observation_space, self._observations)
        finals = {j: (deepcopy(obs), {"env_restarted": True})
                  for j, obs in enumerate(itertools.islice(all_obs, group.start, group.stop))}
        n = len(group)
        return np.zeros(n), np.zeros(n, np.bool_), np.ones(n, np.bool_), infos, finals

    def _check_usable(self) -> None:
        if self._broken:
            raise RuntimeError(f"this SplitVectorEnv cannot go on ({self._broken}); close it")

    def _send_all(self, cmd: str, per_worker: list, down: dict | None = None) -> None:
        """Send each worker its command; `down` as in _receive_all (a step)."""
        for k, (conn, arg) in enumerate(zip(self._conns, per_worker)):
            self._send(k, conn, (cmd, arg), down)

    def _send(self, k: int, conn, message, down: dict | None) -> None:
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionError, OSError) as exc:
            if down is None or self.on_failure is None:     # the workers before k got it: out of step now
                self._broken = f"sending to worker {self.processes[k].name} failed: {type(exc).__name__}: {exc}"
                raise
            down[k] = exc               # dead: restarted once the others have answered

    # -- the VectorEnv API ---------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        self._check_usable()
        n = self.num_envs
        if seed is None:
            seeds = [None] * n
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"{len(seeds)} seeds for {n} environments")
        self._seeds = seeds
        self._send_all("reset", [([seeds[i] for i in g], options) for g in self._remote])
        env_infos: list[dict] = []
        errors: list[BaseException] = []
        try:
            for i, env in zip(self._local, self.envs):
                obs, info = env.reset(seed=seeds[i], options=options)
                write_to_shared_memory(self.single_observation_space, i, obs, self._shm)
                env_infos.append(info)
        except BaseException as exc:
            errors.append(exc)
        remote = [info for infos in self._receive_all(errors) for info in infos]
        self._terminations[:] = False
        self._truncations[:] = False
        infos = merged_infos(self, remote + env_infos, {})     # the local group is the last
        return (deepcopy(self._observations) if self.copy else self._observations), infos

    def step(self, actions):
        self._check_usable()
        actions = list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise ValueError(f"{len(actions)} actions for {self.num_envs} environments")
        self.steps_taken += 1
        down: dict = {}
        self._send_all("step", [actions[g.start:g.stop] for g in self._remote], down)
        return self._step_local_and_merge(actions[self._local.start:self._local.stop], [], down)

    def step_acting(self, act, obs: np.ndarray, actions: np.ndarray):
        """step() with the actions chosen group by group: for each group in environment order,
        actions[rows] = act(obs[rows]) (rows: the group's), and its environments start
        stepping at once. So the caller's forward passes for the later groups run while the
        workers step the earlier ones, and the actions equal one act(obs) call's wherever
        `act` treats rows independently (consuming any random numbers in row order). obs and
        actions: [num_envs, ...] arrays, obs typically this env's last observations; the
        local group is the last, so its forward runs while every worker steps."""
        self._check_usable()
        self.steps_taken += 1
        errors: list[BaseException] = []
        down: dict = {}
        sent, local = 0, self._local
        try:
            for k, (conn, g) in enumerate(zip(self._conns, self._remote)):
                actions[g.start:g.stop] = act(obs[g.start:g.stop])
                self._send(k, conn, ("step", actions[g.start:g.stop]), down)
                sent += 1
            if local:
                actions[local.start:local.stop] = act(obs[local.start:local.stop])
        except BaseException as exc:    # the workers that got actions step: wait for them
            errors.append(exc)
            self._broken = f"choosing actions failed mid-step: {type(exc).__name__}: {exc}"
            conns, self._conns = self._conns, self._conns[:sent]
            try:
                self._receive_all(errors, down)
            finally:
                self._conns = conns
        return self._step_local_and_merge(list(iterate(self.action_space, actions[local.start:local.stop]))
                                          if not errors else [], errors, down)

    def _step_local_and_merge(self, local_actions: list, errors: list[BaseException], down: dict):
        """Step the local group (the workers step theirs meanwhile), then gather the workers'
        results and merge everything in environment order."""
        space, shm, local = self.single_observation_space, self._shm, self._local
        env_infos: list[dict] = []
        finals: dict[int, tuple] = {}
        if not errors:
            try:
                for i, env, action in zip(local, self.envs, local_actions):
                    obs, self._rewards[i], self._terminations[i], self._truncations[i], info, final = \
                        step_env(env, action)
                    if final is not None:
                        finals[i] = final
                    write_to_shared_memory(space, i, obs, shm)
                    env_infos.append(info)
            except BaseException as exc:
                errors.append(exc)
        remote_infos: list[dict] = []
        answers = self._receive_all(errors, down)
        for k in sorted(down):          # only when every other group has answered
            answers[k] = self._restart(k, down.pop(k))
        for group, (rewards, terms, truncs, infos, group_finals) in zip(self._remote, answers):
            self._rewards[group.start:group.stop] = rewards
            self._terminations[group.start:group.stop] = terms
            self._truncations[group.start:group.stop] = truncs
            remote_infos.extend(infos)
            finals.update((group.start + j, final) for j, final in group_finals.items())
        infos = merged_infos(self, remote_infos + env_infos, finals)   # the local group is the last
        return ((deepcopy(self._observations) if self.copy else self._observations), np.copy(self._rewards),
                np.copy(self._terminations), np.copy(self._truncations), infos)

    def call(self, name: str, *args, **kwargs) -> tuple:
        """Each environment's attribute `name`, called with the arguments if it is callable."""
        self._check_usable()
        self._send_all("call", [(name, args, kwargs)] * len(self._conns))
        local = []
        errors: list[BaseException] = []
        try:
            local = call_envs(self.envs, name, args, kwargs)
        except BaseException as exc:
            errors.append(exc)
        return tuple(value for values in self._receive_all(errors) for value in values) + tuple(local)

    def get_attr(self, name: str) -> tuple:
        return self.call(name)

    def set_attr(self, name: str, values) -> None:
        self._check_usable()
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"{len(values)} values for {self.num_envs} environments")
        self._send_all("set_attr", [(name, values[g.start:g.stop]) for g in self._remote])
        errors: list[BaseException] = []
        try:
            for env, value in zip(self.envs, values[self._local.start:self._local.stop]):
                env.set_wrapper_attr(name, value)
        except BaseException as exc:
            errors.append(exc)
        self._receive_all(errors)

    def close_extras(self, terminate: bool = False, **kwargs) -> None:
        """Close the workers (killed at once with terminate=True, or when they do not answer
        within a few seconds) and this process's own environments."""
        try:
            if not terminate:
                for conn in self._conns:
                    try:
                        conn.send(("close", None))
                    except (BrokenPipeError, OSError):
                        pass
                for conn in self._conns:
                    try:
                        if conn.poll(5.0):
                            conn.recv()
                    except Exception:       # gone, or a stale answer that does not unpickle
                        pass
            for proc in self.processes:
                proc.join(timeout=0 if terminate else 5.0)
                kill_group(proc)
                proc.join(timeout=5.0)
            for conn in self._conns:
                conn.close()
        finally:
            for env in getattr(self, "envs", ()):
                env.close()


class SubprocessVectorEnv(SplitVectorEnv):
    """--vec-env subprocess: each environment in a worker process of its own, none in the
    calling process, all stepped at once after one batched choice of actions (no
    step_acting: B one-row forwards would cost more than they hide)."""

    step_acting = None

    def __init__(self, env_fns, context: str | None = None, copy: bool = True, timeout: float | None = None,
                 on_failure: Callable[[range, str, str], None] | None = None):
        env_fns = list(env_fns)
        super().__init__(env_fns, len(env_fns), context=context, copy=copy, timeout=timeout, local=False,
                         on_failure=on_failure)
