"""Environment construction: Gymnasium ids (including `module:Id`), or zero-argument
factories from the Python API, made picklable so worker processes can build their own."""
from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from .atari import AtariOptions, is_atari_id, looks_atari, make_atari, require_ale
from .errors import EnvError
from .pixels import PixelOptions, register_ids, shape_observations
from .presets import pixel_mode
from .spaces import same_kind
from .success import with_success


class EnvFactory:
    """A picklable recipe for an environment: a Gymnasium id, a user callable, or (for one
    process: the sync executor with one env, evaluation) an env instance.

    Callables (lambdas and closures included) are serialised with cloudpickle, so
    they survive the `spawn`/`forkserver` start methods without registration. An id
    `module:Id` imports `module` first; from the directory the recipe was made in too (as
    `python -m` has it on sys.path), in worker processes and Ray actors alike.
    """

    #: the Atari preprocessing (atari.AtariOptions) when env_id is an ale-py game, else None
    atari = None
    #: the env instance given instead of an id or factory (one process only), else None
    instance = None
    #: where a `module:Id` id's module may be found besides sys.path: the directory it was named in
    home = None
    #: a non-Atari image env's preprocessing (pixels.PixelOptions) or None; the Dict entries kept (() all)
    pixels, obs_keys = None, ()

    def __init__(self, env: "str | Callable[[], gym.Env] | gym.Env | EnvFactory", **make_kwargs: Any):
        if isinstance(env, EnvFactory):
            self.__dict__.update({k: v for k, v in env.__dict__.items() if k != "make_kwargs"})
            self.make_kwargs = dict(env.make_kwargs)
            return
        if isinstance(env, str):
            if not env.strip():
                raise EnvError("environment id is empty; give a Gymnasium id such as CartPole-v1")
            self.env_id, self.fn = env, None
            if ":" in env:
                self.home = os.getcwd()
        elif isinstance(env, (gym.Env, gym.vector.VectorEnv)):
            _refuse_vector(env, "env")
            self.env_id, self.instance = f"{type(env.unwrapped).__name__} instance", env
            self.fn = lambda: _Borrowed(env)
        elif callable(env):
            self.env_id, self.fn = getattr(env, "__name__", "custom"), env
        else:
            raise EnvError(f"env must be a Gymnasium id, a zero-argument factory or a gymnasium.Env, got "
                           f"{type(env).__name__}")
        self.make_kwargs = make_kwargs

    @property
    def name(self) -> str:
        return self.env_id if self.fn is None else f"<{self.env_id}>"

    def configured(self, cfg: Any) -> "EnvFactory":
        """This recipe with the config's env-kwargs and image preprocessing (Atari's, or --pixels')."""
        out = EnvFactory(self)
        if cfg.env_kwargs and self.fn is not None:
            raise EnvError(f"env-kwargs (env_kwargs) are for gym.make of an env id; {self.name} is a factory "
                           f"or an instance: give it its arguments yourself")
        out.make_kwargs = {**cfg.env_kwargs, **self.make_kwargs}
        if self.fn is None and is_atari_id(self.env_id):
            out.atari = AtariOptions.from_config(cfg)
        else:       # any other image env: --pixels (auto: ViZDoom and CarRacing ids)
            mode = pixel_mode(self.env_id if self.fn is None else None, cfg.pixels)
            if mode is not None:
                out.pixels = PixelOptions(cfg.frame_skip, cfg.frame_stack, cfg.screen_size, mode == "gray")
        out.obs_keys = tuple(cfg.obs_keys)
        return out

    def for_evaluation(self) -> "EnvFactory":
        """The recipe evaluation uses: Atari games are played whole (all lives)."""
        out = EnvFactory(self)
        if self.atari is not None:
            out.atari = self.atari.for_evaluation()
        return out

    def __call__(self, **kwargs: Any) -> gym.Env:
        return shape_observations(self._make(**kwargs), self.pixels, self.obs_keys, self.name)

    def _make(self, **kwargs: Any) -> gym.Env:
        if self.fn is not None:
            env = self.fn()
            _refuse_vector(env, f"env factory {self.env_id!r} returned")
            if not isinstance(env, gym.Env) and not hasattr(env, "step"):
                raise EnvError(f"env factory {self.env_id!r} returned {type(env).__name__}, not a gymnasium.Env")
            return env
        if ":" in self.env_id:
            self._import_module()
        register_ids(self.env_id)       # ViZDoom's ids: registered by importing its Gymnasium module
        try:
            if self.atari is not None:
                return make_atari(self.env_id, self.atari, **{**self.make_kwargs, **kwargs})
            return with_success(gym.make(self.env_id, **{**self.make_kwargs, **kwargs}), self.env_id)
        except gym.error.Error as exc:
            if looks_atari(self.env_id):
                require_ale(self.env_id)       # without ale-py: say what to install
            raise EnvError(f"unknown environment {self.env_id!r}: {_first_line(exc)}") from None
        except ModuleNotFoundError as exc:
            module = self.env_id.split(":", 1)[0] if ":" in self.env_id else exc.name
            raise EnvError(f"unknown environment {self.env_id!r}: cannot import module {module!r}") from None

    def _import_module(self) -> None:
        """Import the module of a `module:Id` id: from sys.path, else from the directory the id
        was named in (the console script, unlike `python -m`, does not put the working directory
        on sys.path; nor do Ray's workers). EnvError names the sys.path searched."""
        module = self.env_id.split(":", 1)[0]
        home = self.home if self.home and os.path.isdir(self.home) and self.home not in sys.path else None
        for extra in (None, home) if home else (None,):
            if extra is not None:
                sys.path.insert(0, extra)          # as `python -m` would have it
            try:
                importlib.import_module(module)
                return
            except ModuleNotFoundError as exc:
                if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
                    raise EnvError(f"unknown environment {self.env_id!r}: module {module!r} was found but its "
                                   f"import failed: {_first_line(exc)}") from None
                missing = exc
                if extra is not None:
                    sys.path.remove(extra)
        raise EnvError(f"unknown environment {self.env_id!r}: cannot import module {module!r} "
                       f"({_first_line(missing)}); searched sys.path: {os.pathsep.join(p or '.' for p in sys.path)}"
                       f"{f' and {home}' if home else ''}") from None

    def __getstate__(self) -> dict:
        if self.instance is not None:
            raise EnvError(f"the env instance {self.env_id!r} cannot be sent to another process; pass a "
                           f"zero-argument factory (lambda: gym.make(...)) or a Gymnasium id instead")
        state = dict(self.__dict__)
        if self.fn is not None:
            import cloudpickle

            state["fn"] = cloudpickle.dumps(self.fn)
        return state

    def __setstate__(self, state: dict) -> None:
        if state.get("fn") is not None and isinstance(state["fn"], bytes):
            import cloudpickle

            state["fn"] = cloudpickle.loads(state["fn"])
        self.__dict__.update(state)


