"""Everything that steps environments in batches for the sync executor: choosing, making
and closing vector envs (`make`), envs split between processes (`split`) or threads
(`threaded`) or one process each (SubprocessVectorEnv), and the Atari vector envs (`atari`)."""
from .common import call_envs, group_bounds, merged_infos, raise_first, step_env
from .make import SUBPROCESS_STEP_S, choose_vec_env, close_vector_env, env_step_seconds, make_vector_env
from .split import SplitVectorEnv, SubprocessVectorEnv
from .threaded import ThreadedVectorEnv

__all__ = ["call_envs", "group_bounds", "merged_infos", "raise_first", "step_env", "SUBPROCESS_STEP_S",
           "choose_vec_env", "close_vector_env", "env_step_seconds",
           "make_vector_env", "SplitVectorEnv", "SubprocessVectorEnv",
           "ThreadedVectorEnv"]
