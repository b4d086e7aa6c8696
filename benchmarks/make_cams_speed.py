"""make-cams speed: images/s of the whole stage vs the bare forward pass at the same views.

    python benchmarks/make_cams_speed.py [--data ../shared/data/smoke-tiles] [--images 128]
        [--model tf_efficientnet_lite0] [--weights ../shared/weights/tf_efficientnet_lite0_in1k.pth]
        [--scales 1.0,0.5,1.5,2.0] [--no-flip] [--batch-size 16] [--device cpu] [--workers 1] [--repeat 2]

Rows:
  bare forward      model(x) for every scale (and the flipped copy), images decoded beforehand,
                    nothing stored: the floor make-cams cannot beat
  make-cams         pseudolabel.cams.stage.run end to end (decode in workers, CAMs, merge,
                    HDF5 writes, final merge), checkpoint loading included
  pytorch-grad-cam  GradCAM of the same layer and views, when the package is installed
The goal is make-cams >= 0.8x the bare forward pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pseudolabel.cams.multiscale import view_size
from pseudolabel.cams.stage import MakeCamsConfig, run
from pseudolabel.data import load_dataset, load_image
from pseudolabel.models import create_classifier, save_checkpoint

HERE = Path(__file__).resolve().parent


def subset_root(data: Path, n: int, folder: Path) -> tuple[Path, list[str]]:
    """A dataset root over the first ``n`` ids of ``data`` (images linked, not copied)."""
    ids = load_dataset(data, "train").ids[:n]
    root = folder / "data"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "JPEGImages").symlink_to((data / "JPEGImages").resolve())
    for name in ("classes.txt", "labels.csv"):
        (root / name).write_bytes((data / name).read_bytes())
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")
    return root, ids


def bare_forward(model: torch.nn.Module, images: torch.Tensor, scales: list[float], flip: bool,
                 batch_size: int, device: torch.device) -> float:
    """Seconds for the forward passes alone. images: (N, 3, H, W) float in [0, 1]."""
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            for s in scales:
                size = view_size(model, tuple(x.shape[-2:]), s)
                xs = x if size == tuple(x.shape[-2:]) else F.interpolate(
                    x, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
                model(torch.cat([xs, xs.flip(-1)]) if flip else xs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def grad_cam_package(model: torch.nn.Module, images: torch.Tensor, scales: list[float],
                     flip: bool, batch_size: int) -> float | None:
    """Seconds for pytorch-grad-cam's GradCAM on the last stage, or None if not installed."""
    try:
        from pytorch_grad_cam import GradCAM
    except ImportError:
        return None
    target = [model.backbone.conv_head] if hasattr(model.backbone, "conv_head") else [
        list(model.backbone.children())[-1]]
    start = time.perf_counter()
    with GradCAM(model=model, target_layers=target) as cam:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            for s in scales:
                size = view_size(model, tuple(x.shape[-2:]), s)
                xs = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
                cam(input_tensor=torch.cat([xs, xs.flip(-1)]) if flip else xs, targets=None)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=HERE.parent.parent / "shared/data/smoke-tiles")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--model", default="tf_efficientnet_lite0")
    p.add_argument("--weights", type=Path,
                   default=HERE.parent.parent / "shared/weights/tf_efficientnet_lite0_in1k.pth")
    p.add_argument("--scales", default="1.0,0.5,1.5,2.0")
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeat", type=int, default=2, help="best of this many interleaved runs")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scales = [float(s) for s in args.scales.split(",")]
    flip = not args.no_flip
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        root, ids = subset_root(args.data, args.images, tmp_path)
        data = load_dataset(root, "train")
        weights = args.weights if args.weights.is_file() else None
        model = create_classifier(args.model, data.classes, pretrained_file=weights).eval()
        save_checkpoint(tmp_path / "run" / "student.pt", model)
        model = model.to(device)
        images = torch.from_numpy(np.stack([load_image(s.image) for s in data.samples]))
        images = images.permute(0, 3, 1, 2).float().div(255)
        bare_forward(model, images[: args.batch_size], scales, flip, args.batch_size, device)

        cfg = MakeCamsConfig(scales=tuple(scales), flip=flip, batch_size=args.batch_size,
                             device=args.device, workers=args.workers)
        t_bare, t_stage = float("inf"), float("inf")
        for rep in range(args.repeat):  # interleaved, best of: robust to a busy machine
            t_bare = min(t_bare, bare_forward(model, images, scales, flip, args.batch_size,
                                              device))
            start = time.perf_counter()
            out = run(cfg, root, tmp_path / "run", tmp_path / f"cams{rep}.h5")
            t_stage = min(t_stage, time.perf_counter() - start)
        start = time.perf_counter()
        run(dataclasses.replace(cfg, method="gradcam"), root, tmp_path / "run",
            tmp_path / "cams-gradcam.h5")
        t_grad = time.perf_counter() - start
        rows = [("bare forward", t_bare), ("make-cams (end to end)", t_stage),
                ("make-cams --method gradcam", t_grad)]
        t_pkg = grad_cam_package(model, images, scales, flip, args.batch_size)
        size_kb = out.stat().st_size / len(ids) / 1024

    h, w = images.shape[-2:]
    print(f"\n{args.model} on {args.data.name}: {len(ids)} images of {h}x{w}, scales {scales}, "
          f"flip {flip}, batch {args.batch_size}, {args.device}, {torch.get_num_threads()} "
          f"threads, weights {'yes' if weights else 'random'}\n")
    print("| method | seconds | images/s | vs bare forward |")
    print("|---|---:|---:|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {len(ids) / t:.1f} | {t_bare / t:.2f}x |")
    if t_pkg is None:
        print("| pytorch-grad-cam | (not installed) | | |")
    else:
        print(f"| pytorch-grad-cam GradCAM | {t_pkg:.2f} | {len(ids) / t_pkg:.1f} | "
              f"{t_bare / t_pkg:.2f}x |")
    print(f"\nstore size: {size_kb:.2f} KiB per image "
          f"(IRN float32 K x H x W: {len(data.classes) * h * w * 4 / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
