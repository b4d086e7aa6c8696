"""Command-line options built from the config dataclasses, and the ``--config FILE`` loader.

One config language: a command's options and its config keys are the same names.

* :func:`dataclass_options` adds one option per field of a frozen config dataclass: ``--name``
  for field ``name`` (``_`` -> ``-``); a nested dataclass field's fields as ``--section.name``
  (``--augment.crop-ratio``); a bool as ``--name/--no-name``; a ``Literal`` as a choice; a tuple as
  a comma list (``--scales 1,0.5``), or a repeatable option (field metadata ``multiple``). The
  help text, the default shown and the checks all come from the field (``pseudolabel.config``).
  Every option defaults to "not given" (None), so the dataclass holds each default once.
* :func:`config_from_params` turns the parsed options back into the dataclass; a value the
  dataclass refuses is one line naming the option (``--lr``) or the config file and its key.
* :func:`config_option` adds ``--config FILE.yaml``: the file's keys (option names with ``_`` or
  ``-``, nested sections as mappings or ``section.name``) become the command's defaults, so an
  option given on the command line wins over the file, and the file over the built-in default.
  Every config a stage saves is written in this language, so ``--config SAVED`` replays a run.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from pseudolabel.config import InvalidValue, from_dict, load_config_file, split_list
from pseudolabel.errors import BadInputError

F = Callable[..., Any]
_SEP = "__"  # nested fields: --augment.crop-ratio is the parameter augment__crop_ratio
_CONFIG_FILE = "pseudolabel.config_file"
_RECORDED = "pseudolabel.recorded"


class CommaList(click.ParamType):
    """``a,b,c`` on the command line, or a list in a --config file; kept as a tuple of items.

    Items stay as given (strings on the command line); the dataclass coerces and checks them.
    """

    name = "list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> tuple[Any, ...]:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        if isinstance(value, Mapping):
            self.fail(f"expected a comma-separated list, got {value!r}", param, ctx)
        return tuple(split_list(value))


class PathType(click.Path):
    """``click.Path`` whose refusals are the project's one line (exit 2, no usage text):
    ``error: PATH: --opt is a folder, not a file; fix: ...``. Use it for every path option."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            path = os.fsdecode(value)
            label = param_label(param)
            if not self.file_okay and os.path.exists(path) and not os.path.isdir(path):
                what, fix = "is a file, not a folder", f"give a folder as {label}"
            elif not self.dir_okay and os.path.isdir(path):
                what, fix = "is a folder, not a file", f"give a file path as {label}"
            else:
                what, fix = exc.format_message().rstrip("."), f"check {label}"
            raise BadInputError(f"{label} {what}", path=path, fix=fix) from None


def param_label(param: click.Parameter | None, default: str = "the path") -> str:
    """How a parameter is named to the user: ``--out`` for an option, ``OUT`` for an argument."""
    if isinstance(param, click.Option) and param.opts:
        return param.opts[0]
    if param is not None and param.name:
        return param.human_readable_name
    return default


class RegistryName(click.ParamType):
    """A name of a plugin registry (CAM methods, alignment losses).

    The registry lives in a module that imports torch, so it is only looked up when a command
    runs (the stage's lookup names the valid choices), never to build ``--help``.
    """

    name = "name"

    def __init__(self, where: str) -> None:
        self.where = where

    def names(self) -> list[str]:
        """The registered names (imports the registry's module)."""
        module, _, attr = self.where.partition(":")
        return list(getattr(importlib.import_module(module), attr).names())

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str
                       ) -> list[Any]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(n) for n in self.names() if n.startswith(incomplete)]


class FieldOption(click.Option):
    """An option that stands for the dataclass field ``key`` (dotted when nested).

    ``aliases``: other config-file keys accepted for it (e.g. ``refiner`` for ``refiners``).
    """

    def __init__(self, *args: Any, key: str, aliases: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key
        self.aliases = tuple(aliases)


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _param_type(tp: Any, meta: Mapping[str, Any]) -> click.ParamType:
    tp = _strip_optional(tp)
    origin = typing.get_origin(tp)
    if meta.get("registry"):
        return RegistryName(meta["registry"])
    if meta.get("multiple"):
        return click.STRING
    if origin is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(tp)])
    if origin in (tuple, list):
        return CommaList()
    if tp is int:
        return click.INT
    if tp is float:
        return click.FLOAT
    if tp is Path:
        return click.Path()
    return click.STRING


def _shown(default: Any) -> str | None:
    """The default as the help shows it (None: not shown)."""
    if default is None:
        return None
    if isinstance(default, (tuple, list)):
        return ",".join(map(str, default))
    return str(default)


def _with_default(help_text: str, shown: str | None) -> str:
    return f"{help_text}  [default: {shown}]" if shown not in (None, "") else help_text


