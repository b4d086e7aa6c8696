"""Dataset roots, image and mask I/O, the demo-data generator (all torch-free)."""

from pseudolabel.data.coco import load_coco
from pseudolabel.data.dataset import (
    VOC_CLASSES,
    DatasetIndex,
    Problem,
    Sample,
    load_dataset,
    read_classes,
)
from pseudolabel.data.demo import make_demo_data
from pseudolabel.data.images import image_size, load_image
from pseudolabel.data.masks import IGNORE, read_mask, voc_palette, write_mask
from pseudolabel.data.source import DataSource, open_dataset

__all__ = [
    "IGNORE",
    "VOC_CLASSES",
    "DataSource",
    "DatasetIndex",
    "Problem",
    "Sample",
    "image_size",
    "load_coco",
    "load_dataset",
    "load_image",
    "make_demo_data",
    "open_dataset",
    "read_classes",
    "read_mask",
    "voc_palette",
    "write_mask",
]
