"""One worker process of SplitVectorEnv: what it runs (`serve`), starting it, and saying why
one failed (died, hung or raised) in the words of faults.log."""
from __future__ import annotations

import multiprocessing
import os
import time
import traceback

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import write_to_shared_memory

from ..procs import kill_group, lead_own_group, signal_name
from .common import call_envs, step_env


def serve(conn, parent_end, parent_pid: int, env_fns, first: int, space: gym.Space, shm) -> None:
    """A worker process: builds its environments (indices first, first+1, ...), then answers
    commands until told to close or until the parent goes away (its pipe closes; on Linux
    the kernel also kills it when the parent dies). It leads its own process group
    (procs.lead_own_group): Ctrl-C and a SIGTERM to the group reach the main process only,
    which stops at the end of an update and closes the environments."""
    if parent_end is not None:          # forked: the parent's end of the pipe is ours too
        parent_end.close()
    lead_own_group(parent_pid)
    envs: list[gym.Env] = []
    try:
        envs = [fn() for fn in env_fns]
        conn.send(("ok", None))
        n = len(envs)
        rewards = np.zeros(n, np.float64)
        terms, truncs = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
        while True:
            try:
                cmd, arg = conn.recv()
            except EOFError:                # the parent is gone
                return
            if cmd == "step":
                infos, finals = [], {}
                for j, env in enumerate(envs):
                    obs, rewards[j], terms[j], truncs[j], info, final = step_env(env, arg[j])
                    if final is not None:
                        finals[j] = final
                    write_to_shared_memory(space, first + j, obs, shm)
                    infos.append(info)
                conn.send(("ok", (rewards, terms, truncs, infos, finals)))
            elif cmd == "reset":
                seeds, options = arg
                infos = []
                for j, env in enumerate(envs):
                    obs, info = env.reset(seed=seeds[j], options=options)
                    write_to_shared_memory(space, first + j, obs, shm)
                    infos.append(info)
                conn.send(("ok", infos))
            elif cmd == "call":
                conn.send(("ok", call_envs(envs, *arg)))
            elif cmd == "set_attr":
                name, values = arg
                for env, value in zip(envs, values):
                    env.set_wrapper_attr(name, value)
                conn.send(("ok", None))
            elif cmd == "close":
                conn.send(("ok", None))
                return
            else:
                raise RuntimeError(f"unknown command {cmd!r}")
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    except BaseException as exc:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        try:
            conn.send(("error", (exc, tb)))
        except Exception:               # the exception itself does not pickle
            conn.send(("error", (RuntimeError(f"{type(exc).__name__}: {exc}"), tb)))
    finally:
        for env in envs:
            try:
                env.close()
            except Exception:
                pass


def start_worker(ctx, env_fns, group: range, space: gym.Space, shm):
    """Start the worker process of the environments `group` (env_fns: all of them); returns
    (process, the parent's end of its pipe)."""
    parent, child = ctx.Pipe()
    forked = ctx.get_start_method() == "fork"
    proc = ctx.Process(target=serve, name=f"asyncrl-env-{group.start}-{group.stop - 1}",
                       args=(child, parent if forked else None, os.getpid(), [env_fns[i] for i in group],
                             group.start, space, shm), daemon=True)
    proc.start()
    child.close()
    return proc, parent


def fault_cause(proc, exc: BaseException, worker_tb: str | None, timeout: float | None) -> tuple[str, str]:
    """Why worker `proc` failed, as (why, detail) for faults.log ('was killed by SIGKILL',
    'failed: RuntimeError: ...' with its traceback as the detail, 'did not answer ... (hung;
    killed)'), once it has ended: a live one (hung, or out of step) is killed first.
    `exc`: what talking to it raised; `worker_tb`: the traceback it sent, if it raised."""
    if isinstance(exc, multiprocessing.TimeoutError):
        why = f"did not answer a step within {timeout:g} s (worker-timeout; hung, killed)"
    elif worker_tb:
        why = f"failed: {worker_tb.strip().splitlines()[-1]}"
    else:
        deadline = time.monotonic() + 2.0   # a broken pipe: its process may not be reaped just yet
        while proc.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.02)
        code = proc.exitcode
        if code is None:
            why = f"stopped answering ({type(exc).__name__}: {exc}; killed)"
        elif code < 0:
            why = f"was killed by {signal_name(-code)}"
        else:
            why = f"exited with code {code}"
    kill_group(proc)
    proc.join(timeout=5.0)
    return why, (f"\n{worker_tb.rstrip()}" if worker_tb else "")
