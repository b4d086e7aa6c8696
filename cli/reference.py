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
             "file and the fix), 1 on an internal error.", "",
             "## One config language", "",
             "- A command's options and its config keys are the same names: `--chunk-size` is "
             "`chunk_size:` (or `chunk-size:`) in a `--config FILE.yaml`; positional arguments "
             "too (`cams:`, `root:`). An option on the command line wins over the file, the file "
             "over the default.",
             "- Nested settings take a dot: `--augment.crop-ratio 0.5,2` is `augment: "
             "{crop_ratio: [0.5, 2]}` (or `augment.crop_ratio:`) in a file.",
             "- Lists are comma-separated on the command line (`--scales 1,0.5`; empty items are "
             "dropped, so `1,,2` is `1,2`, and a list left empty is refused where the option "
             "needs a value) and YAML lists in a file; a repeatable option (`--refiner`) is a list under its own name "
             "(`refiner:`) or its field's (`refiners:`).",
             "- Every value is checked once, by the config's field (finite, in range, not "
             "empty): a bad one is exit 2 naming the option, or the config file and its key.",
             "- Every stage saves its options in this language beside its output, and "
             "`--config SAVED` replays the run (give a new --out): RUN_DIR/config.yaml, "
             "CAMS.h5.config.yaml, MASK_DIR/refine.yaml, evaluate's --json "
             "(its `options:`), REPORT.html.yaml, OUT/export.yaml, AFF_DIR/config.yaml, "
             "ROOT/demo-data.yaml. Keys that record what a run was made from rather than an "
             "option (make-cams' `checkpoints`, sha256 of each model) are accepted and not used.",
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

