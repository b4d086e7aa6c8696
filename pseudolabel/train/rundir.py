"""RUN_DIR bookkeeping: claim it through the stage runtime, decide whether to resume.

The record is RUN_DIR/config.yaml: the data set (``root:``, or ``coco:`` and ``images:``) and
the TrainConfig, so ``train --config RUN_DIR/config.yaml --out X`` replays the run alone.
The data set's paths may change on resume (a data set moved to another disk, a run whose
config.yaml predates them): they are recorded, not compared.
Same record (only ``TrainConfig.RESUME_MAY_CHANGE`` fields such as ``epochs`` may differ):
resume from last.pt when it exists (a rerun after a kill continues). Another config: an error
unless ``--overwrite``, which deletes the previous run's files first.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pseudolabel.config import to_dict
from pseudolabel.errors import BadInputError
from pseudolabel.runtime import claim_output
from pseudolabel.train.config import TrainConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
STATE_FILE = "last.pt"
SOURCE_KEYS = frozenset({"root", "coco", "images"})
RUN_FILES = ("student.pt", "teacher.pt", STATE_FILE, "metrics.json", "curves.svg", CONFIG_FILE)


def _run_files(out: Path) -> list[Path]:
    return [out / name for name in RUN_FILES if (out / name).exists()]


def record(cfg: TrainConfig, source: Mapping[str, str] | None = None) -> dict:
    """What RUN_DIR/config.yaml holds: the data set's paths, then the config's fields."""
    return {**(source or {}), **to_dict(cfg)}


@contextlib.contextmanager
def claim_run_dir(out: str | os.PathLike, cfg: TrainConfig, *, main: bool = True,
                  source: Mapping[str, str] | None = None) -> Iterator[tuple[Path, bool]]:
    """Claim RUN_DIR for ``cfg`` for the ``with`` block; yields (resolved RUN_DIR, resume).

    ``main``: whether this process locks and may delete files (rank 0 under torchrun).
    ``source``: the data set's resolved paths (``DataSource.to_dict()``), part of the record.
    """
    with claim_output(out, record=(CONFIG_FILE,), resolved=record(cfg, source),
                      may_change=TrainConfig.RESUME_MAY_CHANGE | SOURCE_KEYS, overwrite=cfg.overwrite,
                      outputs=_run_files, main=main) as claim:
        state = claim.path / STATE_FILE
        if cfg.resume and not (claim.resume and state.is_file()):
            raise BadInputError("--resume but the run folder has no last.pt", path=state,
                                fix="start the run without --resume")
        resume = claim.resume and state.is_file()
        if resume and not cfg.resume:
            log.info("%s: the same run was started before: resuming from last.pt", claim.path)
        yield claim.path, resume
