"""The selftrain stage: a segmenter trained on pseudo-masks predicts new masks for the same
images (self-training; it smooths the noise of CAM-based masks).

    OUT/<id>.png        (H, W) uint8, VOC palette: 0 background, class index + 1 (as refine's)
    OUT/selftrain.yaml  the resolved configuration (replayable: selftrain --config)
    OUT/model.pt        the trained segmenter (written when training ends)
    OUT/last.pt         the training state after the last finished epoch (resume)

Training: :class:`~pseudolabel.selftrain.model.FpnSegmenter` on every image of the split and
its mask in MASK_DIR, cross-entropy over the pixels that are not 255 (refine's "not sure"),
AdamW with a one-cycle learning rate, random crops (``crop_scale``) and horizontal flips.
Prediction: the softmax at ``image_size`` (averaged with the mirror image's with ``flip``),
resized to the image, classes outside the image-level labels dropped (``keep_labels``), argmax.

Every file is written atomically; last.pt after every epoch, the masks last. A killed run,
rerun with the same options, continues from the last finished epoch (then from the first
missing mask) and ends with the same files as an uninterrupted run (on CPU; CUDA kernels may
differ in the last bits). Another configuration in the same OUT is refused unless
``overwrite``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from pseudolabel.config import save_config, to_dict
from pseudolabel.data.dataset import Sample
from pseudolabel.data.images import load_image
from pseudolabel.data.masks import IGNORE, read_mask, write_mask
from pseudolabel.data.source import DataSource, SourceLike, open_dataset
from pseudolabel.data.workers import drops_last, imap_ordered, init_worker
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_path, output_path
from pseudolabel.models import check_same_classes, load_run, read_tagged
from pseudolabel.ops import resolve_device
from pseudolabel.progress import chunked, progress
from pseudolabel.runtime import claim_output, resolve_output
from pseudolabel.selftrain.config import INIT_NONE, INIT_RUN, SelfTrainConfig
from pseudolabel.selftrain.model import (
    FpnSegmenter,
    keep_classes,
    load_encoder_weights,
    masked_cross_entropy,
    read_weights,
)
from pseudolabel.train.state import restore, rng_state, set_rng_state

log = logging.getLogger(__name__)

CONFIG_NAME = "selftrain.yaml"
MODEL_FILE = "model.pt"
STATE_FILE = "last.pt"
MASK_SUFFIX = ".png"
STATE_FORMAT = "pseudolabel.selftrain-state"
MODEL_FORMAT = "pseudolabel.segmenter"
FIX = "start again with --overwrite"


# ------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Pair:
    """One training image: its id, image file, mask file and 0-based labelled classes."""

    id: str
    image: Path
    mask: Path
    labels: tuple[int, ...]


@dataclass(frozen=True)
class _PairCheck:
    """Decode an image and its mask; the mask must hold 0..K or 255 at the image's size."""

    num_classes: int

    def __call__(self, pair: Pair) -> tuple[str, str | None, str | None] | None:
        """None, or the error as (message, path, fix) (plain values cross processes)."""
        try:
            image = load_image(pair.image)
            mask = read_mask(pair.mask)
            if mask.shape != image.shape[:2]:
                raise BadInputError(f"mask is {mask.shape[1]}x{mask.shape[0]} px but its image "
                                    f"is {image.shape[1]}x{image.shape[0]}", path=pair.mask,
                                    fix="give the masks made for these images")
            values = np.unique(mask)
            bad = values[(values > self.num_classes) & (values != IGNORE)]
            if bad.size:
                raise BadInputError(
                    f"mask holds value(s) {', '.join(map(str, bad[:5].tolist()))}, not a class "
                    f"(0..{self.num_classes}) or {IGNORE}", path=pair.mask,
                    fix="give masks of this data set's classes (0 background, class i + 1, "
                        "255 not sure)")
        except BadInputError as exc:
            return exc.message, str(exc.path) if exc.path else None, exc.fix
        return None


