"""Where a run's scalars go besides its CSV files: TensorBoard (the run folder's tb/) and,
with `--wandb`, Weights & Biases. metrics.RunLogger fans every scalar out to these backends.

A backend is one small class: `open()` (called once, in the main process, after the
executor's workers exist: both libraries start threads, which must not be forked),
`scalar(tag, value, step)` and `close()`. To add another, write one and return it from
`backends()`.
"""
from __future__ import annotations

import os
import secrets
from typing import Any


class Backend:
    """A destination for (tag, value, step) scalars; tags are TensorBoard's (episode/return, eval/...)."""

    def open(self) -> None:
        """Start writing (the workers exist by now)."""

    def scalar(self, tag: str, value: float, step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and stop."""


class TensorBoardBackend(Backend):
    """Event files in <run_dir>/tb. A resumed run purges the events logged after the step it
    resumes from (TensorBoard's purge_step), as episodes.csv and metrics.csv move those rows aside."""

    def __init__(self, run_dir: str, start_step: int):
        self.path, self.start_step, self._writer = os.path.join(run_dir, "tb"), start_step, None

    def open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(self.path, purge_step=self.start_step or None)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


#: the W&B run id of a run folder, kept so a resume continues the same W&B run
WANDB_ID_FILE = os.path.join("wandb", "asyncrl-run-id")


class WandbBackend(Backend):
    """A Weights & Biases run in <run_dir>/wandb: offline (no account, no network) unless the
    WANDB_MODE environment variable says otherwise; `wandb sync <run_dir>/wandb/offline-run-*`
    uploads it later. Every scalar is logged against the run's global step (the `global_step`
    key), so a late evaluation result is never dropped for arriving after a later row."""

    def __init__(self, run_dir: str, project: str, config: dict):
        self.run_dir, self.project, self.config, self._run = run_dir, project, config, None

    def open(self) -> None:
        import wandb

        folder = os.path.join(self.run_dir, "wandb")
        os.makedirs(folder, exist_ok=True)
        id_path = os.path.join(self.run_dir, WANDB_ID_FILE)
        if os.path.isfile(id_path):
            with open(id_path) as fh:
                run_id = fh.read().strip()
        else:
            run_id = secrets.token_hex(4)
            with open(id_path, "w") as fh:
                fh.write(run_id + "\n")
        self._run = wandb.init(project=self.project, dir=self.run_dir, id=run_id, resume="allow",
                               name=os.path.basename(os.path.normpath(self.run_dir)), config=self.config,
                               mode=os.environ.get("WANDB_MODE", "offline"), settings=wandb.Settings(silent=True))
        self._run.define_metric("global_step")
        self._run.define_metric("*", step_metric="global_step")

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._run.log({"global_step": step, tag: value})

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()


def backends(cfg: Any, start_step: int) -> list[Backend]:
    """The backends of a run with configuration `cfg` (none without a run folder)."""
    if not cfg.run_dir:
        return []
    out: list[Backend] = [TensorBoardBackend(cfg.run_dir, start_step)]
    if cfg.wandb:
        out.append(WandbBackend(cfg.run_dir, cfg.wandb_project, cfg.applicable_dict()))
    return out

