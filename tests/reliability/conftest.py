"""Shared, session-scoped inputs of the reliability tests (made once, in this process).

``rel_root``   a 12-image, 48 px synthetic smoke data set (read-only: copy before changing)
``rel_run``    RUN_DIR of one tiny training run on it (test_resnet, 32 px, 1 epoch)
``rel_cams``   CAMS.h5 made from ``rel_run`` on ``rel_root``
``rel_masks``  MASK_DIR refined from ``rel_cams`` (threshold)
``specs``      the harness StageSpecs of train / make-cams / refine on these inputs
``references`` stage -> output of an uninterrupted run of that spec (in this process)
``cli_run``    run the CLI in this process: ``cli_run(*args) -> click Result``
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from harness import (
    TINY_CAMS,
    TINY_TRAIN,
    StageSpec,
    in_process_runner,
    invoke,
    leftovers,
    standard_specs,
)


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


@pytest.fixture(scope="session")
def rel_masks(rel_cams: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("relmasks") / "masks"
    result = invoke("refine", rel_cams, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def specs(rel_root: Path, rel_run: Path, rel_cams: Path) -> dict[str, StageSpec]:
    return standard_specs(rel_root, rel_run, rel_cams)


@pytest.fixture(scope="session")
def references(specs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    refs = {}
    for name, spec in specs.items():
        args, out = spec.build(tmp_path_factory.mktemp(f"ref-{name}"))
        status, text = in_process_runner(args)
        assert status == 0, text
        assert not leftovers(out.parent)
        refs[name] = out
    return refs
