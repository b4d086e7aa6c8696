"""Shared, session-scoped inputs of the reliability tests (made once, in this process).

``rel_root``   a 12-image, 48 px synthetic smoke data set (read-only: copy before changing)
``rel_run``    RUN_DIR of one tiny training run on it (test_resnet, 32 px, 1 epoch)
``rel_cams``   CAMS.h5 made from ``rel_run`` on ``rel_root``
``cli_run``    run the CLI in this process: ``cli_run(*args) -> click Result``
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from harness import invoke

TINY_TRAIN = ["--student", "test_resnet", "--image-size", "32", "--batch-size", "4",
              "--epochs", "1", "--val-fraction", "0", "--num-workers", "0", "--device", "cpu"]
TINY_CAMS = ["--workers", "0", "--scales", "1.0", "--no-flip", "--device", "cpu"]


@pytest.fixture(scope="session")
def cli_run() -> Callable[..., Result]:
    return invoke


@pytest.fixture(scope="session")
def rel_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pseudolabel.data.demo import make_demo_data

    return make_demo_data(tmp_path_factory.mktemp("rel") / "data", n_images=12, size=48, seed=1)


@pytest.fixture(scope="session")
def rel_run(rel_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("relrun") / "run"
    result = invoke("train", rel_root, "--out", out, *TINY_TRAIN)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def rel_cams(rel_root: Path, rel_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("relcams") / "cams.h5"
    result = invoke("make-cams", rel_root, "--model", rel_run, "--out", out, *TINY_CAMS)
    assert result.exit_code == 0, result.output
    return out
