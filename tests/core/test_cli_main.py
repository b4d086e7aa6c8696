"""The command group: lazy loading, help without torch, the exit-2 boundary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from pseudolabel.cli.main import COMMANDS, cli

from cli_helpers import assert_one_line_error


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from pseudolabel.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
            "assert 'timm' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Commands" in out.stdout


def test_every_command_module_exposes_a_click_command() -> None:
    import importlib.util

    for name, (module, _) in COMMANDS.items():
        if importlib.util.find_spec(f"pseudolabel.cli.{module}") is None:
            continue
        cmd = importlib.import_module(f"pseudolabel.cli.{module}").command
        assert isinstance(cmd, click.Command), name
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["nonsense"])
    assert result.exit_code == 2


def test_bad_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("no_such_option: 1\n")
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path), "--config", str(bad)])
    assert_one_line_error(result, "c.yaml")
