"""The selftrain stage: it learns, keeps the labels, resumes, replays, and refuses bad input."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pseudolabel.cli.main import cli
from pseudolabel.data.masks import read_mask, write_mask
from pseudolabel.errors import BadInputError
from pseudolabel.selftrain import SelfTrainConfig, run
from pseudolabel.selftrain import stage as stage_module

from cli_helpers import assert_one_line_error

TINY = SelfTrainConfig(encoder="test_resnet", init="none", epochs=2, image_size=32,
                       batch_size=2, workers=0, device="cpu")


def _masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: read_mask(p) for p in sorted(folder.glob("*.png"))}


def _separable_root(root: Path, n: int = 8, size: int = 40) -> Path:
    """Grey noise images with one saturated red rectangle each (the 'cat'), and its exact masks
    in SegmentationClass; every other image is a negative (no rectangle, empty labels)."""
    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "classes.txt").write_text("cat\n")
    rows = []
    for i in range(n):
        img = rng.integers(100, 150, (size, size, 3)).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        if i % 4 != 3:
            y0, x0 = rng.integers(0, size // 2, 2)
            h, w = rng.integers(size // 4, size // 2, 2)
            mask[y0:y0 + h, x0:x0 + w] = 1
            img[mask == 1] = (230, 20, 20)
        Image.fromarray(img).save(root / "JPEGImages" / f"im{i}.png")
        write_mask(root / "SegmentationClass" / f"im{i}.png", mask)
        rows.append(f"im{i},{'cat' if mask.any() else ''}")
    (root / "labels.csv").write_text("image,labels\n" + "\n".join(rows) + "\n")
    return root


def test_a_segmenter_trained_on_perfect_masks_reproduces_them(tmp_path: Path) -> None:
    root = _separable_root(tmp_path / "data")
    cfg = dataclasses.replace(TINY, epochs=30, lr=1e-2, batch_size=4, image_size=40,
                              crop_scale=1.0, keep_labels=False)
    out = run(cfg, root, root / "SegmentationClass", tmp_path / "st")
    want, got = _masks(root / "SegmentationClass"), _masks(out)
    assert want.keys() == got.keys()
    inter = sum(int(((want[i] == 1) & (got[i] == 1)).sum()) for i in want)
    union = sum(int(((want[i] == 1) | (got[i] == 1)).sum()) for i in want)
    assert inter / union > 0.9, inter / union
    # OUT holds the masks, the model, the training state and the replayable record
    assert {p.name for p in out.iterdir()} >= {"model.pt", "last.pt", "selftrain.yaml"}


def test_keep_labels_zeroes_the_classes_an_image_is_not_labelled_with(
        tiny_voc_root, tmp_path: Path) -> None:
    root = tiny_voc_root(size=(32, 32))
    # pseudo-masks that paint every image all 'dog' (value 2): the segmenter learns 'dog'
    noisy = tmp_path / "noisy"
    for image_id in ("img0", "img1", "img2", "img3"):
        write_mask(noisy / f"{image_id}.png", np.full((32, 32), 2, np.uint8))
    cfg = dataclasses.replace(TINY, epochs=8, lr=1e-2)
    kept = _masks(run(cfg, root, noisy, tmp_path / "kept"))
    free = _masks(run(dataclasses.replace(cfg, keep_labels=False), root, noisy,
                      tmp_path / "free"))
    assert (free["img3"] == 2).any() and (free["img0"] == 2).any()  # the check can fail
    assert (kept["img3"] == 0).all()  # negative: all background
    assert not (kept["img0"] == 2).any()  # labelled cat only: no dog
    np.testing.assert_array_equal(kept["img1"], free["img1"])  # dog: unchanged
    np.testing.assert_array_equal(kept["img2"], free["img2"])  # cat and dog: unchanged


class _Stop(Exception):
    pass


def test_a_run_killed_during_training_and_prediction_resumes_to_the_same_files(
        tiny_voc_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    root = tiny_voc_root(size=(32, 32))
    cfg = dataclasses.replace(TINY, epochs=3)
    whole = run(cfg, root, root / "SegmentationClass", tmp_path / "whole")

    real_atomic = stage_module.atomic_path

    @contextlib.contextmanager
    def stop_after_first_state(path: Path) -> Iterator[Path]:
        with real_atomic(path) as tmp:
            yield tmp
        if Path(path).name == "last.pt":
            raise _Stop  # killed right after epoch 1's state was written

    monkeypatch.setattr(stage_module, "atomic_path", stop_after_first_state)
    with pytest.raises(_Stop):
        run(cfg, root, root / "SegmentationClass", tmp_path / "killed")
    monkeypatch.setattr(stage_module, "atomic_path", real_atomic)
    assert not list((tmp_path / "killed").glob("*.png"))

    real_write, written = stage_module.write_mask, []

    def stop_after_two(path: Path, mask: np.ndarray) -> Path:
        if len(written) == 2:
            raise _Stop  # killed while writing the masks
        written.append(path)
        return real_write(path, mask)

    monkeypatch.setattr(stage_module, "write_mask", stop_after_two)
    with caplog.at_level("INFO", logger="pseudolabel.selftrain.stage"), pytest.raises(_Stop):
        run(cfg, root, root / "SegmentationClass", tmp_path / "killed")
    assert "resuming after epoch 1 of 3" in caplog.text
    monkeypatch.setattr(stage_module, "write_mask", real_write)
    assert len(list((tmp_path / "killed").glob("*.png"))) == 2
    again = run(cfg, root, root / "SegmentationClass", tmp_path / "killed")

    want, got = _masks(whole), _masks(again)
    assert want.keys() == got.keys() == {"img0", "img1", "img2", "img3"}
    for image_id in want:
        np.testing.assert_array_equal(got[image_id], want[image_id])
    a = torch.load(whole / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(again / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    # another configuration in the same OUT is refused
    with pytest.raises(BadInputError, match="another configuration"):
        run(dataclasses.replace(cfg, epochs=4), root, root / "SegmentationClass", again)


def _cli(args: list[object]):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_saved_config_replays_the_run(tiny_voc_root, tmp_path: Path) -> None:
    root = tiny_voc_root(size=(32, 32))
    first = tmp_path / "first"
    result = _cli(["selftrain", root, "--masks", root / "SegmentationClass", "--out", first,
                   "--encoder", "test_resnet", "--init", "none", "--epochs", 1,
                   "--image-size", 32, "--batch-size", 2, "--workers", 0, "--device", "cpu",
                   "--no-flip"])
    assert result.exit_code == 0, result.output
    result = _cli(["selftrain", "--config", first / "selftrain.yaml", "--out",
                   tmp_path / "second"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in first.glob("*.png"))
    assert len(names) == 4
    for name in names:
        assert (first / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    assert (first / "selftrain.yaml").read_text() == \
        (tmp_path / "second" / "selftrain.yaml").read_text()


@pytest.mark.parametrize("damage, needle", [
    ("missing", "no mask for image 'img2'"),
    ("values", "mask holds value(s) 7"),
    ("size", "mask is 16x16 px but its image is 32x32"),
    ("image", "img1"),
    ("no-run", "no RUN_DIR"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_voc_root, tmp_path: Path, damage: str,
                                         needle: str) -> None:
    root = tiny_voc_root(size=(32, 32))
    masks = root / "SegmentationClass"
    options = ["--encoder", "test_resnet", "--init", "none"]
    if damage == "missing":
        (masks / "img2.png").unlink()
    elif damage == "values":
        write_mask(masks / "img1.png", np.full((32, 32), 7, np.uint8))
    elif damage == "size":
        write_mask(masks / "img1.png", np.zeros((16, 16), np.uint8))
    elif damage == "image":
        (root / "JPEGImages" / "img1.png").write_bytes(b"PNG? no")
    else:
        options = []
    result = _cli(["selftrain", root, "--masks", masks, "--out", tmp_path / "st",
                   "--epochs", 1, "--image-size", 32, "--workers", 0, "--device", "cpu",
                   *options])
    assert_one_line_error(result, needle)
    assert not (tmp_path / "st").exists()  # a failed start leaves nothing


def test_the_mask_folder_is_refused_as_out(tiny_voc_root) -> None:
    root = tiny_voc_root(size=(32, 32))
    masks = root / "SegmentationClass"
    before = _masks(masks)
    with pytest.raises(BadInputError, match="--out is the mask folder it trains on"):
        run(dataclasses.replace(TINY, overwrite=True), root, masks, masks)
    assert _masks(masks).keys() == before.keys()


def test_skip_bad_leaves_out_an_image_without_mask(tiny_voc_root, tmp_path: Path) -> None:
    root = tiny_voc_root(size=(32, 32))
    (root / "SegmentationClass" / "img2.png").unlink()
    out = run(dataclasses.replace(TINY, epochs=1, skip_bad=True), root,
              root / "SegmentationClass", tmp_path / "st")
    assert sorted(p.stem for p in out.glob("*.png")) == ["img0", "img1", "img3"]
