"""Generate docs/cli.md from the click commands (``python -m pseudolabel.cli.reference``).

tests/core/test_cli_reference.py fails when docs/cli.md is out of date with the code.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from pseudolabel.cli.main import COMMANDS


def _command_markdown(name: str, cmd: click.Command) -> str:
    ctx = click.Context(cmd, info_name=f"pseudolabel {name}")
    lines = [f"## `pseudolabel {name}`", ""]
    help_text = (cmd.help or "").replace("\b\n", "").strip()
    if help_text:
        lines += [help_text, ""]
    lines += ["```", cmd.get_usage(ctx).strip(), "```", ""]
    rows = []
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or isinstance(param, click.Argument):
            continue
        opts, text = record
        rows.append(f"| `{opts}` | {text.replace('|', '/').strip()} |")
    if rows:
        lines += ["| option | meaning |", "| --- | --- |", *rows, ""]
    return "\n".join(lines)


def generate() -> str:
    """The whole CLI reference as markdown."""
    parts = ["# CLI reference", "",
             "Generated from the code by `python -m pseudolabel.cli.reference > docs/cli.md`.",
             "Every command exits 0 on success, 2 on bad input or usage (one line naming the "
             "file and the fix), 1 on an internal error; `--config FILE.yaml` sets any option.",
             ""]
    for name, (module, _) in COMMANDS.items():
        if importlib.util.find_spec(f"pseudolabel.cli.{module}") is None:
            continue
        cmd = importlib.import_module(f"pseudolabel.cli.{module}").command
        parts.append(_command_markdown(name, cmd))
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()

