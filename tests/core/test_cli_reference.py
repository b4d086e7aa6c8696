"""docs/cli.md is generated from the click commands and must match them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pseudolabel.cli.reference import generate

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_in_sync_with_the_code() -> None:
    # a fresh process: other tests register plugin refiners that would show up in the help
    fresh = subprocess.run([sys.executable, "-m", "pseudolabel.cli.reference"],
                           capture_output=True, text=True, check=True).stdout
    assert DOC.is_file(), "run: python -m pseudolabel.cli.reference > docs/cli.md"
    assert DOC.read_text() == fresh, (
        "docs/cli.md is out of date: python -m pseudolabel.cli.reference > docs/cli.md")


def test_reference_lists_the_contract_options() -> None:
    text = generate()
    for needle in ("## `pseudolabel export`", "--images", "--config"):
        assert needle in text


def test_the_comma_list_rule_is_what_split_list_does() -> None:
    from pseudolabel.config import split_list

    assert "`1,,2` is `1,2`" in generate()
    assert split_list("1,,2") == split_list("1,2") == ["1", "2"]
    assert split_list(",") == []
