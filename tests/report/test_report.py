"""The HTML report: sections from their inputs, the worst and best images side by side, the
refine chains compared, context leakage, overlays visible on any colour, a real browser renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pseudolabel.data.masks import write_mask
from pseudolabel.errors import BadInputError
from pseudolabel.report import ReportConfig, run
from pseudolabel.report.pictures import colormap, mask_overlay, overlay_colour
from pseudolabel.report.svg import bar_chart, line_chart


def _root(tmp_path: Path, n: int = 4, size: int = 32, *, leak: bool = False
          ) -> tuple[Path, Path]:
    """A tiny dataset root with ground truth and a mask folder whose quality falls with the id.

    ``leak``: context masks (rows 26-29, a chimney) and masks of im1 that label rows 26-27 smoke.
    """
    root, masks = tmp_path / "root", tmp_path / "out" / "masks"
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
        if leak:
            context = np.zeros((size, size), np.uint8)
            context[26:30] = 1
            write_mask(root / "SegmentationContext" / f"im{i}.png", context)
            if i == 1:
                pred[26:28] = 1
        write_mask(masks / f"im{i}.png", pred)
        rows.append(f"im{i},smoke")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root, masks


def _columns(html: str) -> list[list[str]]:
    """The image ids of each gallery column, in order."""
    return [re.findall(r'<div class="cap">(im\d)', side)
            for side in html.split('<div class="side">')[1:]]


def _smoke_iou(masks: Path, root: Path, ids: list[str]) -> float:
    """Smoke IoU over the images, counted independently of the report."""
    inter = union = 0
    for i in ids:
        pred = np.asarray(Image.open(masks / f"{i}.png")) == 1
        gt = np.asarray(Image.open(root / "SegmentationClass" / f"{i}.png")) == 1
        inter += (pred & gt).sum()
        union += (pred | gt).sum()
    return inter / union


def test_report_scores_and_shows_worst_and_best_side_by_side(tmp_path: Path) -> None:
    root, masks = _root(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(
        '[{"epoch": 1, "train_loss": 0.9, "val_map": 0.5}, {"epoch": 2, "train_loss": 0.5, '
        '"val_map": 0.8}]')
    out = run(ReportConfig(), tmp_path / "r.html", masks=masks, gt=root, run_dir=run_dir)
    html = out.read_text()
    assert "IoU per class" in html and "Training" in html and "validation" in html
    assert _columns(html) == [["im3", "im2"], ["im0", "im1"]]  # worst | best, no image twice
    assert _columns(run(ReportConfig(gallery=3), tmp_path / "r3.html", masks=masks,
                        gt=root).read_text()) == [["im3", "im2"], ["im0"]]
    # overall IoU of smoke: intersection / union summed over images (an independent count)
    iou = _smoke_iou(masks, root, [f"im{i}" for i in range(4)])
    assert f"{iou:.3f}" in html
    assert "Refine chains" not in html and "context leakage" not in html  # nothing to compare
    # without ground truth: the images with most ignored pixels first, no IoU
    shutil.rmtree(root / "SegmentationClass")
    for i, share in ((1, 0.25), (2, 0.5)):
        mask = np.asarray(Image.open(masks / f"im{i}.png")).copy()
        mask[: int(32 * share)] = 255
        write_mask(masks / f"im{i}.png", mask)
    html = run(ReportConfig(gallery=2), tmp_path / "r4.html", masks=masks, images=root).read_text()
    assert _columns(html) == [["im2"], ["im3"]] and "IoU" not in html.split("Gallery")[1]
    assert "ignored 50.0%" in html and "fewest ignored pixels" in html
    assert "CAM heat map" in html and "linearGradient" in html  # the colour bar
    assert (out.parent / (out.name + ".yaml")).is_file()


def _chain(tmp_path: Path, root: Path, name: str, cut: int, refiners: list[str]) -> Path:
    """A mask folder under out/compare/<name> whose masks miss ``cut`` columns of the square."""
    folder = tmp_path / "out" / "compare" / name
    for i in range(4):
        pred = np.asarray(Image.open(root / "SegmentationClass" / f"im{i}.png")).copy()
        pred[8:24, 8:8 + cut] = 0
        write_mask(folder / f"im{i}.png", pred)
    (folder / "refine.yaml").write_text(yaml.safe_dump({"refiners": refiners}))
    return folder


def test_chains_beside_the_masks_are_compared_best_first(tmp_path: Path) -> None:
    root, masks = _root(tmp_path)
    (masks / "refine.yaml").write_text(yaml.safe_dump({"refiners": ["threshold:t=0.3", "crf"]}))
    good = _chain(tmp_path, root, "gmm", 0, ["gmm"])
    poor = _chain(tmp_path, root, "fusion+gmm", 12, ["fusion", "gmm"])
    html = run(ReportConfig(), tmp_path / "r.html", masks=masks, gt=root).read_text()
    table = html.split("<h2>Refine chains</h2>")[1].split("</table>")[0]
    names = re.findall(r'<td class="name">([^<]+)</td>', table)
    assert names == ["gmm", "threshold → crf ◀ these masks", "fusion → gmm"]
    ids = [f"im{i}" for i in range(4)]
    for folder in (good, masks, poor):
        assert f"{_smoke_iou(folder, root, ids):.3f}" in table
    assert re.search(r"best chain: <b>gmm</b>", html) and "masks: <b>threshold → crf</b>" in html


def test_chains_json_and_context_leakage(tmp_path: Path) -> None:
    root, masks = _root(tmp_path, leak=True)
    html = run(ReportConfig(), tmp_path / "r.html", masks=masks, gt=root).read_text()
    # 64 context pixels of im1 labelled smoke out of 4 x 4 x 32 context pixels
    summary = html.split("<h2>Scores</h2>")[1].split("</table>")[0]
    assert "context leakage" in summary and f"{64 / 512:.3f}" in summary
    # per image in the gallery's captions: im1 labels 64 of its 128 context pixels
    captions = dict(re.findall(r'<div class="cap">(im\d)([^<]*)</div>', html))
    assert "context leakage 0.500" in captions["im1"]
    assert "context leakage 0.000" in captions["im0"]
    scores = {"classes": ["background", "smoke"], "miou": 0.5, "coverage": 1.0,
              "per_class": {"background": {"iou": 0.9}, "smoke": {"iou": 0.1}},
              "context_leakage": {"smoke": 0.25}}
    (tmp_path / "a.json").write_text(json.dumps(scores))
    (tmp_path / "chains.json").write_text(json.dumps(
        {"a": "a.json", "b": {**scores, "miou": 0.6, "context_leakage": {"smoke": 0.05}}}))
    html = run(ReportConfig(), tmp_path / "r2.html", masks=masks, gt=root,
               chains=tmp_path / "chains.json").read_text()
    table = html.split("<h2>Refine chains</h2>")[1].split("</table>")[0]
    assert re.findall(r'<td class="name">([^<]+)</td>', table) == ["b", "a"]
    assert "smoke context leakage" in table and "0.050" in table and "0.250" in table
    (tmp_path / "bad.json").write_text('{"a": {"miou": 1}}')
    with pytest.raises(BadInputError, match="has no scores"):
        run(ReportConfig(), tmp_path / "r3.html", masks=masks, gt=root,
            chains=tmp_path / "bad.json")


def test_overlay_shows_on_any_colour() -> None:
    """Fill blended with the class colour, a white line inside and a black line outside the
    region, ignored pixels hatched, the rest untouched: on dark, light and coloured images."""
    mask = np.zeros((12, 12), np.uint8)
    mask[3:9, 3:9] = 1
    mask[0, :] = 255
    for colour in ((0, 0, 0), (255, 255, 255), (200, 40, 30), (120, 120, 120)):
        img = np.empty((12, 12, 3), np.uint8)
        img[:] = colour
        over = mask_overlay(img, mask, alpha=0.5)
        expect = np.round(np.array(colour) * 0.5 + np.array(overlay_colour(1)) * 0.5)
        np.testing.assert_array_equal(over[5, 5], expect)  # interior: the blend
        assert (over[3, 3:9] == 255).all() and (over[8, 3:9] == 255).all()  # inner edge white
        assert (over[2, 3:9] == 0).all() and (over[3:9, 9] == 0).all()  # outer edge black
        np.testing.assert_array_equal(over[11, 0], colour)  # far from the mask: untouched
        assert {tuple(v) for v in over[0]} >= {(200, 200, 200)}  # ignore hatched
    assert overlay_colour(1) != (128, 0, 0)  # not VOC's dark red


def test_pictures_and_charts() -> None:
    assert colormap(np.array([[0.0, 1.0]])).shape == (1, 2, 3)
    assert not np.array_equal(colormap(np.array([[0.0]])), colormap(np.array([[1.0]])))
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
         f"--screenshot={shot}", "--window-size=1300,1200", out.as_uri()],
        check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10, "blank screenshot"
    coloured = (np.abs(pixels - pixels.mean(axis=2, keepdims=True)).sum(axis=2) > 60).mean()
    assert coloured > 0.005, "no bars or pictures rendered"
    # the worst and the best column side by side: mask overlays (magenta) in both halves
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    magenta = (r > g + 60) & (b > g + 60)
    half = pixels.shape[1] // 2
    assert magenta[:, :half].sum() > 200 and magenta[:, half:].sum() > 200


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

