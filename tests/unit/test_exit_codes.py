"""The command line's exit code for each error it reports in one line (errors.exit_code,
used by `asyncrl CMD` and by each seed's process under --seeds)."""
from __future__ import annotations

import errno

import pytest

from asyncrl.errors import (CheckpointError, ConfigError, EnvError, NonFiniteError, StorageError, WorkerError,
                            exit_code)


@pytest.mark.parametrize("exc,code", [
    (ConfigError("bad"), 2), (EnvError("bad"), 2), (CheckpointError("bad"), 2),
    (WorkerError("worker 0 failed"), 3), (NonFiniteError("nan"), 4),
    (StorageError("run folder full"), 5),                   # an AsyncRLError and an OSError: the OS's failure
    (OSError(errno.ENOSPC, "No space left on device"), 5), (PermissionError("denied"), 5),
    (BrokenPipeError(), 5), (RuntimeError("a bug"), 1), (ValueError("not ours"), 1),
])
def test_exit_code(exc, code):
    assert exit_code(exc) == code
