"""The ``pseudolabel`` command group.

Sub-commands are loaded lazily from ``pseudolabel.cli.<module>:command`` so that
``pseudolabel --help`` does not import torch. Errors a user can cause
(:class:`~pseudolabel.errors.BadInputError`) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from typing import Any

import click

from pseudolabel import __version__

# name -> (module under pseudolabel.cli, one-line help shown by `pseudolabel --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("inspect", "Classes, images per class, co-occurrence and label problems."),
    "train": ("train", "Train multi-label classifiers (single, teacher-student, co-training)."),
    "make-cams": ("make_cams", "Multi-layer, multi-scale CAMs into one HDF5 store."),
    "refine": ("refine", "Turn CAMs into palette PNG masks with a chain of refiners."),
    "train-affinity": ("train_affinity", "Learn pixel affinities from confident CAM regions."),
    "selftrain": ("selftrain", "Train a segmenter on the masks; its predictions are new masks."),
    "evaluate": ("evaluate", "Score masks against ground truth (mIoU, precision, recall)."),
    "report": ("report", "A self-contained HTML report of masks, CAMs and scores."),
    "export": ("export", "Hand masks over to mmsegmentation / segmentation_models_pytorch."),
    "demo-data": ("demo_data", "Make the built-in synthetic smoke data set."),
    "run": ("run", "Train, make-cams, refine, evaluate, report: the whole pipeline from a preset."),
    "demo": ("demo", "Run the whole pipeline on the built-in demo data."),
}


def _available(name: str) -> bool:
    module = COMMANDS[name][0]
    return importlib.util.find_spec(f"pseudolabel.cli.{module}") is not None


class LazyGroup(click.Group):
    """A group whose commands are imported only when invoked (or their own --help is asked)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module = importlib.import_module(f"pseudolabel.cli.{COMMANDS[cmd_name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from pseudolabel.errors import BadInputError, PseudolabelError

        try:
            return super().invoke(ctx)
        except BadInputError as exc:
            click.echo(f"error: {exc.one_line()}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: rerun the same command to resume where it stopped", err=True)
            ctx.exit(130)
        except PseudolabelError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # permission denied, read-only, disk full, ...: the path and a fix
            from pseudolabel.runtime import os_error

            bad = os_error(exc)
            if bad is None:
                raise
            click.echo(f"error: {bad.one_line()}", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pseudolabel")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """pseudolabel: pixel-level pseudo-masks from image-level labels.

    \b
    The pipeline:  train -> make-cams -> refine -> evaluate
    Try it:        pseudolabel demo ./demo-run
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    if verbose < 2:
        for noisy in ("timm", "PIL", "matplotlib", "h5py"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="pseudolabel")
    finally:
        # The command has finished or reported its stop: a Ctrl-C that lands while the
        # interpreter shuts down must not print a traceback from a library's finaliser.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
