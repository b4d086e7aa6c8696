"""Paths click refuses (a file where a folder is expected, a folder where a file is) are the
project's one line, exit 2, naming the path, the option and the fix - not click's usage text."""

from __future__ import annotations

import importlib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pseudolabel.cli.main import COMMANDS, cli
from pseudolabel.cli.options import PathType

from cli_helpers import assert_one_line_error

CASES = [
    (["make-cams", "data", "--model", "run", "--out", "."], ".", "--out", "a folder, not a file"),
    (["make-cams", "data", "--model", "run", "--out", "/"], "/", "--out", "a folder, not a file"),
    (["train", "data", "--out", "afile"], "afile", "--out", "a file, not a folder"),
    (["refine", "x.h5", "--out", "afile"], "afile", "--out", "a file, not a folder"),
    (["evaluate", "masks", "--gt", "data", "--json", "."], ".", "--json", "a folder, not a file"),
    (["report", "masks", "--out", "folder"], "folder", "--out", "a folder, not a file"),
    (["demo-data", "afile"], "afile", "OUT", "a file, not a folder"),
    (["train", "afile", "--out", "run"], "afile", "ROOT", "a file, not a folder"),
]


@pytest.mark.parametrize(("args", "path", "label", "what"), CASES,
                         ids=[" ".join(c[0]) for c in CASES])
def test_a_refused_path_is_one_line(args: list[str], path: str, label: str, what: str,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    result = CliRunner().invoke(cli, args)
    line = assert_one_line_error(result, f"error: {path}: {label} is {what}", "fix: give a")
    assert label in line.split("fix:")[1]
    assert "Usage:" not in result.output


# G's commands (cli/run.py, cli/demo.py) still use click.Path: listed until they switch
NOT_YET: set[str] = set()


def test_every_path_parameter_uses_the_one_line_type() -> None:
    plain = []
    for name, (module, _) in COMMANDS.items():
        if name in NOT_YET:
            continue
        command = importlib.import_module(f"pseudolabel.cli.{module}").command
        plain += [f"{name} {p.name}" for p in command.params
                  if isinstance(p.type, click.Path) and not isinstance(p.type, PathType)
                  and (not p.type.file_okay or not p.type.dir_okay)]
    assert not plain, f"use cli.options.PathType for: {plain}"
