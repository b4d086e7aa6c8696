"""setup.cfg lists every sub-package, and cli/ is installed as pseudolabel.cli only."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_setup_cfg() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "pseudolabel").rglob("__init__.py")}
    found.add("pseudolabel.cli")
    assert found <= listed, f"add to setup.cfg [options] packages: {sorted(found - listed)}"
    assert "cli" not in listed


def test_cli_is_importable_only_under_pseudolabel() -> None:
    import importlib.util

    spec = importlib.util.find_spec("pseudolabel.cli.main")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).parent.name == "cli"