class _Borrowed(gym.Wrapper):
    """An env instance the caller owns: asyncrl steps it but never closes it."""

    def close(self) -> None:
        pass


def _refuse_vector(env: Any, what: str) -> None:
    """EnvError for a vector env where one env is wanted: asyncrl vectorises by itself."""
    if isinstance(env, gym.vector.VectorEnv) or hasattr(env, "num_envs"):
        raise EnvError(f"{what} a vector env ({type(env).__name__} of {getattr(env, 'num_envs', '?')} envs); "
                       f"asyncrl steps one env per worker and vectorises by itself: give one env "
                       f"(a factory of it) and workers=N")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def probe_spaces(factory: EnvFactory, check: bool = True, timeout: float = 0.0) -> tuple[gym.Space, gym.Space]:
    """Build the env once in this process to read its spaces and (check) hold it to the
    Gymnasium API (env_api_problem: a reset and a few random steps, for at most
    CHECK_TIMEOUT_S, or `timeout` (the run's worker-timeout) if shorter: an env that hangs is
    left to the workers' timeout), closed again: every problem is reported before any worker."""
    env = _build(factory)
    try:
        limit = min(CHECK_TIMEOUT_S, timeout or CHECK_TIMEOUT_S)
        problem = _within(limit, lambda: env_api_problem(env)) if check else None
        spaces = env.observation_space, env.action_space
    finally:
        with contextlib.suppress(Exception):
            env.close()
    if problem:
        raise EnvError(f"environment {factory.name!r} breaks the Gymnasium API: {problem}")
    return spaces


