"""The plugin registry: names, clear errors, entry points from other packages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pseudolabel.errors import BadInputError
from pseudolabel.registry import Registry


def test_register_get_and_unknown_names() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and "a" in reg and reg.names() == ["a"]
    with pytest.raises(BadInputError, match=r"unknown widget 'b'.*use one of: a"):
        reg.get("b")
    with pytest.raises(ValueError):
        reg.register("a")(type("Other", (), {}))


def test_entry_points_of_another_package_are_found(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "otherpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("class Plugin:\n    pass\n")
    dist = tmp_path / "otherpkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: otherpkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pseudolabel.test_widgets]\nplug = otherpkg:Plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[type] = Registry("widget", "pseudolabel.test_widgets")
    assert "plug" in reg.names()
    assert reg.get("plug").__module__ == "otherpkg"
    sys.modules.pop("otherpkg", None)
