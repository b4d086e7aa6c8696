"""Options shared by several commands: a config file feeding ``default_map``, ``--skip-bad``.

A command decorated with :func:`config_option` accepts ``--config FILE.yaml``; the file's keys
(option names with ``_`` or ``-``) become the command's defaults, so an option given on the
command line always wins over the file, and the file over the built-in default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from pseudolabel.config import load_config_file
    from pseudolabel.errors import BadInputError

    data = load_config_file(value)
    valid = {p.name for p in ctx.command.params if p.name}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise BadInputError(
            f"unknown option(s) {', '.join(unknown)}", path=value,
            fix=f"valid keys are: {', '.join(sorted(valid - {'config'}))}")
    ctx.default_map = {**(ctx.default_map or {}), **data}
    return value



def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE``: a YAML/JSON file of option values (command-line options win)."""
    return click.option(
        "--config", "config", type=click.Path(dir_okay=False), is_eager=True, expose_value=True,
        callback=_load_config,
        help="YAML or JSON file of option values; options on the command line win.",
    )(f)


def skip_bad_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--skip-bad``: log unreadable or inconsistent inputs and go on without them."""
    return click.option(
        "--skip-bad", is_flag=True,
        help="Log bad images or label rows and go on without them (default: stop with an error).",
    )(f)


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--device", default="auto", show_default=True,
        help="cpu, cuda, cuda:N or auto (cuda when available).",
    )(f)
