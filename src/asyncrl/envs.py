"""Environment construction: Gymnasium ids (including `module:Id`), or zero-argument
factories from the Python API, made picklable so worker processes can build their own."""
from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym

from .atari import AtariOptions, is_atari_id, looks_atari, make_atari, require_ale
from .errors import EnvError


class EnvFactory:
    """A picklable recipe for an environment: a Gymnasium id or a user callable.

    Callables (lambdas and closures included) are serialised with cloudpickle, so
    they survive the `spawn`/`forkserver` start methods without registration.
    """

    #: the Atari preprocessing (atari.AtariOptions) when env_id is an ale-py game, else None
    atari = None

    def __init__(self, env: "str | Callable[[], gym.Env] | EnvFactory", **make_kwargs: Any):
        if isinstance(env, EnvFactory):
            self.env_id, self.fn, self.make_kwargs = env.env_id, env.fn, dict(env.make_kwargs)
            self.atari = env.atari
            return
        if isinstance(env, str):
            if not env.strip():
                raise EnvError("environment id is empty; give a Gymnasium id such as CartPole-v1")
            self.env_id, self.fn = env, None
        elif callable(env):
            self.env_id, self.fn = getattr(env, "__name__", "custom"), env
        else:
            raise EnvError(f"env must be a Gymnasium id or a zero-argument factory, got {type(env).__name__}")
        self.make_kwargs = make_kwargs

    @property
    def name(self) -> str:
        return self.env_id if self.fn is None else f"<{self.env_id}>"

    def configured(self, cfg: Any) -> "EnvFactory":
        """This recipe with the config's Atari preprocessing when the id is an Atari game."""
        out = EnvFactory(self)
        if self.fn is None and is_atari_id(self.env_id):
            out.atari = AtariOptions.from_config(cfg)
        return out

    def for_evaluation(self) -> "EnvFactory":
        """The recipe evaluation uses: Atari games are played whole (all lives)."""
        out = EnvFactory(self)
        if self.atari is not None:
            out.atari = self.atari.for_evaluation()
        return out

    def __call__(self, **kwargs: Any) -> gym.Env:
        if self.fn is not None:
            env = self.fn()
            if not isinstance(env, gym.Env) and not hasattr(env, "step"):
                raise EnvError(f"env factory {self.env_id!r} returned {type(env).__name__}, not a gymnasium.Env")
            return env
        try:
            if self.atari is not None:
                return make_atari(self.env_id, self.atari, **{**self.make_kwargs, **kwargs})
            return gym.make(self.env_id, **{**self.make_kwargs, **kwargs})
        except gym.error.Error as exc:
            if looks_atari(self.env_id):
                require_ale(self.env_id)       # without ale-py: say what to install
            raise EnvError(f"unknown environment {self.env_id!r}: {_first_line(exc)}") from None
        except ModuleNotFoundError as exc:
            module = self.env_id.split(":", 1)[0] if ":" in self.env_id else exc.name
            raise EnvError(f"unknown environment {self.env_id!r}: cannot import module {module!r}") from None

    def __getstate__(self) -> dict:
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def probe_spaces(factory: EnvFactory) -> tuple[gym.Space, gym.Space]:
    """Build the env once in this process to read its spaces (closing it again),
    so that every space problem is reported before any worker starts."""
    try:
        env = factory()
    except EnvError:
        raise
    except Exception as exc:  # a user's factory or env constructor failed
        raise EnvError(f"environment {factory.name!r} failed to build: {type(exc).__name__}: {_first_line(exc)}") from None
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def check_same_spaces(factory: EnvFactory, obs_space: gym.Space, action_space: gym.Space, source: str) -> None:
    """EnvError unless the env's spaces have the kinds and shapes of the saved ones (an agent
    loaded from `source` is to act in it)."""
    env_obs, env_act = probe_spaces(factory)
    for what, saved, got in (("observation", obs_space, env_obs), ("action", action_space, env_act)):
        if type(saved) is not type(got) or getattr(saved, "shape", None) != getattr(got, "shape", None) \
                or getattr(saved, "n", None) != getattr(got, "n", None):
            raise EnvError(f"environment {factory.name!r} has the {what} space {got}, but the agent in "
                           f"{source!r} was trained with {saved}")