def _options_for(cls: type, prefix: str, exclude: Sequence[str]) -> list[click.Option]:
    hints = typing.get_type_hints(cls)
    options: list[click.Option] = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if f.name in exclude or meta.get("cli") is False:
            continue
        key = f"{prefix}{f.name}"
        tp = _strip_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if dataclasses.is_dataclass(tp):
            options += _options_for(tp, f"{key}.", ())
            continue
        flag = meta.get("option") or "--" + key.replace("_", "-")
        param = key.replace(".", _SEP)
        help_text = meta.get("help", "")
        common = {"key": key, "aliases": [f"{prefix}{a}" for a in meta.get("aliases", ())],
                  "default": None,
                  "help": help_text}
        if tp is bool:
            shown = None if default is None else ("on" if default else "off")
            common["help"] = _with_default(help_text, shown)
            options.append(FieldOption([f"{flag}/--no-{flag[2:]}", param], **common))
            continue
        common["help"] = _with_default(help_text, _shown(default))
        options.append(FieldOption(
            [flag, param], type=_param_type(hints[f.name], meta),
            multiple=bool(meta.get("multiple")), metavar=meta.get("metavar"), **common))
    return options


def dataclass_options(cls: type, *, prefix: str = "", exclude: Sequence[str] = ()
                      ) -> Callable[[F], F]:
    """A decorator adding one click option per field of the config dataclass ``cls``.

    ``prefix`` (e.g. ``"refine."``) puts every option of ``cls`` under a section, for commands
    that take several configs; ``exclude`` leaves fields out (the command sets them itself).
    """

    def decorator(f: F) -> F:
        # click collects a decorated function's options in __click_params__, last one first
        params = f.__dict__.setdefault("__click_params__", [])
        params.extend(reversed(_options_for(cls, prefix, exclude)))
        return f

    return decorator


def _given(name: str, value: Any) -> bool:
    """Whether option ``name`` was given (command line, environment, config file)."""
    if value is None:
        return False
    if value != ():  # an empty tuple: a repeatable option not given, or an empty list given
        return True
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source not in (None, ParameterSource.DEFAULT)


