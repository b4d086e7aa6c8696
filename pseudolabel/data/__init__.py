"""Dataset roots, image and mask I/O, the demo-data generator (all torch-free).

Names are imported on first use, so ``pseudolabel.data.config`` stays free of numpy.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
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
_MODULE = {"load_coco": "coco", "VOC_CLASSES": "dataset", "DatasetIndex": "dataset",
           "Problem": "dataset", "Sample": "dataset", "load_dataset": "dataset",
           "read_classes": "dataset", "make_demo_data": "demo", "image_size": "images",
           "load_image": "images", "IGNORE": "masks", "read_mask": "masks",
           "voc_palette": "masks", "write_mask": "masks", "DataSource": "source",
           "open_dataset": "source"}
__getattr__, __dir__ = lazy_exports(__name__, _MODULE)
