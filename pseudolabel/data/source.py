"""Where a data set lives, for every command that reads one: a VOC-style root, or a COCO
instances file and its image folder. Both open as the same :class:`DatasetIndex`, so a stage
takes either and never asks which.

    open_dataset("data", "train")                                  # ROOT (a str or Path)
    open_dataset(DataSource(coco="instances.json", images="val2017"))  # COCO
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pseudolabel.data.coco import load_coco
from pseudolabel.data.dataset import DatasetIndex, Policy, load_dataset
from pseudolabel.errors import BadInputError


@dataclass(frozen=True)
class DataSource:
    """A data set: ``root`` (a VOC-style root), or ``coco`` (an instances file) with ``images``
    (its image folder). With COCO, a split is a text file of image ids (or None: every image).
    """

    root: Path | None = None
    coco: Path | None = None
    images: Path | None = None

    def __post_init__(self) -> None:
        for name in ("root", "coco", "images"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if (self.root is None) == (self.coco is None):
            raise BadInputError("give a data set root, or a COCO file and its image folder",
                                fix="give ROOT, or --coco FILE --images DIR")
        if self.coco is not None and self.images is None:
            raise BadInputError("a COCO file needs its image folder", path=self.coco,
                                fix="add --images DIR, the folder holding the COCO images")
        if self.root is not None and self.images is not None:
            raise BadInputError("--images goes with --coco", path=self.images,
                                fix="give ROOT alone (it holds JPEGImages/), or --coco FILE "
                                    "--images DIR")

    @classmethod
    def of(cls, source: SourceLike) -> DataSource:
        """``source`` as a DataSource: a str or path is a dataset root."""
        return source if isinstance(source, DataSource) else cls(root=Path(source))

    @property
    def where(self) -> Path:
        """The path that names this data set in messages: ROOT or the COCO file."""
        return self.root if self.root is not None else self.coco  # type: ignore[return-value]

    @property
    def classes_file(self) -> Path:
        """The file that declares the classes: ROOT/classes.txt or the COCO file."""
        return self.root / "classes.txt" if self.root is not None else self.where

    def to_dict(self) -> dict[str, str]:
        """The resolved paths, for saved configs: ``{"root": ...}`` or ``{"coco", "images"}``."""
        if self.root is not None:
            return {"root": str(self.root.resolve())}
        return {"coco": str(self.where.resolve()), "images": str(Path(self.images).resolve())}

    def open(self, split: str | None = None, *, policy: Policy = "raise",
             require_labels: bool = True) -> DatasetIndex:
        """The images of ``split`` with their labels (see :func:`open_dataset`)."""
        if self.root is not None:
            return load_dataset(self.root, split, policy=policy, require_labels=require_labels)
        return load_coco(self.where, self.images, split=split,  # type: ignore[arg-type]
                         policy=policy)


SourceLike = str | os.PathLike | DataSource


def open_dataset(source: SourceLike, split: str | None = None, *, policy: Policy = "raise",
                 require_labels: bool = True) -> DatasetIndex:
    """Read a data set (a root path, or a :class:`DataSource`) into a :class:`DatasetIndex`.

    Args:
        split: a split of the root (see :func:`~pseudolabel.data.dataset.load_dataset`); with
            COCO, a text file of image ids.
        policy: "raise", "skip" (``--skip-bad``) or "collect" (``inspect``).
        require_labels: whether image-level labels must exist (a COCO file always has them).
    """
    return DataSource.of(source).open(split, policy=policy, require_labels=require_labels)