def find_pairs(samples: Sequence[Sample], masks_dir: Path, num_classes: int, *,
               skip_bad: bool, workers: int = 1) -> list[Pair]:
    """The (image, mask) pairs of ``samples``: every image needs a readable mask of its size
    with values 0..num_classes or 255 (a BadInputError, or a logged skip with ``skip_bad``)."""
    pairs, bad = [], []
    for s in samples:
        mask = output_path(masks_dir, s.id, MASK_SUFFIX)
        if mask.is_file():
            pairs.append(Pair(s.id, s.image, mask, tuple(s.labels)))
            continue
        error = BadInputError(f"no mask for image {s.id!r}", path=mask,
                              fix="give the MASK_DIR refine wrote for this split (--split), "
                                  "or add --skip-bad to leave such images out")
        if not skip_bad:
            raise error
        bad.append((s.id, error.one_line()))
    errors = progress(imap_ordered(_PairCheck(num_classes), pairs, workers), total=len(pairs),
                      desc="checking masks")
    kept = []
    for pair, error in zip(pairs, errors, strict=True):
        if error is None:
            kept.append(pair)
            continue
        message, path, fix = error
        if not skip_bad:
            raise BadInputError(message, path=path, fix=fix)
        bad.append((pair.id, BadInputError(message, path=path, fix=fix).one_line()))
    for image_id, error in bad:
        log.warning("skipped %s: %s", image_id, error)
    if not kept:
        raise BadInputError("no image of the split has a usable mask", path=masks_dir,
                            fix="run pseudolabel refine on this split first")
    return kept


# ------------------------------------------------------------------------------ data
def _square(image: np.ndarray, mask: np.ndarray | None, size: int
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H, W, 3) uint8 and (H, W) uint8 -> (3, S, S) float in [0, 1] and (S, S) int64."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
    x = F.interpolate(x[None], (size, size), mode="bilinear", align_corners=False,
                      antialias=True)[0]
    if mask is None:
        return x, None
    y = torch.from_numpy(np.ascontiguousarray(mask)).float()
    y = F.interpolate(y[None, None], (size, size), mode="nearest")[0, 0].long()
    return x, y