def _nested_values(cls: type, params: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The options that were given, as the (nested) mapping ``from_dict`` takes."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp = _strip_optional(hints[f.name])
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            inner = _nested_values(tp, params, f"{key}.")
            if inner:
                values[f.name] = inner
            continue
        name = key.replace(".", _SEP)
        value = params.get(name)
        if _given(name, value):
            values[f.name] = value
    return values


def _option_label(ctx: click.Context | None, key: str) -> tuple[str, Path | None]:
    """How to name config key ``key`` to the user: ``--opt``, or the config file's key."""
    if ctx is not None:
        for param in ctx.command.params:
            if isinstance(param, FieldOption) and param.key == key:
                source = ctx.get_parameter_source(param.name or "")
                if source is ParameterSource.DEFAULT_MAP and ctx.meta.get(_CONFIG_FILE):
                    return key, Path(ctx.meta[_CONFIG_FILE])
                return param.opts[0], None
    return key, None


def option_error(exc: BadInputError, key: str) -> BadInputError:
    """``exc``, raised for config key ``key``, naming the option or the config file it came
    from (for values a stage checks itself, e.g. the refiner specs)."""
    label, path = _option_label(click.get_current_context(silent=True), key)
    if isinstance(exc, InvalidValue):
        return exc.located(label=f"{label}: {exc.where}: {'.'.join(exc.keys)}" if exc.where
                           else label, path=path)
    return BadInputError(f"{label}: {exc.message}", path=path or exc.path, fix=exc.fix)


def config_from_params(cls: type, params: Mapping[str, Any], *, prefix: str = "",
                       where: str | None = None, **fixed: Any) -> Any:
    """The config dataclass ``cls`` from a command's parsed options (those not given: default).

    ``fixed`` sets fields the command decides itself. A refused value is a
    :class:`BadInputError` naming the option, or the config file and key it came from.
    """
    values = {**_nested_values(cls, params, prefix), **fixed}
    ctx = click.get_current_context(silent=True)
    try:
        return from_dict(cls, values, where=where)
    except InvalidValue as exc:
        label, path = _option_label(ctx, prefix + ".".join(exc.keys))
        raise exc.located(label=label, path=path) from None


def _flatten(data: Mapping[str, Any], sections: set[str], prefix: str = "") -> dict[str, Any]:
    """``{"augment": {"hflip": 1}}`` and ``{"augment.hflip": 1}`` -> ``{"augment.hflip": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = f"{prefix}{str(key).replace('-', '_')}"
        if isinstance(value, Mapping) and key in sections:
            out.update(_flatten(value, sections, f"{key}."))
        else:
            out[key] = value
    return out


def _config_keys(command: click.Command) -> dict[str, click.Parameter]:
    """Every config-file key of ``command`` -> its parameter."""
    keys: dict[str, click.Parameter] = {}
    for param in command.params:
        if not param.name or param.name == "config":
            continue
        key = param.key if isinstance(param, FieldOption) else param.name
        keys[key] = param
        for alias in getattr(param, "aliases", ()):
            keys[alias] = param
    return keys


def load_config_into(ctx: click.Context, path: str, *, recorded: Sequence[str] = ()) -> None:
    """Read the config file ``path`` into ``ctx.default_map`` (checked against the command).

    ``recorded``: keys a stage writes beside the options to record what a run was made from
    (make-cams: ``checkpoints``); not options: the command reads them with
    :func:`recorded_values` (make-cams warns when a checkpoint changed since).
    """
    data = load_config_file(path)
    keys = _config_keys(ctx.command)
    if isinstance(data.get("options"), Mapping) and "options" not in keys:
        data = dict(data["options"])  # a result file (evaluate/inspect --json) holds its options
    sections = {k.rsplit(".", 1)[0] for k in keys if "." in k}
    sections |= {s.rsplit(".", 1)[0] for s in list(sections) if "." in s}
    flat = _flatten(data, sections)
    for key in sorted(k for k in flat if k in sections and k not in keys):  # augment: 3
        inner = sorted({k[len(key) + 1:].split(".")[0] for k in keys if k.startswith(f"{key}.")})
        raise BadInputError(f"{key}: expected a mapping of {', '.join(inner)}, got "
                            f"{flat[key]!r}", path=path,
                            fix=f"write it as a mapping, e.g. '{key}: {{{inner[0]}: ...}}', or "
                                f"as '{key}.{inner[0]}: ...'")
    unknown = sorted(k for k in flat if k not in keys and k not in recorded)
    if unknown:
        raise BadInputError(
            f"unknown option(s) {', '.join(unknown)}", path=path,
            fix=f"valid keys are: {', '.join(sorted({k.split('.')[0] for k in keys}))}")
    defaults: dict[str, Any] = {}
    for key, value in flat.items():
        if key in recorded:
            continue
        param = keys[key]
        assert param.name is not None
        if param.name in defaults:
            raise BadInputError(f"{key!r} is given twice (under another name too)", path=path)
        if param.multiple and isinstance(value, str):
            value = [value]
        if isinstance(value, bool) and isinstance(
                param.type, (click.types.IntParamType, click.types.FloatParamType)):
            # YAML 1.1 reads yes/no/on/off as booleans; click would take True for 1
            raise BadInputError(f"{key}: expected a number, got {value!r}", path=path,
                                fix="write a number (yes/no/on/off are read as true/false)")
        if value is not None:
            try:
                param.type_cast_value(ctx, value)
            except click.BadParameter as exc:
                raise BadInputError(f"{key}: {exc.message}", path=path) from None
            except (TypeError, ValueError):
                raise BadInputError(f"{key}: {value!r} is not a valid value", path=path,
                                    fix=f"see pseudolabel {ctx.info_name} --help") from None
        defaults[param.name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_CONFIG_FILE] = path
    ctx.meta[_RECORDED] = {k: flat[k] for k in recorded if k in flat}


def recorded_values(ctx: click.Context | None = None) -> dict[str, Any]:
    """The recorded keys (``config_option(recorded=...)``) the ``--config`` file held."""
    ctx = ctx or click.get_current_context(silent=True)
    return dict(ctx.meta.get(_RECORDED, {})) if ctx is not None else {}


def config_option(f: F | None = None, *, recorded: Sequence[str] = ()) -> Any:
    """``--config FILE``: a YAML/JSON file of option values (command-line options win).

    Use as ``@config_option`` or ``@config_option(recorded=("checkpoints",))``.
    """

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            load_config_into(ctx, value, recorded=recorded)
        return value

    def decorator(fn: F) -> F:
        return click.option(
            "--config", "config", type=PathType(dir_okay=False), is_eager=True,
            expose_value=True, callback=callback,
            help="YAML or JSON file of option values (a config a run saved replays it); "
                 "options on the command line win.",
        )(fn)

    return decorator(f) if f is not None else decorator


def skip_bad_option(f: F) -> F:
    """``--skip-bad``: log unreadable or inconsistent inputs and go on without them."""
    return click.option(
        "--skip-bad", is_flag=True,
        help="Log bad images or label rows and go on without them (default: stop with an error).",
    )(f)


def device_option(f: F) -> F:
    """``--device``: cpu, cuda, cuda:N or auto."""
    return click.option(
        "--device", default="auto", show_default=True,
        help="cpu, cuda, cuda:N or auto (cuda when available).",
    )(f)


def dataset_options(f: F) -> F:
    """``--coco FILE --images DIR``: a COCO instances.json and its image folder as the data set
    of a command that reads one, instead of ROOT (:func:`data_source` joins them)."""
    f = click.option("--images", type=PathType(file_okay=False),
                     help="Image folder of --coco.")(f)
    return click.option("--coco", type=PathType(dir_okay=False),
                        help="COCO instances.json as the data set (instead of ROOT); needs "
                             "--images.")(f)


def data_source(root: str | None, coco: str | None, images: str | None) -> Any:
    """The :class:`~pseudolabel.data.source.DataSource` of ROOT or ``--coco``/``--images``
    (a BadInputError when both or neither are given)."""
    from pseudolabel.data.source import DataSource

    return DataSource(root=root, coco=coco, images=images)


__all__ = ["CommaList", "FieldOption", "RegistryName", "config_from_params", "config_option",
           "data_source", "dataclass_options", "dataset_options", "device_option",
           "load_config_into", "option_error", "skip_bad_option"]
