"""The refiner registry and the ``--refiner NAME:key=value,...`` parser.

Built-in refiners are the modules of this package (threshold, fusion, gmm, crf, ...): each
registers itself with ``@REFINERS.register(...)`` when imported, and
``pseudolabel.refine`` imports them all. Other packages add refiners through the entry-point
group ``pseudolabel.refiners`` without touching this one::

    [project.entry-points."pseudolabel.refiners"]
    mine = "my_package.refiners:MyRefiner"
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
import typing
from collections.abc import Sequence
from typing import Any

from pseudolabel.config import parse_spec
from pseudolabel.errors import BadInputError
from pseudolabel.refine.base import Refiner
from pseudolabel.registry import Registry

log = logging.getLogger(__name__)

REFINERS: Registry[type[Refiner]] = Registry("refiner", "pseudolabel.refiners")

# Modules of pseudolabel.refine that are not refiners.
_NOT_REFINERS = frozenset({"api", "base", "config", "mixture", "registry", "stage"})


def load_builtin_refiners() -> None:
    """Import every refiner module of this package so that each registers itself."""
    package = importlib.import_module("pseudolabel.refine")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in _NOT_REFINERS:
            continue
        try:
            importlib.import_module(f"pseudolabel.refine.{info.name}")
        except ImportError as exc:  # a missing optional dependency must not hide the others
            log.warning("could not import refiner module %r: %s", info.name, exc)


def create_refiner(spec: str | tuple[str, Any]) -> Refiner:
    """A configured refiner from ``"NAME:key=value,..."`` or ``(name, params mapping)``.

    Unknown names and options are a :class:`BadInputError` listing the valid ones.
    """
    if isinstance(spec, str):
        name, options = parse_spec(spec)
    else:
        name, options = spec
    cls = REFINERS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Refiner)):
        raise BadInputError(f"refiner {name!r} ({cls!r}) is not a Refiner subclass",
                            fix="check the plugin that registers it")
    return cls(options)


def create_chain(specs: Sequence[str]) -> list[Refiner]:
    """The refiners of ``specs`` in order (a chain may be empty: the CAM with ``1 - max``)."""
    return [create_refiner(s) for s in specs]


def _type_name(tp: Any) -> str:
    text = str(tp) if typing.get_origin(tp) else getattr(tp, "__name__", str(tp))
    return text.replace("typing.", "")


def describe_params(cls: type[Refiner]) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) of each parameter of a refiner class.

    The help text is the field's ``metadata["help"]`` when given.
    """
    hints = typing.get_type_hints(cls.Params)
    rows = []
    for f in dataclasses.fields(cls.Params):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows


def describe_refiners() -> str:
    """Every registered refiner with its one-line description, needs and parameters."""
    lines = []
    for name in REFINERS.names():
        cls = REFINERS.get(name)
        needs = ", ".join(sorted(getattr(cls, "needs", ()))) or "-"
        lines.append(f"{name}: {getattr(cls, 'description', '') or cls.__doc__ or ''}".strip())
        lines.append(f"    needs: {needs}")
        if not dataclasses.is_dataclass(getattr(cls, "Params", None)):
            continue
        for pname, ptype, default, help_text in describe_params(cls):
            text = f"    {pname}: {ptype} = {default!r}"
            lines.append(text + (f"  # {help_text}" if help_text else ""))
    return "\n".join(lines)


# Any use of the registry (create_chain, the refine stage, REFINERS) sees every built-in refiner;
# a refiner module imported first finds REFINERS defined above and registers itself.
load_builtin_refiners()
