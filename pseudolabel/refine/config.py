"""The refine stage's configuration (torch-free: the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pseudolabel.config import check_fields, setting


@dataclass(frozen=True)
class RefineConfig:
    """Options of ``pseudolabel refine``.

    Attributes:
        refiners: the chain, each ``NAME[:key=value,...]`` (``pseudolabel refine --list``).
        key: the CAM key the scores start from (default: student/features when stored, else
            the store's first key).
        workers: processes (1 = in this process).
        chunk_size: ids per task of a worker.
        save_scores: also write MASK_DIR/scores/<id>.npz.
        overwrite: replace the masks of a previous run made with another configuration.
        skip_bad: log a bad record or image and go on (default: stop with an error).
    """

    refiners: tuple[str, ...] = setting(
        ("threshold",), help="A refiner and its parameters; repeat to chain them in order. "
        "`pseudolabel refine --list` shows every refiner with its parameters.",
        option="--refiner", aliases=("refiner",), multiple=True, nonempty=True,
        metavar="NAME[:key=value,...]")
    key: str | None = setting(
        None, help="CAM key the scores start from, e.g. student/features (default: "
        "student/features when stored, else the first key).")
    workers: int = setting(1, help="Worker processes.", ge=1)
    chunk_size: int = setting(16, help="Images per worker task.", ge=1)
    save_scores: bool = setting(
        False, help="Also write MASK_DIR/scores/<id>.npz (per-class score maps, float16).")
    overwrite: bool = setting(
        False, help="Replace masks that a previous run with another configuration left in "
        "MASK_DIR.")
    skip_bad: bool = setting(
        False, help="Log bad records or images and go on without them (default: stop with an "
        "error).")

    # Fields that change how, not what, is computed: a rerun with others resumes the masks.
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {"workers", "chunk_size", "save_scores", "skip_bad", "overwrite"})

    def __post_init__(self) -> None:
        check_fields(self)
