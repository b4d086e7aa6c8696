"""examples/downstream/train_segmenter.py and the photo split of benchmarks/downstream.py."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from pseudolabel.data import make_demo_data, write_mask
from pseudolabel.errors import BadInputError

from .helpers import EXAMPLES, REPO, png, reference_scores


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def seg() -> ModuleType:
    return _load(EXAMPLES / "downstream" / "train_segmenter.py", "train_segmenter")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_data(tmp_path_factory.mktemp("seg") / "data", n_images=10, size=48)


@pytest.mark.parametrize("backend", ["timm", "smp"])
def test_one_epoch_trains_predicts_and_scores(seg: ModuleType, root: Path, tmp_path: Path,
                                              backend: str) -> None:
    if backend == "smp" and not seg.smp_available():
        pytest.skip("segmentation_models_pytorch is not installed (the downstream extra)")
    cfg = seg.SegConfig(encoder="test_resnet", image_size=32, epochs=1, batch_size=4,
                        backend=backend)
    result = seg.run(cfg, root, "gt", tmp_path / "out", train_split="train", val_split="val")
    val = (root / "ImageSets/Segmentation/val.txt").read_text().split()
    for i in val:  # predictions at the image's own size, class values only
        pred = png(tmp_path / "out" / "pred" / f"{i}.png")
        assert pred.shape == (48, 48) and set(np.unique(pred)) <= {0, 1}
    miou, _ = reference_scores(tmp_path / "out" / "pred", root / "SegmentationClass", val, 2)
    assert result.miou == pytest.approx(miou, abs=1e-9)
    saved = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert saved["segmenter"]["backend"] == backend and saved["miou"] == pytest.approx(miou)


def test_ignored_pixels_stay_ignored_and_carry_no_loss(seg: ModuleType, tmp_path: Path,
                                                       root: Path) -> None:
    mask = np.full((48, 48), 255, np.uint8)
    mask[:24] = 1
    write_mask(tmp_path / "m.png", mask)
    image = sorted((root / "JPEGImages").iterdir())[0]
    ds = seg.MaskFolderDataset([image], [tmp_path / "m.png"], 32, train=False)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and y.dtype == torch.int64
    assert set(torch.unique(y).tolist()) == {1, 255}  # nearest resize: no new values
    assert (y[:16] == 1).all() and (y[16:] == 255).all()
    # the loss the script uses equals plain CE over the non-ignored pixels only
    logits = torch.randn(1, 2, 32, 32)
    loss = torch.nn.CrossEntropyLoss(ignore_index=255)(logits, y[None])
    keep = y != 255
    ref = torch.nn.functional.cross_entropy(logits[0].permute(1, 2, 0)[keep], y[keep])
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_encoder_weights_are_loaded_into_the_encoder(seg: ModuleType, tmp_path: Path) -> None:
    import timm

    donor = timm.create_model("test_resnet", pretrained=False)
    torch.save(donor.state_dict(), tmp_path / "w.pth")
    cfg = seg.SegConfig(encoder="test_resnet", encoder_weights=str(tmp_path / "w.pth"),
                        backend="timm")
    _, encoder, _ = seg.build_model(cfg, 2)
    for name, tensor in encoder.state_dict().items():
        torch.testing.assert_close(tensor, donor.state_dict()[name])
    shutil.copy(tmp_path / "w.pth", tmp_path / "bad.pth")
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(BadInputError, match="encoder tensors are not in the file"):
        seg.build_model(seg.SegConfig(encoder="test_resnet",
                                      encoder_weights=str(tmp_path / "bad.pth"),
                                      backend="timm"), 2)


def test_benchmark_splits_by_photo() -> None:
    bench = _load(REPO / "benchmarks" / "downstream.py", "bench_downstream")
    ids = [f"s5k_train_{p}_p{p:05d}_r{r}c{c}" for p in range(20) for r in range(2)
           for c in range(p % 3 + 1)]
    train, val = bench.split_by_photo(ids, 0.25, None, seed=0)
    assert sorted(train + val) == sorted(ids)
    assert not {bench.photo_of(i) for i in train} & {bench.photo_of(i) for i in val}
    assert len({bench.photo_of(i) for i in val}) == 5
    small, small_val = bench.split_by_photo(ids, 0.25, 10, seed=0)
    assert 10 <= len(small) + len(small_val) < 10 + 3  # whole photos up to the limit


def test_no_mask_is_one_line_and_exit_2(seg: ModuleType, root: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        seg.main([str(root), "--masks", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "run pseudolabel refine" in err[0]


def test_refuses_to_validate_on_training_images(seg: ModuleType, root: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = seg.SegConfig(encoder="test_resnet", image_size=32, epochs=1, batch_size=4,
                        backend="timm")
    with pytest.raises(BadInputError, match=r"the val split 'train' shares \d+ of its \d+ images "
                                            r"with the training split 'train'"):
        seg.run(cfg, root, "gt", tmp_path / "o", train_split="train", val_split="train")
    with pytest.raises(BadInputError, match="shares"):  # None: every image, train's among them
        seg.run(cfg, root, "gt", tmp_path / "o", train_split="train", val_split=None)
    assert not (tmp_path / "o").exists()  # refused before any training
    with caplog.at_level("WARNING"):
        seg.run(cfg, root, "gt", tmp_path / "o", train_split="train", val_split="train",
                allow_overlap=True)
    assert any("NOT a held-out score" in r.getMessage() for r in caplog.records)
    assert json.loads((tmp_path / "o" / "scores.json").read_text())["held_out"] is False
    # a root without split files has no val split: one line, exit 2 (not every image)
    bare = tmp_path / "bare"
    shutil.copytree(root, bare)
    shutil.rmtree(bare / "ImageSets")
    with pytest.raises(SystemExit) as exc:
        seg.main([str(bare), "--masks", "gt", "--out", str(tmp_path / "o2"),
                  "--encoder", "test_resnet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no split 'val': the root has no split files" in err[0]