def check_same_spaces(factory: EnvFactory, obs_space: gym.Space, action_space: gym.Space, source: str,
                      timeout: float = 0.0, action_bounds: bool = False) -> None:
    """EnvError unless the env's spaces have the kinds and shapes of the saved ones (an agent
    loaded from `source` is to act in it); with `action_bounds` (gaussian-mean tanh) Box bounds."""
    env_obs, env_act = probe_spaces(factory, timeout=timeout)
    for what, saved, got in (("observation", obs_space, env_obs), ("action", action_space, env_act)):
        if not same_kind(saved, got, bounds=action_bounds and what == "action"):
            raise EnvError(f"environment {factory.name!r} has the {what} space {got}, but the agent in "
                           f"{source!r} was trained with {saved}")


#: random steps check_env takes after the first reset
CHECK_STEPS = 10
#: seconds the check may take: past them it gives up (the workers' --worker-timeout is for hangs)
CHECK_TIMEOUT_S = 30.0


def check_env(factory: EnvFactory, steps: int = CHECK_STEPS) -> None:
    """Build the env once in this process and hold it to the Gymnasium API before any worker
    starts (reset, then `steps` random steps): EnvError names the first problem in one line
    (see env_api_problem). probe_spaces runs the same check on the env it builds."""
    env = _build(factory)
    try:
        problem = _within(CHECK_TIMEOUT_S, lambda: env_api_problem(env, steps))
    finally:
        with contextlib.suppress(Exception):
            env.close()
    if problem:
        raise EnvError(f"environment {factory.name!r} breaks the Gymnasium API: {problem}")


def env_api_problem(env: Any, steps: int = CHECK_STEPS) -> str | None:
    """The first way `env` breaks the Gymnasium API within a reset and `steps` random steps
    (None: none seen): reset() must return (observation, info) and step() (observation,
    reward, terminated, truncated, info), with observations of the observation space's
    shape and kind of dtype, finite and inside its bounds, a number for the reward, bools
    for the flags, dicts for info. An exception the env's own code raises is not judged
    here: it is a fault, which the workers' restart budget is for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok, result, problem = _call(env.reset, "reset()", seed=0)
        if not ok:
            return problem
        problem = _reset_problem(result, env.observation_space, "reset()")
        if problem:
            return problem
        space = env.action_space
        for i in range(1, steps + 1):
            where = f"step() (random action {i} of {steps})"
            try:
                if i == 1:
                    space.seed(0)
                action = space.sample()
            except Exception:       # a space no algorithm takes: refused by check_spaces, not here
                return None
            ok, result, problem = _call(env.step, where, action)
            if not ok:
                return problem
            problem = _step_problem(result, env.observation_space, where)
            if problem:
                return problem
            if result[2] or result[3]:
                ok, result, problem = _call(env.reset, "reset()")
                if not ok:
                    return problem
                problem = _reset_problem(result, env.observation_space, "reset()")
                if problem:
                    return problem
    return None


def _call(fn: Callable, where: str, *args: Any, **kwargs: Any) -> tuple[bool, Any, str | None]:
    """(True, fn's result, None), or (False, None, the API problem it raised: None for a fault
    of the env's own code, which is not judged here)."""
    try:
        return True, fn(*args, **kwargs), None
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc) and kwargs:
            return False, None, (f"{where} does not take {', '.join(kwargs)}= ({_first_line(exc)}); Gymnasium's "
                                 f"is reset(*, seed=None, options=None)")
        return False, None, _api_fault(exc, where)
    except Exception as exc:
        return False, None, _api_fault(exc, where)


def _api_fault(exc: BaseException, where: str) -> str | None:
    """What an exception raised inside Gymnasium's own code (its env checker, its wrappers:
    TimeLimit unpacking a step's result) says about the env's API; None when it was raised
    elsewhere (the env's own code, Gymnasium's bundled envs included)."""
    tb, last = exc.__traceback__, ""
    while tb is not None:
        last, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
    home = os.path.dirname(os.path.abspath(gym.__file__)) + os.sep
    if not last.startswith(home) or last.startswith(os.path.join(home, "envs") + os.sep):
        return None
    text = _first_line(exc)
    if isinstance(exc, ValueError) and "expected 5, got 4" in text:
        return (f"{where} returned 4 values (observation, reward, done, info), the API of gym before 0.26; "
                f"Gymnasium's step returns 5: (observation, reward, terminated, truncated, info)")
    return f"{where} failed inside Gymnasium ({os.path.relpath(last, os.path.dirname(home.rstrip(os.sep)))}): " \
           f"{type(exc).__name__}: {text}"


