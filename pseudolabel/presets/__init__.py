"""Named pipeline configurations shipped with the package (hloc's ``confs``, as YAML files).

Each ``<name>.yaml`` here is a :class:`~pseudolabel.pipeline.PipelineConfig` written as a
mapping (``train:``, ``cams:``, ``refine:``, ``compare:``, ``evaluate:``, ``report:``); its
comment block says what it is for and what it measured. ``pseudolabel run --preset NAME`` starts
from one; ``--config FILE`` (the same keys) and the command's options change it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pseudolabel.config import load_config_file
from pseudolabel.errors import BadInputError

#: The preset ``pseudolabel run`` uses when none is named: the recommended one.
DEFAULT = "best"


def names() -> list[str]:
    """The names of the shipped presets, sorted."""
    folder = resources.files(__name__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; a BadInputError naming the known ones otherwise."""
    if name not in names():
        raise BadInputError(f"unknown preset {name!r}",
                            fix=f"choose one of: {', '.join(names())}")
    return Path(str(resources.files(__name__) / f"{name}.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The preset ``name`` as a nested mapping (what :func:`pipeline.pipeline_config` merges)."""
    return load_config_file(preset_path(name))


def describe(name: str) -> str:
    """The comment block at the top of the preset's file, without the ``#`` marks."""
    lines = []
    for line in preset_path(name).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return "\n".join(lines).strip()
