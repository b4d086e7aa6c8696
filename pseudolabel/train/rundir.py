"""RUN_DIR bookkeeping: refuse to mix two runs, decide whether to resume, clear on --overwrite."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from pseudolabel.config import to_dict
from pseudolabel.errors import BadInputError
from pseudolabel.io import remove_stale_temp_files
from pseudolabel.train.config import RESUMABLE_KEYS, TrainConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
STATE_FILE = "last.pt"
RUN_FILES = ("student.pt", "teacher.pt", STATE_FILE, "metrics.json", "curves.svg", CONFIG_FILE)


def config_differences(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Keys (other than the resumable ones) whose values differ between ``saved`` and ``cfg``."""
    now = to_dict(cfg)
    keys = (set(saved) | set(now)) - RESUMABLE_KEYS
    return sorted(k for k in keys if saved.get(k) != now.get(k))


def prepare_run_dir(out: Path, cfg: TrainConfig, *, clear: bool) -> bool:
    """Check RUN_DIR against ``cfg``; returns whether to resume from last.pt.

    Same config: resume when last.pt exists (a rerun after a kill continues). Another config:
    an error unless ``--overwrite`` (or only resumable keys such as ``epochs`` differ).
    ``clear``: whether this process may delete files (rank 0).
    """
    state = out / STATE_FILE
    config_file = out / CONFIG_FILE
    if cfg.overwrite:
        if clear:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            remove_stale_temp_files(out)
        return False
    if config_file.is_file():
        try:
            saved = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            saved = {}
        diff = config_differences(saved, cfg)
        if diff:
            shown = ", ".join(f"{k}: {saved.get(k)!r} -> {to_dict(cfg).get(k)!r}"
                              for k in diff[:4])
            raise BadInputError(
                f"run folder holds another run with a different config ({shown})", path=out,
                fix="give the same options to resume it, --overwrite to replace it, or another "
                    "--out")
    if cfg.resume and not state.is_file():
        raise BadInputError("--resume but the run folder has no last.pt", path=state,
                            fix="start the run without --resume")
    if clear:
        remove_stale_temp_files(out)
    if state.is_file() and not cfg.resume:
        log.info("%s: the same run was started before: resuming from last.pt", out)
    return state.is_file()
