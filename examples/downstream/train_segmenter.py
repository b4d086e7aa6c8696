"""Train a standard semantic segmenter on a mask folder and score it on held-out images.

This closes the WSSS loop: pseudo-masks from ``pseudolabel refine`` are only a means; what counts
is the segmenter trained on them. Run the same script on the ground-truth masks for the fully
supervised upper bound::

    # pseudo-masks of the train split, scored on the val split's ground truth
    python examples/downstream/train_segmenter.py data --masks out/masks \
        --train-split train --val-split val --out seg-pseudo
    # upper bound: the ground truth of the same train images
    python examples/downstream/train_segmenter.py data --masks gt \
        --train-split train --val-split val --out seg-gt

The model is a segmentation_models_pytorch U-Net / DeepLabV3+ on a timm encoder (``tu-NAME``)
when smp is installed (``pip install 'pseudolabel[downstream]'``); otherwise
:class:`pseudolabel.selftrain.FpnSegmenter`, the light segmenter of ``pseudolabel selftrain`` (a
timm ``features_only`` backbone and a small FPN decoder). Nothing is downloaded:
``--encoder-weights FILE`` loads a local timm state dict into the encoder.

Pixels of value 255 in a mask (the refiners' "not sure") are ignored by the loss
(``CrossEntropyLoss(ignore_index=255)``). Predictions for the val images are written as palette
PNGs to ``OUT/pred`` and scored with :func:`pseudolabel.evaluate.evaluate`.

The score is a held-out one only if no val image is a training image: the script refuses a
val split that shares images with the training split (a root without split files has no "val"
split at all), unless ``--allow-overlap`` says so on purpose; then it warns and scores.json
records ``"held_out": false``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pseudolabel.data import load_dataset, load_image, read_mask, write_mask
from pseudolabel.data.masks import IGNORE
from pseudolabel.errors import BadInputError
from pseudolabel.evaluate import EvalResult, evaluate
from pseudolabel.io import output_path
from pseudolabel.selftrain import FpnSegmenter

log = logging.getLogger("train_segmenter")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@dataclass(frozen=True)
class SegConfig:
    """What to train: the architecture, encoder (timm name) and the schedule."""

    arch: str = "unet"  # unet | deeplabv3plus (smp) ; the fallback is always a small FPN
    encoder: str = "tf_efficientnet_lite0"
    encoder_weights: str | None = None  # a local timm state dict of the encoder
    image_size: int = 128
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-3
    workers: int = 0
    device: str = "cpu"
    seed: int = 0
    backend: str = "auto"  # auto (smp when importable) | smp | timm


class MaskFolderDataset(Dataset):
    """Images and palette-PNG masks, resized to a square side; 255 stays 255 (ignored).

    Returns ``(image (3, S, S) float32 normalised, mask (S, S) int64)``.
    """

    def __init__(self, images: Sequence[Path], masks: Sequence[Path], size: int,
                 train: bool = True) -> None:
        self.images, self.masks, self.size, self.train = list(images), list(masks), size, train

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(load_image(self.images[i])).permute(2, 0, 1).float() / 255
        mask = torch.from_numpy(read_mask(self.masks[i]).astype(np.int64))
        img = F.interpolate(img[None], (self.size, self.size), mode="bilinear",
                            align_corners=False)[0]
        mask = F.interpolate(mask[None, None].float(), (self.size, self.size),
                             mode="nearest")[0, 0].long()
        if self.train and torch.rand(()) < 0.5:
            img, mask = img.flip(-1), mask.flip(-1)
        return (img - MEAN) / STD, mask


def smp_available() -> bool:
    try:
        import segmentation_models_pytorch  # noqa: F401
    except Exception:  # ImportError, or a version clash with our torch/timm
        return False
    return True


def build_model(cfg: SegConfig, num_classes: int) -> tuple[nn.Module, nn.Module, str]:
    """(model, its timm encoder module, backend name); loads ``encoder_weights`` if given."""
    backend = cfg.backend
    if backend == "auto":
        backend = "smp" if smp_available() else "timm"
    if backend == "smp":
        import segmentation_models_pytorch as smp

        arch = {"unet": smp.Unet, "deeplabv3plus": smp.DeepLabV3Plus}[cfg.arch]
        model = arch(f"tu-{cfg.encoder}", encoder_weights=None, classes=num_classes)
        encoder = model.encoder.model  # the timm features_only model inside smp's wrapper
    else:
        model = FpnSegmenter(cfg.encoder, num_classes)  # fed normalised input here
        encoder = model.encoder
    if cfg.encoder_weights:
        state = torch.load(cfg.encoder_weights, map_location="cpu", weights_only=True)
        res = encoder.load_state_dict(state, strict=False)
        if res.missing_keys:
            raise BadInputError(f"{len(res.missing_keys)} encoder tensors are not in the file "
                                f"(e.g. {res.missing_keys[0]})", path=cfg.encoder_weights,
                                fix=f"give the timm state dict of {cfg.encoder}")
        log.info("encoder weights from %s (%d classifier tensors unused)", cfg.encoder_weights,
                 len(res.unexpected_keys))
    return model, encoder, backend


def mask_pairs(root: Path, split: str | None, masks: str) -> tuple[list[Path], list[Path], int]:
    """(image files, mask files, number of classes + 1) of the split's images that have a mask.

    ``masks`` is a mask folder or ``"gt"`` for ROOT's ground truth.
    """
    dataset = load_dataset(root, split, require_labels=False)
    images, files = [], []
    for s in dataset.samples:
        m = s.mask if masks == "gt" else output_path(Path(masks), s.id, ".png")
        if m is not None and Path(m).is_file():
            images.append(s.image)
            files.append(Path(m))
    if not files:
        raise BadInputError(f"no mask for the images of split {split!r} of {root}",
                            path=masks, fix="run pseudolabel refine on that split first")
    if len(files) < len(dataset):
        log.warning("%d of %d images have no mask and are left out",
                    len(dataset) - len(files), len(dataset))
    return images, files, dataset.num_classes + 1


def check_held_out(train_ids: Sequence[str], val_ids: Sequence[str], root: Path,
                   splits: tuple[str | None, str | None], allow_overlap: bool = False) -> bool:
    """Whether the val images are held out (none is a training image). A val split that shares
    images with the training split is an error unless ``allow_overlap``; then a loud warning."""
    shared = set(train_ids) & set(val_ids)
    if not shared:
        return True
    train_split, val_split = splits
    what = (f"the val split {val_split!r} shares {len(shared)} of its {len(set(val_ids))} "
            f"images with the training split {train_split!r}")
    if not allow_overlap:
        raise BadInputError(f"{what}: its score would not be a held-out one", path=root,
                            fix="give --val-split a split of other images (ImageSets/"
                                "Segmentation/<split>.txt), or --allow-overlap to score on "
                                "training images anyway")
    log.warning("WARNING: %s; the score below is NOT a held-out score (--allow-overlap)", what)
    return False


def train(cfg: SegConfig, images: Sequence[Path], masks: Sequence[Path],
          num_classes: int) -> tuple[nn.Module, str]:
    """Train a segmenter on (image, mask) pairs; returns (model in eval mode, backend)."""
    torch.manual_seed(cfg.seed)
    model, _, backend = build_model(cfg, num_classes)
    model.to(cfg.device)
    data = MaskFolderDataset(images, masks, cfg.image_size, train=True)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=len(data) >
                        cfg.batch_size, num_workers=cfg.workers)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = max(1, cfg.epochs * len(loader))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    for epoch in range(cfg.epochs):
        model.train()
        total, seen, t0 = 0.0, 0, time.time()
        for x, y in loader:
            x, y = x.to(cfg.device), y.to(cfg.device)
            loss = loss_fn(model(x), y)
            if torch.isnan(loss):  # a batch whose pixels are all 255: nothing to learn from
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(x)
            seen += len(x)
        log.info("epoch %d/%d  loss %.4f  (%.0f s)", epoch + 1, cfg.epochs,
                 total / max(seen, 1), time.time() - t0)
    return model.eval(), backend


@torch.no_grad()
def predict(model: nn.Module, cfg: SegConfig, root: Path, split: str | None,
            out: Path) -> Path:
    """Write the argmax prediction of every image of ``split`` as ``out/<id>.png``."""
    dataset = load_dataset(root, split, require_labels=False)
    out.mkdir(parents=True, exist_ok=True)
    for s in dataset.samples:
        img = torch.from_numpy(load_image(s.image)).permute(2, 0, 1).float() / 255
        h, w = img.shape[-2:]
        x = F.interpolate(img[None], (cfg.image_size, cfg.image_size), mode="bilinear",
                          align_corners=False)
        logits = model(((x - MEAN) / STD).to(cfg.device))
        logits = F.interpolate(logits, (h, w), mode="bilinear", align_corners=False)
        write_mask(output_path(out, s.id, ".png"),
                   logits[0].argmax(0).to(torch.uint8).cpu().numpy())
    return out


def run(cfg: SegConfig, root: str | Path, masks: str, out: str | Path, *,
        train_split: str | None = "train", val_split: str | None = "val",
        allow_overlap: bool = False) -> EvalResult:
    """Train on ``masks`` (a folder or "gt") for ``train_split``; score on ``val_split``, which
    must not share images with ``train_split`` unless ``allow_overlap`` (:func:`check_held_out`)."""
    root, out = Path(root), Path(out)
    val_set = load_dataset(root, val_split, require_labels=False)
    held_out = check_held_out(load_dataset(root, train_split, require_labels=False).ids,
                              val_set.ids, root, (train_split, val_split), allow_overlap)
    images, files, num_classes = mask_pairs(root, train_split, masks)
    log.info("training on %d images (%s)", len(images), masks)
    model, backend = train(cfg, images, files, num_classes)
    pred = predict(model, cfg, root, val_split, out / "pred")
    result = evaluate(pred, val_set)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.json").write_text(json.dumps(
        {**result.to_dict(), "held_out": held_out,
         "segmenter": {**asdict(cfg), "backend": backend, "masks": masks,
                       "train_images": len(images)}},
        indent=1))
    return result


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="dataset root (JPEGImages/, SegmentationClass/ ...)")
    p.add_argument("--masks", required=True, help="mask folder to train on, or 'gt'")
    p.add_argument("--out", type=Path, required=True, help="folder for pred/ and scores.json")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val", help="held-out split with ground truth")
    p.add_argument("--allow-overlap", action="store_true",
                   help="score on a val split that shares images with the training split "
                        "(not a held-out score; a warning says so)")
    d = SegConfig()
    for name, value in asdict(d).items():
        flag = "--" + name.replace("_", "-")
        kind = type(value) if value is not None else str
        p.add_argument(flag, type=kind, default=value, help=f"default: {value}")
    a = vars(p.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = SegConfig(**{k: a[k] for k in asdict(d)})
    try:
        result = run(cfg, a["root"], a["masks"], a["out"], train_split=a["train_split"],
                     val_split=a["val_split"], allow_overlap=a["allow_overlap"])
    except BadInputError as exc:  # one line, exit 2, as the pseudolabel commands do
        sys.stderr.write(f"error: {exc.one_line()}\n")
        raise SystemExit(2) from None
    print(result.table())


if __name__ == "__main__":
    main()
