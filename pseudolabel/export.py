"""``pseudolabel export``: hand the masks over to a segmentation framework.

Writes into OUT: ``train.txt`` (the ids that have a mask), ``classes.txt`` (background first) and
``mmseg_dataset.py``, an mmsegmentation 1.x dataset config (``BaseSegDataset`` over the image
folder and the mask folder, ignore index 255) to ``_base_`` from a model config. The masks
themselves stay where they are: palette PNGs are read by mmsegmentation, segmentation_models_pytorch
data loaders and detectron2's sem_seg loader as they are.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pseudolabel.config import check_fields, save_config, setting, to_dict
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_write, output_path
from pseudolabel.runtime import claim_output

if TYPE_CHECKING:
    from pseudolabel.data.source import SourceLike

log = logging.getLogger(__name__)

EXPORT_FILE = "export.yaml"


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``pseudolabel export``: the split, and the mmseg pipeline's crop and batch."""

    split: str | None = setting(None, help="Split of the dataset root (default: every image).")
    crop: int = setting(512, help="Crop size in the mmseg pipeline.", ge=1)
    batch_size: int = setting(8, help="Batch size in the mmseg config.", ge=1)
    overwrite: bool = setting(
        False, help="Replace train.txt, classes.txt and mmseg_dataset.py in OUT when they were "
        "not written by an export of the same options.")

    # not part of the record: a rerun with --overwrite is the same export
    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset({"overwrite"})

    def __post_init__(self) -> None:
        check_fields(self)


def run(config: ExportConfig, masks: str | Path, images: SourceLike, out: str | Path) -> Path:
    """Write the split, class list and mmsegmentation config for ``masks`` into ``out``.

    ``images``: the data set the masks were made for (a root path, or a
    :class:`~pseudolabel.data.source.DataSource`: a COCO file and its image folder).
    """
    masks, out = Path(masks).resolve(), Path(out)
    if not masks.is_dir():
        raise BadInputError("mask folder does not exist", path=masks)
    # imported here: `pseudolabel export --help` builds ExportConfig's options without numpy
    from pseudolabel.data import voc_palette
    from pseudolabel.data.source import DataSource, open_dataset

    source = DataSource.of(images)
    dataset = open_dataset(source, config.split, require_labels=False)
    ids = [s.id for s in dataset.samples if output_path(masks, s.id, ".png").is_file()]
    if not ids:
        raise BadInputError("no mask in the folder matches an image of the data set", path=masks,
                            fix="run `pseudolabel refine` first, or check --images / --split")
    missing = len(dataset) - len(ids)
    if missing:
        log.warning("%d images of the split have no mask and are left out", missing)
    suffixes = Counter(s.image.suffix for s in dataset.samples if s.id in set(ids))
    if len(suffixes) > 1:
        raise BadInputError(f"images have mixed suffixes ({', '.join(suffixes)})",
                            path=dataset.image_dir,
                            fix="mmsegmentation needs one image suffix: convert the images")
    suffix = next(iter(suffixes))
    inputs = {masks, (dataset.image_dir or dataset.root).resolve(), Path(dataset.root).resolve()}
    if Path(out).resolve() in inputs:
        raise BadInputError("the output is an input of the export (the data set or the masks)",
                            path=out, fix="choose a new folder as --out")
    # export.yaml is the record: files of export's names that another export (or nobody) wrote
    # are refused unless --overwrite; an export of other options too
    where = source.to_dict()
    record = {**{k: v for k, v in to_dict(config).items() if k != "overwrite"},
              "masks": str(masks), "coco": where.get("coco"),
              "images": where.get("images", where.get("root"))}
    with claim_output(out, record=(EXPORT_FILE,), resolved=record,
                      may_change=ExportConfig.RESUME_MAY_CHANGE, overwrite=config.overwrite,
                      outputs=_export_outputs) as claim:
        out = claim.path
        with atomic_write(out / "train.txt", "w") as fh:
            fh.write("".join(f"{i}\n" for i in ids))
        classes = ("background", *dataset.classes)
        with atomic_write(out / "classes.txt", "w") as fh:
            fh.write("".join(f"{c}\n" for c in classes))
        palette = voc_palette(len(classes)).tolist()
        image_dir = (dataset.image_dir or dataset.root).resolve()
        text = _MMSEG.format(classes=classes, palette=palette, img=str(image_dir), seg=str(masks),
                             suffix=suffix, ann=str((out / "train.txt").resolve()),
                             crop=config.crop, batch=config.batch_size, n=len(classes))
        with atomic_write(out / "mmseg_dataset.py", "w") as fh:
            fh.write(text)
        # the options under their names (`pseudolabel export --config export.yaml` replays it):
        # --images is the data set root, or with --coco its image folder
        save_config(record, out / EXPORT_FILE)
    return out


def _export_outputs(out: Path) -> list[Path]:
    names = ("train.txt", "classes.txt", "mmseg_dataset.py")
    return [out / n for n in names if (out / n).exists()]


_MMSEG = '''# mmsegmentation 1.x dataset config written by `pseudolabel export`.
# Use it from a model config:  _base_ = ['./mmseg_dataset.py', ...]  and set the decode heads'
# num_classes = {n}. Pixels of value 255 are ignored by mmsegmentation's losses (ignore_index=255).
dataset_type = 'BaseSegDataset'
metainfo = dict(classes={classes!r}, palette={palette!r})
crop_size = ({crop}, {crop})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=(2048, {crop}), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size={batch},
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root='',
        data_prefix=dict(img_path='{img}', seg_map_path='{seg}'),
        img_suffix='{suffix}',
        seg_map_suffix='.png',
        ann_file='{ann}',
        reduce_zero_label=False,
        pipeline=train_pipeline,
    ),
)
'''
