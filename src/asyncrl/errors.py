"""The one exception family users see. Each message is one line naming the bad value
and what would be accepted; the CLI prints it without a traceback and exits 2 for bad
input, 3 for a worker failure (WorkerError), 4 for a run stopped by non-finite
updates (NonFiniteError) and 5 for a read or a write the operating system refused (any
OSError, StorageError among them): exit_code() maps them, for every command."""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator


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


class StorageError(AsyncRLError, OSError):
    """The run folder could not be written (a full disk, a file-size limit, permissions):
    what was already saved stays (the last good checkpoint is never replaced by part of
    one). The CLI prints one line and exits 5."""


#: the command line's exit codes (asyncrl --help lists them)
EXIT_BAD_INPUT = 2          # ConfigError, EnvError, CheckpointError: one line, nothing started
EXIT_WORKER_FAILED = 3      # WorkerError
EXIT_NONFINITE = 4          # NonFiniteError
EXIT_IO_FAILED = 5          # StorageError or any OSError: the last good checkpoint kept
EXIT_INTERRUPTED = 130      # Ctrl-C or SIGTERM


# ---------------------------------------------------------------------- whose words
#: True while the command line runs: bad-input messages then name flags (`--executor sync`);
#: the Python API's are reworded to keyword arguments (`executor='sync'`)
_COMMAND_LINE = contextvars.ContextVar("asyncrl_command_line", default=False)


def flag_words() -> bool:
    """Whether messages should speak of command-line flags (inside command_line_words())."""
    return _COMMAND_LINE.get()


@contextlib.contextmanager
def command_line_words() -> Iterator[None]:
    """The command line's part of a program: errors name its flags, not keyword arguments."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def exit_code(exc: BaseException) -> int:
    """The command line's exit code for an error it reports in one line: 3 WorkerError, 4
    NonFiniteError, 5 any OSError (StorageError included), 2 any other AsyncRLError (bad
    input), 1 anything else."""
    if isinstance(exc, WorkerError):
        return EXIT_WORKER_FAILED
    if isinstance(exc, NonFiniteError):
        return EXIT_NONFINITE
    if isinstance(exc, OSError):
        return EXIT_IO_FAILED
    return EXIT_BAD_INPUT if isinstance(exc, AsyncRLError) else 1
