"""Fixtures shared by every test folder.

``demo_root``       a small synthetic smoke data set (24 images of 64 px, made once per session);
                    read-only: copy it (``shutil.copytree``) before changing anything in it.
``tiny_voc_root``   a factory ``tiny_voc_root(**options) -> Path`` writing a hand-made VOC root
                    with known labels and masks under the test's tmp_path (see ``write_voc_root``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("PSEUDOLABEL_NO_PROGRESS", "1")

from tiny_roots import DEFAULT_LABELS, tiny_mask, write_voc_root  # noqa: F401 (re-exported)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic smoke data set: 24 images of 64 px (do not modify: it is shared)."""
    from pseudolabel.data.demo import make_demo_data

    return make_demo_data(tmp_path_factory.mktemp("demo") / "data", n_images=24, size=64, seed=0)


@pytest.fixture
def tiny_voc_root(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``tiny_voc_root(**write_voc_root options) -> Path`` (a new root per call)."""
    counter = itertools.count()

    def make(**options: object) -> Path:
        return write_voc_root(tmp_path / f"voc{next(counter)}", **options)  # type: ignore[arg-type]

    return make
