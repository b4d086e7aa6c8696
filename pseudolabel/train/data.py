"""The train stage's data: the split, its checks, the validation hold-out and the loaders."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from pseudolabel.data import DatasetIndex
from pseudolabel.data.augment import ImageLabelDataset
from pseudolabel.data.dataset import drop_undecodable
from pseudolabel.data.source import DataSource, SourceLike, open_dataset
from pseudolabel.data.workers import drops_last, init_worker
from pseudolabel.errors import BadInputError
from pseudolabel.train.config import TrainConfig
from pseudolabel.train.distributed import DistInfo

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    """The training and validation datasets (validation may be None)."""

    classes: tuple[str, ...]
    train: ImageLabelDataset
    val: ImageLabelDataset | None


def check_positives(index: DatasetIndex) -> None:
    """Every class needs at least one positive image, or its head cannot learn."""
    counts = index.label_matrix().sum(axis=0)
    empty = [c for c, n in zip(index.classes, counts, strict=True) if n == 0]
    if empty:
        raise BadInputError(
            f"class(es) {', '.join(empty)} have no positive image in split "
            f"{index.split or 'all'!r} ({len(index)} images)", path=index.label_file or index.root,
            fix="label images of those classes, or remove them from "
                + ("the COCO file's categories" if index.gt_reader is not None else "classes.txt"))


def load_train_data(root: SourceLike, cfg: TrainConfig) -> TrainData:
    """Read the split (and the validation split, or hold out ``val_fraction`` of it)."""
    policy = "skip" if cfg.skip_bad else "raise"
    index = open_dataset(root, cfg.split, policy=policy)
    if cfg.skip_bad:
        index = drop_undecodable(index, cfg.num_workers)
    check_positives(index)
    samples = list(index.samples)
    val_samples: list = []
    if cfg.val_split:
        val_index = open_dataset(root, cfg.val_split, policy=policy)
        if cfg.skip_bad:
            val_index = drop_undecodable(val_index, cfg.num_workers)
        if val_index.classes != index.classes:
            raise BadInputError("validation split has another class list",
                                path=DataSource.of(root).where)
        val_samples = list(val_index.samples)
    elif cfg.val_fraction > 0 and len(samples) > 1:
        order = np.random.RandomState(cfg.seed).permutation(len(samples))
        n_val = min(len(samples) - 1, max(1, round(cfg.val_fraction * len(samples))))
        val_ids = set(order[:n_val].tolist())
        val_samples = [s for i, s in enumerate(samples) if i in val_ids]
        samples = [s for i, s in enumerate(samples) if i not in val_ids]
    log.info("train: %d images, validation: %d images, %d classes",
             len(samples), len(val_samples), len(index.classes))
    k = len(index.classes)
    train = ImageLabelDataset(samples, k, cfg.image_size, cfg.augment, seed=cfg.seed)
    val = ImageLabelDataset(val_samples, k, cfg.image_size) if val_samples else None
    return TrainData(index.classes, train, val)


def train_loader(dataset: ImageLabelDataset, cfg: TrainConfig, info: DistInfo, epoch: int
                 ) -> DataLoader:
    """A loader for one epoch: shuffled by (seed, epoch), sharded across DDP processes.

    A new loader per epoch starts fresh workers, which copy ``dataset.epoch``.
    """
    dataset.epoch = epoch
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=False)
    sampler.set_epoch(epoch)
    return _loader(dataset, cfg, sampler, info,
                   drop_last=drops_last(len(sampler), cfg.batch_size))


def batches_per_epoch(dataset_size: int, cfg: TrainConfig, info: DistInfo) -> int:
    """How many training batches each process runs per epoch."""
    shard = math.ceil(dataset_size / info.world_size)
    if drops_last(shard, cfg.batch_size):
        return shard // cfg.batch_size
    return math.ceil(shard / cfg.batch_size)


def eval_loader(dataset: ImageLabelDataset, cfg: TrainConfig, info: DistInfo) -> DataLoader:
    """A loader over the whole dataset in order (validation runs on rank 0 only)."""
    return _loader(dataset, cfg, None, info, drop_last=False)


def _loader(dataset, cfg: TrainConfig, sampler, info: DistInfo, drop_last: bool) -> DataLoader:
    workers = min(cfg.num_workers, len(dataset))
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, shuffle=False,
                      num_workers=workers, drop_last=drop_last, pin_memory=info.device.type == "cuda",
                      worker_init_fn=init_worker if workers else None,
                      generator=torch.Generator().manual_seed(cfg.seed))


