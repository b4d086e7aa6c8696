"""The HTML report: sections from their inputs, worst-first gallery, a real browser renders it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pseudolabel.data.masks import write_mask
from pseudolabel.report import ReportConfig, run
from pseudolabel.report.pictures import colormap, mask_overlay
from pseudolabel.report.svg import bar_chart, line_chart


def _root(tmp_path: Path, n: int = 4, size: int = 32) -> tuple[Path, Path]:
    """A tiny dataset root with ground truth and a mask folder whose quality falls with the id."""
    root, masks = tmp_path / "root", tmp_path / "masks"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "classes.txt").write_text("smoke\n")
    rows = ["image,labels"]
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "JPEGImages" / f"im{i}.png")
        gt = np.zeros((size, size), np.uint8)
        gt[8:24, 8:24] = 1
        write_mask(root / "SegmentationClass" / f"im{i}.png", gt)
        pred = gt.copy()
        pred[8:24, 8:8 + 4 * i] = 0  # im0 perfect, im3 worst
        write_mask(masks / f"im{i}.png", pred)
        rows.append(f"im{i},smoke")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root, masks


def test_report_scores_and_orders_the_gallery_worst_first(tmp_path: Path) -> None:
    root, masks = _root(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(
        '[{"epoch": 1, "train_loss": 0.9, "val_map": 0.5}, {"epoch": 2, "train_loss": 0.5, '
        '"val_map": 0.8}]')
    out = run(ReportConfig(), tmp_path / "r.html", masks=masks, gt=root, run_dir=run_dir)
    html = out.read_text()
    assert "IoU per class" in html and "Training" in html
    ids = re.findall(r'<div class="cap">(im\d)', html)
    assert ids == ["im3", "im2", "im1", "im0"]
    # overall IoU of smoke: intersection / union summed over images (an independent count)
    inter = sum(16 * 16 - 16 * 4 * i for i in range(4))
    assert f"{inter / (4 * 256):.3f}" in html
    assert out.with_suffix(".yaml").is_file()


def test_pictures_and_charts() -> None:
    assert colormap(np.array([[0.0, 1.0]])).shape == (1, 2, 3)
    assert not np.array_equal(colormap(np.array([[0.0]])), colormap(np.array([[1.0]])))
    img = np.full((4, 4, 3), 100, np.uint8)
    mask = np.array([[0, 1, 255, 0]] * 4, np.uint8)
    over = mask_overlay(img, mask)
    assert (over[:, 0] == 100).all() and not (over[:, 1] == 100).all()
    assert "<svg" in bar_chart(["a"], [0.5]) and "polyline" in line_chart({"s": [(0, 1), (1, 2)]})


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_a_headless_browser(tmp_path: Path) -> None:
    root, masks = _root(tmp_path)
    out = run(ReportConfig(), tmp_path / "r.html", masks=masks, gt=root)
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=900,1200", out.as_uri()],
        check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10, "blank screenshot"
    coloured = (np.abs(pixels - pixels.mean(axis=2, keepdims=True)).sum(axis=2) > 60).mean()
    assert coloured > 0.005, "no bars or pictures rendered"


def test_log_x_axis_spaces_decades_evenly() -> None:
    """On a log axis 0.1, 1 and 10 sit at equal steps (on a linear one they do not); x <= 0 is
    left out, and each x gets its label."""
    import re

    def xs(svg: str) -> list[float]:
        return [float(x) for x in re.findall(r'<circle cx="([0-9.]+)"', svg)]

    pts = {"s": [(0.0, 0.2), (0.1, 0.5), (1.0, 0.6), (10.0, 0.4)]}
    log = xs(line_chart(pts, log_x=True))
    assert len(log) == 3 and abs((log[1] - log[0]) - (log[2] - log[1])) < 0.2
    lin = xs(line_chart(pts))
    assert len(lin) == 4 and (lin[3] - lin[2]) > 5 * (lin[2] - lin[1])
    labels = re.findall(r">([0-9.]+)</text>", line_chart(pts, log_x=True))
    assert {"0.1", "1", "10"} <= set(labels)

