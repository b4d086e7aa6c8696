"""``python -m pseudolabel`` from any folder, including the one that holds a clone named
``pseudolabel`` (a folder on sys.path that Python would take for a namespace package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pseudolabel import __version__


@pytest.mark.parametrize("shadow", [False, True])
def test_python_m_pseudolabel_from_any_folder(tmp_path: Path, shadow: bool) -> None:
    if shadow:  # what a clone looks like from the folder above it: no __init__.py at its top
        (tmp_path / "pseudolabel" / "cli").mkdir(parents=True)
        (tmp_path / "pseudolabel" / "README.md").write_text("a clone\n")
    for args in (["--version"], ["demo-data", "--help"]):
        done = subprocess.run([sys.executable, "-m", "pseudolabel", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert __version__ in subprocess.run(
        [sys.executable, "-m", "pseudolabel", "--version"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120).stdout