class PairDataset(Dataset):
    """Training pairs with light augmentation; the randomness of item ``i`` depends only on
    (seed, epoch, i), so it is the same in any worker and after a resume.

    Returns ``(image (3, S, S) float32 in [0, 1], mask (S, S) int64, 255 = ignore)``.
    """

    def __init__(self, pairs: Sequence[Pair], size: int, crop_scale: float, seed: int) -> None:
        self.pairs, self.size, self.crop_scale, self.seed = list(pairs), size, crop_scale, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        pair = self.pairs[i]
        image, mask = load_image(pair.image), read_mask(pair.mask)
        h, w = mask.shape
        share = rng.uniform(self.crop_scale, 1.0)
        ch, cw = max(1, round(h * share)), max(1, round(w * share))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image, mask = image[y0:y0 + ch, x0:x0 + cw], mask[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        x, y = _square(image, mask, self.size)
        assert y is not None
        return x, y


# ------------------------------------------------------------------------------ model
def build_segmenter(config: SelfTrainConfig, classes: Sequence[str],
                    run_dir: Path | None) -> tuple[FpnSegmenter, str]:
    """The segmenter (K + 1 outputs) with its encoder initialised per ``config.init``; returns
    it and the encoder's timm name."""
    classifier = None
    if config.init == INIT_RUN or config.encoder is None:
        if run_dir is None:
            raise BadInputError(
                "no RUN_DIR: the encoder's name or weights come from --run",
                fix="add --run RUN_DIR (pseudolabel train's output), or give --encoder NAME "
                    "with --init none or --init FILE")
        classifier, _ = load_run(run_dir)
        check_same_classes(classifier.classes, run_dir, classes, "the data set")
    encoder = config.encoder or classifier.model_name  # type: ignore[union-attr]
    model = FpnSegmenter(encoder, len(classes) + 1, normalize=True)
    if config.init == INIT_RUN:
        assert classifier is not None
        if classifier.model_name != encoder:
            raise BadInputError(
                f"--init run loads {classifier.model_name!r} weights, not {encoder!r}",
                path=run_dir, fix=f"drop --encoder (or give --encoder {classifier.model_name})")
        load_encoder_weights(model.encoder, classifier.state_dict(), run_dir or "",
                             prefix="backbone.")
        log.info("encoder %s from the student of %s", encoder, run_dir)
    elif config.init != INIT_NONE:
        unused = load_encoder_weights(model.encoder, read_weights(config.init), config.init)
        log.info("encoder %s from %s (%d tensors unused)", encoder, config.init, unused)
    else:
        log.warning("the encoder %s starts from random weights (--init none)", encoder)
    return model, encoder


def save_model(path: Path, model: FpnSegmenter, classes: Sequence[str]) -> None:
    """OUT/model.pt: the segmenter's weights, timm name and classes (weights_only loadable)."""
    payload = {"format": MODEL_FORMAT, "encoder": model.encoder_name, "classes": list(classes),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"
               ) -> tuple[FpnSegmenter, tuple[str, ...]]:
    """A segmenter saved by the selftrain stage (in eval mode) and its classes."""
    payload = read_tagged(path, MODEL_FORMAT, what="pseudolabel segmenter", fix=FIX,
                          map_location=map_location)
    classes = tuple(payload.get("classes") or ())
    model = FpnSegmenter(str(payload.get("encoder")), len(classes) + 1, normalize=True)
    restore(model, payload.get("state_dict"), "model", path)
    return model.eval(), classes


# ------------------------------------------------------------------------------ training
def _load_state(path: Path) -> dict[str, Any]:
    payload = read_tagged(path, STATE_FORMAT, what="pseudolabel selftrain state", fix=FIX)
    epoch = payload.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise BadInputError(f"selftrain state is damaged: its epoch is {epoch!r}", path=path,
                            fix=FIX)
    return payload


def train(model: FpnSegmenter, pairs: Sequence[Pair], config: SelfTrainConfig,
          device: torch.device, out: Path) -> None:
    """Train ``model`` in place for ``config.epochs`` epochs, resuming from OUT/last.pt."""
    data = PairDataset(pairs, config.image_size, config.crop_scale, config.seed)
    drop = drops_last(len(data), config.batch_size)
    per_epoch = len(data) // config.batch_size if drop else -(-len(data) // config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.lr, total_steps=max(1, config.epochs * per_epoch), pct_start=0.1)
    first = 0
    state_path = out / STATE_FILE
    if state_path.is_file():
        state = _load_state(state_path)
        restore(model, state.get("model"), "model", state_path)
        restore(optimizer, state.get("optimizer"), "optimizer", state_path)
        restore(scheduler, state.get("scheduler"), "scheduler", state_path)
        set_rng_state(state["rng"])
        first = state["epoch"]
        log.info("selftrain: resuming after epoch %d of %d", first, config.epochs)
    for epoch in range(first, config.epochs):
        data.epoch = epoch
        order = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, generator=order,
                            drop_last=drop, num_workers=config.workers,
                            worker_init_fn=init_worker if config.workers else None)
        model.train()
        total, seen, t0 = 0.0, 0, time.perf_counter()
        for x, y in progress(loader, total=per_epoch,
                             desc=f"selftrain {epoch + 1}/{config.epochs}"):
            x, y = x.to(device), y.to(device)
            loss = masked_cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(x)
            seen += len(x)
        mean = total / max(seen, 1)
        if not np.isfinite(mean):
            raise BadInputError(f"the loss is not finite at epoch {epoch + 1}: the training "
                                "diverged", path=out, fix="lower --lr, and start again with "
                                                          "--overwrite")
        payload = {"format": STATE_FORMAT, "epoch": epoch + 1,
                   "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "rng": rng_state()}
        with atomic_path(state_path) as tmp:
            torch.save(payload, tmp)
        took = time.perf_counter() - t0
        log.info("selftrain epoch %d/%d: loss %.4f, %.1f images/s (%.0f s)", epoch + 1,
                 config.epochs, mean, seen / max(took, 1e-9), took)


# ------------------------------------------------------------------------------ prediction
@torch.no_grad()
def predict(model: FpnSegmenter, images: Sequence[np.ndarray], labels: Sequence[Sequence[int]],
            config: SelfTrainConfig, device: torch.device) -> list[np.ndarray]:
    """Masks of ``images`` ((H, W, 3) uint8 each): the softmax at ``image_size`` (with the
    mirror image's averaged in when ``config.flip``), resized to each image, classes outside
    ``labels`` dropped when ``config.keep_labels``, argmax -> (H, W) uint8 (0 background,
    class index + 1)."""
    model.eval()
    x = torch.stack([_square(img, None, config.image_size)[0] for img in images]).to(device)
    prob = model(x).softmax(1)
    if config.flip:
        prob = (prob + model(x.flip(-1)).softmax(1).flip(-1)) / 2
    out = []
    for b, img in enumerate(images):
        p = F.interpolate(prob[b:b + 1], img.shape[:2], mode="bilinear", align_corners=False)
        if config.keep_labels:
            p = keep_classes(p, [labels[b]])
        out.append(p[0].argmax(0).to(torch.uint8).cpu().numpy())
    return out


def _chunks(pairs: Sequence[Pair], size: int) -> Iterator[list[Pair]]:
    yield from (list(c) for c in chunked(list(pairs), size))


def _outputs(out: Path) -> list[Path]:
    found = [p for p in out.rglob("*" + MASK_SUFFIX) if p.is_file()]
    return found + [out / n for n in (MODEL_FILE, STATE_FILE) if (out / n).exists()]


# ------------------------------------------------------------------------------ the stage
def run(config: SelfTrainConfig, root: SourceLike, masks_dir: str | os.PathLike,
        out_dir: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> Path:
    """Train a segmenter on the masks of MASK_DIR for the images of ``root``'s split and write
    its masks of the same images to OUT; returns OUT (see the module docstring).

    Args:
        config: the options.
        root: the data set (a root path or a :class:`~pseudolabel.data.source.DataSource`);
            its image-level labels are used by ``keep_labels``; its ground truth never.
        masks_dir: the pseudo-masks to train on (refine's MASK_DIR): one <id>.png per image.
        out_dir: OUT.
        run_dir: ``pseudolabel train``'s RUN_DIR (or one checkpoint): the encoder's name and,
            with ``init="run"``, its weights.
    """
    source = DataSource.of(root)
    masks = Path(masks_dir).resolve()
    if not masks.is_dir():
        raise BadInputError("mask folder does not exist", path=masks_dir,
                            fix="give --masks the MASK_DIR of pseudolabel refine")
    run_path = Path(run_dir).resolve() if run_dir is not None else None
    if run_path is not None and not run_path.exists():
        raise BadInputError("run folder does not exist", path=run_dir,
                            fix="give --run the RUN_DIR of pseudolabel train")
    if config.init not in (INIT_RUN, INIT_NONE) and not Path(config.init).is_file():
        raise BadInputError("--init: weights file does not exist", path=config.init,
                            fix="give 'run', 'none' or a local timm weights file")
    device = resolve_device(config.device)
    dataset = open_dataset(source, config.split, policy="skip" if config.skip_bad else "raise")
    classes = dataset.classes
    torch.manual_seed(config.seed)
    model, encoder = build_segmenter(config, classes, run_path)
    init = config.init if config.init in (INIT_RUN, INIT_NONE) else str(
        Path(config.init).resolve())
    resolved = {**source.to_dict(), "masks": str(masks),
                "run": str(run_path) if run_path is not None else None,
                **to_dict(dataclasses.replace(config, encoder=encoder, init=init))}
    del resolved["overwrite"]  # never replayed from a saved config
    pairs = find_pairs(dataset.samples, masks, len(classes), skip_bad=config.skip_bad,
                       workers=max(config.workers, 1))
    if resolve_output(out_dir) == masks:  # --overwrite would delete the masks it trains on
        raise BadInputError("--out is the mask folder it trains on", path=out_dir,
                            fix="choose another --out")
    with claim_output(out_dir, record=(CONFIG_NAME,), resolved=resolved,
                      may_change=SelfTrainConfig.RESUME_MAY_CHANGE, overwrite=config.overwrite,
                      outputs=_outputs) as claim:
        out = claim.path
        save_config(resolved, out / CONFIG_NAME)
        model.to(device)
        if (out / MODEL_FILE).is_file():
            model, _ = load_model(out / MODEL_FILE, device)
            log.info("selftrain: the segmenter is trained (%s)", out / MODEL_FILE)
        else:
            log.info("selftrain: %s on %d images of %s for %d epochs", encoder, len(pairs),
                     masks, config.epochs)
            train(model, pairs, config, device, out)
            save_model(out / MODEL_FILE, model, classes)
        todo = [p for p in pairs if not output_path(out, p.id, MASK_SUFFIX).is_file()]
        log.info("selftrain: %d of %d masks to write", len(todo), len(pairs))
        with progress(total=len(todo), desc="selftrain masks") as bar:
            for chunk in _chunks(todo, config.batch_size):
                images = [load_image(p.image) for p in chunk]
                predicted = predict(model, images, [p.labels for p in chunk], config, device)
                for pair, mask in zip(chunk, predicted, strict=True):
                    write_mask(output_path(out, pair.id, MASK_SUFFIX), mask)
                bar.update(len(chunk))
    return out
