"""A diverged training (every option valid, e.g. ``--lr 1e8``) stops with one line instead of
writing NaN weights, and make-cams refuses a checkpoint whose weights are not finite."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from harness import TINY_CAMS, TINY_TRAIN, invoke

from cli_helpers import assert_one_line_error


def test_a_diverging_training_stops_with_one_line(rel_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("train", rel_root, "--out", out, *TINY_TRAIN, "--epochs", "2",
                    "--lr", "1e8", "--optimizer", "sgd", "--warmup-epochs", "0")
    line = assert_one_line_error(result, "not finite at epoch", "diverged", "--lr")
    assert str(out) in line
    # nothing of the diverged epoch was written: the last finite epoch's files are kept
    epoch = int(line.split("not finite at epoch ")[1].split()[0])
    assert epoch == 2  # with these options epoch 1 stays finite: its files must be there
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == epoch - 1
    weights = torch.load(out / "student.pt", weights_only=True)["state_dict"]
    assert all(bool(torch.isfinite(t).all()) for t in weights.values() if t.is_floating_point())


def test_the_check_names_the_loss_or_the_weights() -> None:
    import pytest

    from pseudolabel.errors import BadInputError
    from pseudolabel.models import create_classifier
    from pseudolabel.train.loop import Phase
    from pseudolabel.train.nets import TrainNet
    from pseudolabel.train.stage import check_not_diverged

    net = TrainNet(create_classifier("test_resnet", ("smoke",)))
    phase = Phase("student", ("student",), (), 3)
    check_not_diverged(0.7, {"student": net}, phase, 2, 1, Path("run"))  # finite: nothing
    with pytest.raises(BadInputError, match=r"the loss is not finite at epoch 2 \(student 2/3\)"):
        check_not_diverged(math.nan, {"student": net}, phase, 2, 1, Path("run"))
    with torch.no_grad():
        next(net.parameters()).fill_(math.inf)
    with pytest.raises(BadInputError, match="the student's weights are not finite") as info:
        check_not_diverged(0.7, {"student": net}, phase, 2, 1, Path("run"))
    assert "--lr" in (info.value.fix or "") and info.value.path == Path("run")


def test_make_cams_refuses_a_checkpoint_with_nan_weights(rel_root: Path, rel_run: Path,
                                                         tmp_path: Path) -> None:
    payload = torch.load(rel_run / "student.pt", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"] = {**payload["state_dict"],
                             name: torch.full_like(payload["state_dict"][name], math.nan)}
    ckpt = tmp_path / "student.pt"
    torch.save(payload, ckpt)
    out = tmp_path / "cams.h5"
    result = invoke("make-cams", rel_root, "--model", ckpt, "--out", out, *TINY_CAMS)
    assert_one_line_error(result, "student.pt", "not finite", name, "--lr")
    assert not out.exists()
