"""docs/troubleshooting.md against the code: its error format and examples are what the CLI
prints (rendered here through BadInputError.one_line and real commands), and every message its
tables list is a message the code can raise."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pseudolabel.cli.main import cli
from pseudolabel.data import make_demo_data
from pseudolabel.errors import BadInputError

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "troubleshooting.md").read_text(encoding="utf-8")


def _code_strings() -> list[str]:
    """Every string constant of the library and the CLI (f-strings: their literal parts)."""
    out = []
    for path in [*(REPO / "pseudolabel").rglob("*.py"), *(REPO / "cli").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append(node.value)
    return out


def _documented_messages() -> list[tuple[str, str]]:
    """(section, message) of every table row of the error sections: "…" is a variable part,
    *text in stars* a comment (left out)."""
    rows = []
    section = ""
    for line in DOC.splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif (line.startswith("| ") and not line.startswith("| ---")
              and not line.startswith("| message") and not section.startswith("Not errors")):
            message = re.sub(r"\*[^*]*\*", "", line.split(" | ")[0].removeprefix("| "))
            rows += [(section, m.strip()) for m in message.split(" / ")]
    return rows


def test_the_format_line_is_the_one_the_cli_prints() -> None:
    line = "error: " + BadInputError("<what is wrong>", path="<the file>",
                                     fix="<what to do>").one_line()
    assert f"    {line}\n" in DOC
    assert "error: " + BadInputError("<what is wrong>", fix="<what to do>").one_line() in DOC


def test_the_examples_are_what_the_commands_print(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_demo_data("data", n_images=6, size=32)
    examples = re.findall(r"^    \$ (pseudolabel .+)\n    (error: .+)$", DOC, re.M)
    assert len(examples) >= 2
    for command, printed in examples:
        result = CliRunner().invoke(cli, command.split()[1:])
        assert result.exit_code == 2, (command, result.output)
        assert result.output.strip().splitlines()[-1] == printed, command


@pytest.mark.parametrize(("section", "message"), _documented_messages())
def test_each_documented_message_is_in_the_code(section: str, message: str) -> None:
    strings = _code_strings_cached()
    pieces = [p.strip(" .`'") for p in re.split(r"…", message.replace("`", ""))]
    pieces = [p for p in pieces if len(p) >= 4]
    assert pieces, message
    for piece in pieces:
        assert any(piece in s for s in strings), (
            f"docs/troubleshooting.md ({section}) lists {message!r}, but no message of the code "
            f"holds {piece!r}")


_CACHE: list[list[str]] = []


def _code_strings_cached() -> list[str]:
    if not _CACHE:
        _CACHE.append(_code_strings())
    return _CACHE[0]