def _reset_problem(result: Any, space: gym.Space, where: str) -> str | None:
    if not (isinstance(result, tuple) and len(result) == 2):
        return f"{where} returned {_shape_of(result)}, not (observation, info)"
    return _obs_problem(result[0], space, where) or _info_problem(result[1], where)


def _step_problem(result: Any, space: gym.Space, where: str) -> str | None:
    if not (isinstance(result, tuple) and len(result) == 5):
        if isinstance(result, tuple) and len(result) == 4:
            return (f"{where} returned 4 values (observation, reward, done, info), the API of gym before "
                    f"0.26; Gymnasium's step returns 5: (observation, reward, terminated, truncated, info)")
        return f"{where} returned {_shape_of(result)}, not (observation, reward, terminated, truncated, info)"
    obs, reward, terminated, truncated, info = result
    problem = _obs_problem(obs, space, where)
    if problem:
        return problem
    if isinstance(reward, (str, bytes)) or np.ndim(reward) != 0 or not np.issubdtype(np.asarray(reward).dtype, np.number):
        return f"{where} returned the reward {_short(reward)}, not a number"
    for name, flag in (("terminated", terminated), ("truncated", truncated)):
        if not isinstance(flag, (bool, np.bool_)):
            return f"{where} returned {name} {_short(flag)} of type {type(flag).__name__}, not a bool"
    return _info_problem(info, where)


def _info_problem(info: Any, where: str) -> str | None:
    return None if isinstance(info, dict) else f"{where} returned info of type {type(info).__name__}, not a dict"


def _obs_problem(obs: Any, space: gym.Space, where: str) -> str | None:
    """Box and Discrete observations (the spaces asyncrl's networks take) against their space."""
    if isinstance(space, gym.spaces.Discrete):
        ok = (isinstance(obs, (int, np.integer)) and not isinstance(obs, (bool, np.bool_))) or \
            (isinstance(obs, np.ndarray) and obs.shape == () and np.issubdtype(obs.dtype, np.integer))
        if not ok:
            return f"{where} returned the observation {_short(obs)} ({type(obs).__name__}); {space} takes an integer"
        if not space.start <= int(obs) < space.start + space.n:
            return f"{where} returned the observation {int(obs)}, outside {space}"
        return None
    if not isinstance(space, gym.spaces.Box):
        return None
    try:
        arr = np.asarray(obs)
    except Exception:       # ragged sequences
        return f"{where} returned an observation that is not an array: {_short(obs)}"
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        return f"{where} returned an observation of dtype {arr.dtype}, not numbers ({space})"
    if arr.shape != space.shape:
        return f"{where} returned an observation of shape {arr.shape}; the observation space {space} says {space.shape}"
    if not np.can_cast(arr.dtype, space.dtype, "same_kind"):
        return f"{where} returned an observation of dtype {arr.dtype}; the observation space's dtype is {space.dtype}"
    if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
        bad = arr.flat[int(np.flatnonzero(~np.isfinite(arr))[0])]
        return f"{where} returned an observation holding {bad} (not finite)"
    outside = np.flatnonzero((arr < space.low) | (arr > space.high))
    if outside.size:
        i = int(outside[0])
        return (f"{where} returned an observation outside its space: element {i} is {arr.flat[i]}, the "
                f"observation space {space} allows [{space.low.flat[i]}, {space.high.flat[i]}] there")
    return None


def _shape_of(value: Any) -> str:
    return f"a tuple of {len(value)}" if isinstance(value, tuple) else f"a {type(value).__name__}"


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _build(factory: EnvFactory) -> gym.Env:
    try:
        return factory()
    except EnvError:
        raise
    except Exception as exc:  # a user's factory or env constructor failed
        raise EnvError(f"environment {factory.name!r} failed to build: {type(exc).__name__}: {_first_line(exc)}") from None


class _CheckTimeout(BaseException):
    """Raised by SIGALRM in the env's code; a BaseException: no `except Exception` takes it."""


def _within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn(), or None when it takes over `seconds` (SIGALRM: in the main thread; elsewhere untimed)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return fn()

    def on_alarm(signum: int, frame: Any) -> None:
        raise _CheckTimeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except _CheckTimeout:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old if old is not None else signal.SIG_DFL)
