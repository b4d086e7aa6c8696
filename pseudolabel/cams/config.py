"""The make-cams stage's configuration (torch-free: the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pseudolabel.config import InvalidValue, check_fields, setting

Compression = Literal["gzip", "lzf", "none"]


@dataclass(frozen=True)
class MakeCamsConfig:
    """Options of ``pseudolabel make-cams``.

    split: the split of ROOT; method: a CAM method (``CAM_METHODS``); layers: layer names;
    scales/flip: the test-time views merged; models: which checkpoints of RUN_DIR;
    grid: the stored CAMs' grid, ``"layer"`` (each layer's stride) or ``"finest"`` (the finest
    view's: the stride over the largest scale, :func:`~pseudolabel.cams.multiscale.cam_stride`);
    all_classes: store every class (default: the labelled ones); shard: ``"I/N"``, this
    process's part; merge: only merge finished parts; shard_size: images per shard file;
    overwrite: start over (the store at ``out``, its config and parts are deleted first).
    """

    split: str | None = setting(
        "train", help="Split of ROOT (all images when ROOT has no split files).")
    method: str = setting(
        "cam", help="CAM method: cam (the classifier weights), gradcam or layercam (for layers "
        "the head does not apply to), or a plugin's.",
        registry="pseudolabel.cams.methods:CAM_METHODS", metavar="NAME")
    layers: tuple[str, ...] = setting(
        ("features",), help="Layers to export (features: the head's input).", nonempty=True,
        metavar="NAME,...")
    scales: tuple[float, ...] = setting(
        (1.0, 0.5, 1.5, 2.0), help="Test-time scales merged.", gt=0, nonempty=True,
        metavar="S,...")
    flip: bool = setting(True, help="Also merge the mirrored image.")
    grid: Literal["layer", "finest"] = setting(
        "layer", help="Grid of the stored CAMs: layer (each layer's stride) or finest (the "
        "stride over the largest scale).")
    models: tuple[Literal["student", "teacher"], ...] = setting(
        ("student",), help="Which checkpoints of RUN_DIR to export.", nonempty=True,
        metavar="student,teacher")
    all_classes: bool = setting(
        False, help="Store every class with its score (default: the labelled classes only).")
    batch_size: int = setting(16, help="Images per forward pass.", ge=1)
    device: str = setting("auto", help="cpu, cuda, cuda:N or auto (cuda when available).")
    workers: int = setting(2, help="Image-decoding worker processes.", ge=0)
    skip_bad: bool = setting(
        False, help="Log bad images and go on without them (default: stop with an error).")
    shard: str = setting(
        "0/1", help="Compute only part I of N (0-based) for several GPUs or machines; the "
        "store is merged when every part is done.", metavar="I/N")
    merge: bool = setting(False, help="Only merge the finished parts of a sharded run.")
    shard_size: int = setting(
        256, help="Images per shard file: a kill loses at most one shard.", ge=1)
    compression: Compression = setting("gzip", help="HDF5 compression of the CAMs.")
    overwrite: bool = setting(
        False, help="Replace a store at --out made with other options, model or images (it is "
        "deleted with its config and unfinished parts, and made again).")

    # Fields that change how or where, not what, is computed (left out of the store's
    # fingerprint: a rerun with others resumes the finished shards).
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {"batch_size", "device", "workers", "skip_bad", "shard", "merge", "overwrite"})

    def __post_init__(self) -> None:
        check_fields(self)
        if len(set(self.models)) != len(self.models):
            raise InvalidValue(("models",), "a list without repeats", self.models)
        try:
            parse_shard(self.shard)
        except ValueError:
            raise InvalidValue(("shard",), "I/N with 0 <= I < N (e.g. 0/4)",
                               self.shard) from None

    @property
    def part(self) -> tuple[int, int]:
        return parse_shard(self.shard)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must be I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return i, n
