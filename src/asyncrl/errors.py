"""The one exception family users see. Each message is one line naming the bad value
and what would be accepted; the CLI prints it without a traceback and exits 2."""


class AsyncRLError(Exception):
    """Base class of every error asyncrl raises on purpose."""


class ConfigError(AsyncRLError, ValueError):
    """Invalid hyperparameters or option combinations."""


class EnvError(AsyncRLError):
    """Unknown environment id, or spaces the chosen algorithm or network cannot handle."""


class CheckpointError(AsyncRLError):
    """A checkpoint or run folder that is missing, corrupt, or from another algorithm."""


class WorkerError(AsyncRLError):
    """An actor-learner process failed; the message carries the worker's traceback."""
