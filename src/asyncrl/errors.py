"""The one exception family users see. Each message is one line naming the bad value
and what would be accepted; the CLI prints it without a traceback and exits 2 for bad
input, 3 for a worker failure (WorkerError) and 4 for a run stopped by non-finite
updates (NonFiniteError)."""


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


class NonFiniteError(AsyncRLError):
    """Training stopped: too many non-finite (inf/nan) updates in a row, or parameters that
    are no longer finite. The last good parameters are the ones kept (nothing non-finite is
    ever applied or checkpointed)."""
