"""Training from random weights says so once, with the fix (issue 15: users of smp / mmseg
expect ImageNet weights or a loud hint)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from pseudolabel.models import create_classifier
from pseudolabel.train import TrainConfig, run
from pseudolabel.train.stage import warn_if_from_scratch

TINY = dict(student="test_resnet", teacher="test_vit", image_size=32, batch_size=4,
            num_workers=0, device="cpu", epochs=2, val_fraction=0.0)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and "random weights" in r.getMessage()]


@pytest.mark.parametrize(("options", "roles"), [
    ({}, ["student"]),
    ({"mode": "teacher-student"}, ["student", "teacher"]),
    ({"mode": "teacher-student", "student_weights": "s.pth"}, ["teacher"]),
    ({"mode": "teacher-student", "student_weights": "s.pth", "teacher_weights": "t.pth"}, []),
    ({"mode": "teacher-student", "student_weights": "s.pth", "teacher_checkpoint": "t.pt"}, []),
])
def test_which_models_start_from_scratch(options: dict, roles: list[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_from_scratch(TrainConfig(**{**TINY, **options}))
    found = _warnings(caplog)
    assert len(found) == (1 if roles else 0), found
    for role in roles:
        assert f"--{role}-weights FILE" in found[0] and "docs/weights.md" in found[0]


def test_a_run_warns_once_and_not_with_weights_or_on_resume(toy_root: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    with caplog.at_level(logging.WARNING):
        run(TrainConfig(**TINY), toy_root, tmp_path / "scratch")  # two epochs: one warning
    assert len(_warnings(caplog)) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run(TrainConfig(**{**TINY, "epochs": 3}), toy_root, tmp_path / "scratch")  # resumes
    assert _warnings(caplog) == []
    weights = tmp_path / "w.pth"
    torch.save(create_classifier("test_resnet", ("red", "blue")).backbone.state_dict(), weights)
    with caplog.at_level(logging.WARNING):
        run(TrainConfig(**{**TINY, "student_weights": weights}), toy_root, tmp_path / "pre")
    assert _warnings(caplog) == []
