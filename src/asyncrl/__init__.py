"""asyncrl: the methods of "Asynchronous Methods for Deep Reinforcement Learning"
(Mnih et al., 2016), fast and faithful."""
from .api import A2C, A3C, Agent, NStepQ, OneStepQ, OneStepSarsa, load
from .callbacks import Callback, CallbackList, CheckpointEvery, EvalCallback, PrintProgress, StopOnReward
from .config import Config
from .errors import AsyncRLError, CheckpointError, ConfigError, EnvError, StorageError, WorkerError

__version__ = "0.1.0"
__all__ = ["A3C", "A2C", "OneStepQ", "OneStepSarsa", "NStepQ", "Agent", "load", "Config", "AsyncRLError", "CheckpointError", "ConfigError",
           "EnvError", "StorageError", "WorkerError", "Callback", "CallbackList", "CheckpointEvery", "EvalCallback",
           "PrintProgress", "StopOnReward", "__version__"]
