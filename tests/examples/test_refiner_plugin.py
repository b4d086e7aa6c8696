"""examples/refiner_plugin: a separate package whose entry point adds the `border` refiner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pseudolabel.cli.main import cli
from pseudolabel.refine.stage import RefineConfig
from pseudolabel.refine.stage import run as refine
from pseudolabel.store import CamRecord, StoreHeader, write_store

from .helpers import EXAMPLES, png, run_example
from cli_helpers import assert_one_line_error

pytestmark = pytest.mark.slow
SIZE = (20, 24)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin pip-installed (no network, no dependencies) into a folder of its own."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(EXAMPLES / "refiner_plugin", src)  # pip writes build files into the source
    target = tmp / "site"
    run_example([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                 "--no-index", "--quiet", "--target", str(target), str(src)])
    assert list(target.glob("pseudolabel_example_refiner-*.dist-info"))
    return target


def _cams(tmp_path: Path) -> Path:
    """A store of two images with smooth random CAMs at stride 4."""
    rng = np.random.default_rng(0)
    header = StoreHeader({}, ("smoke",), ("student",), ("features",), (1.0,), {"features": 4})
    records = [CamRecord(f"im{i}", SIZE, np.ones(1, np.uint8), np.zeros(1, np.int64),
                         np.full(1, 0.9, np.float32),
                         {"student/features": rng.random((1, 5, 6)).astype(np.float32)})
               for i in range(2)]
    return write_store(tmp_path / "cams.h5", header, records)


def _pseudolabel(args: list[str], plugin: Path | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PSEUDOLABEL_NO_PROGRESS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin) if plugin else "",
                                                    env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "pseudolabel", *args], env=env,
                          capture_output=True, text=True, check=False, timeout=120)


def test_list_shows_the_plugin_only_when_installed(plugin_path: Path) -> None:
    with_plugin = _pseudolabel(["refine", "--list"], plugin_path)
    assert with_plugin.returncode == 0, with_plugin.stderr
    assert "border: ignore (255) a band" in with_plugin.stdout
    assert "width: int = 4" in with_plugin.stdout
    assert "threshold" in with_plugin.stdout  # the built-ins are still there
    without = CliRunner().invoke(cli, ["refine", "--list"])  # this process: no plugin
    assert without.exit_code == 0 and "border" not in without.output


def test_refine_uses_the_plugin(plugin_path: Path, tmp_path: Path) -> None:
    cams = _cams(tmp_path)
    refine(RefineConfig(refiners=("threshold:t=0.5",)), cams, tmp_path / "plain")
    res = _pseudolabel(["refine", str(cams), "--out", str(tmp_path / "border"),
                        "--refiner", "threshold:t=0.5", "--refiner", "border:width=3"],
                       plugin_path)
    assert res.returncode == 0, res.stderr
    band = np.ones(SIZE, bool)
    band[3:-3, 3:-3] = False
    for i in ("im0", "im1"):
        ref, got = png(tmp_path / "plain" / f"{i}.png"), png(tmp_path / "border" / f"{i}.png")
        assert (got[band] == 255).all()
        np.testing.assert_array_equal(got[~band], ref[~band])
        assert set(np.unique(ref[~band])) == {0, 1}  # the check is not vacuous
    assert "border:width=3" in (tmp_path / "border" / "refine.yaml").read_text()


def test_without_the_plugin_the_name_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["refine", str(_cams(tmp_path)), "--out", str(tmp_path / "m"),
                                   "--refiner", "border"])
    assert_one_line_error(res, "unknown refiner 'border'")
