"""The segmenter's loss, the label rule and the encoder initialisation, against references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pseudolabel.errors import BadInputError
from pseudolabel.models import create_classifier, save_checkpoint
from pseudolabel.selftrain import FpnSegmenter, SelfTrainConfig, keep_classes, masked_cross_entropy
from pseudolabel.selftrain.stage import build_segmenter


def _numpy_ce(logits: np.ndarray, target: np.ndarray) -> float:
    """Mean of -log softmax(logits)[target] over the pixels whose target is not 255."""
    losses = []
    b, _, h, w = logits.shape
    for i in range(b):
        for y in range(h):
            for x in range(w):
                t = target[i, y, x]
                if t == 255:
                    continue
                z = logits[i, :, y, x].astype(np.float64)
                losses.append(np.log(np.exp(z - z.max()).sum()) + z.max() - z[t])
    return float(np.mean(losses)) if losses else 0.0


def test_loss_ignores_255_like_a_naive_reference() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
    target = rng.integers(0, 3, (2, 5, 6))
    target[rng.random((2, 5, 6)) < 0.4] = 255
    got = masked_cross_entropy(torch.from_numpy(logits), torch.from_numpy(target))
    assert got.item() == pytest.approx(_numpy_ce(logits, target), rel=1e-5)
    # the ignored pixels matter not at all: new logits there, the same loss
    changed = logits.copy()
    ignored = np.broadcast_to((target == 255)[:, None], logits.shape)
    changed[ignored] = rng.normal(size=int(ignored.sum())) * 10
    again = masked_cross_entropy(torch.from_numpy(changed), torch.from_numpy(target))
    assert again.item() == pytest.approx(got.item(), rel=1e-6)
    # counting the ignored pixels as background would give another number
    as_bg = np.where(target == 255, 0, target)
    assert _numpy_ce(logits, as_bg) != pytest.approx(got.item(), rel=1e-3)


def test_loss_of_a_batch_without_labelled_pixels_is_zero_with_a_gradient() -> None:
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((1, 4, 4), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_keep_classes_drops_the_classes_outside_the_labels() -> None:
    rng = np.random.default_rng(1)
    scores = torch.from_numpy(rng.random((3, 4, 5, 5)).astype(np.float32))
    labels = [(1,), (), (0, 2)]
    got = keep_classes(scores, labels).argmax(1).numpy()
    for b, classes in enumerate(labels):  # naive: the argmax over background + the labelled
        rows = [0, *(c + 1 for c in classes)]
        want = np.array(rows)[scores[b, rows].numpy().argmax(0)]
        np.testing.assert_array_equal(got[b], want)
    assert (got[1] == 0).all()  # an image without labels: all background
    assert set(np.unique(keep_classes(scores, [(0, 1, 2)] * 3).argmax(1))) > {0, 1}


def test_segmenter_shapes() -> None:
    model = FpnSegmenter("test_resnet", 3, normalize=True).eval()
    assert model(torch.rand(2, 3, 40, 48)).shape == (2, 3, 40, 48)


def test_init_run_loads_the_students_backbone(tmp_path: Path) -> None:
    classifier = create_classifier("test_resnet", ("cat", "dog"))
    with torch.no_grad():
        for p in classifier.parameters():
            p.add_(torch.randn_like(p))
    save_checkpoint(tmp_path / "run" / "student.pt", classifier)
    model, name = build_segmenter(SelfTrainConfig(), ("cat", "dog"), tmp_path / "run")
    assert name == "test_resnet"
    backbone = classifier.backbone.state_dict()
    for key, tensor in model.encoder.state_dict().items():
        torch.testing.assert_close(tensor, backbone[key])
    with pytest.raises(BadInputError, match="class list differs"):
        build_segmenter(SelfTrainConfig(), ("cat", "bird"), tmp_path / "run")
    with pytest.raises(BadInputError, match="--init run loads 'test_resnet'"):
        build_segmenter(SelfTrainConfig(encoder="resnet18"), ("cat", "dog"), tmp_path / "run")
    with pytest.raises(BadInputError, match="no RUN_DIR"):
        build_segmenter(SelfTrainConfig(), ("cat", "dog"), None)


def test_init_file_loads_timm_weights_and_refuses_a_misfit(tmp_path: Path) -> None:
    import timm

    donor = timm.create_model("test_resnet", pretrained=False)
    torch.save(donor.state_dict(), tmp_path / "w.pth")
    model, _ = build_segmenter(SelfTrainConfig(encoder="test_resnet",
                                               init=str(tmp_path / "w.pth")), ("a",), None)
    for key, tensor in model.encoder.state_dict().items():
        torch.testing.assert_close(tensor, donor.state_dict()[key])
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(BadInputError, match="encoder tensors are not in the file"):
        build_segmenter(SelfTrainConfig(encoder="test_resnet", init=str(tmp_path / "bad.pth")),
                        ("a",), None)
