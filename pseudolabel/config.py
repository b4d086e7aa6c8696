"""Configuration: frozen dataclasses hold each component's defaults once.

A stage's config is a frozen dataclass (possibly nesting others). It is built from defaults,
then a YAML/JSON file, then command-line overrides, with :func:`from_dict`, and the resolved
result is written beside every output with :func:`save_config`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pseudolabel.errors import BadInputError

C = TypeVar("C")


def to_dict(cfg: Any) -> Any:
    """A dataclass (nested ones, tuples, paths included) as plain JSON/YAML-able data."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert ``value`` (from YAML or the CLI) to the annotated type ``tp`` where it is simple."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return _coerce(arg, value, where)
            except (BadInputError, TypeError, ValueError) as exc:
                errors.append(exc)
        raise BadInputError(f"{where}: cannot read {value!r} as {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise BadInputError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        item = args[0] if args else Any
        items = [_coerce(item, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise BadInputError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise BadInputError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise BadInputError(f"{where}: expected a number, got {value!r}") from None
        if tp is int and isinstance(value, float) and out != value:
            raise BadInputError(f"{where}: expected an integer, got {value!r}")
        return out
    if tp is str:
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def from_dict(cls: type[C], data: Mapping[str, Any] | C | None, *, where: str = "config") -> C:
    """Build the frozen dataclass ``cls`` from a mapping; unknown keys are a clear error.

    Missing keys keep the dataclass defaults; values are coerced to the annotated types
    (lists to tuples, "0.5,1" to (0.5, 1.0), "true" to True, nested dicts to nested dataclasses).
    """
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise BadInputError(f"{where}: expected a mapping of options, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadInputError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}",
            fix=f"valid options are: {', '.join(fields)}",
        )
    kwargs = {
        k.replace("-", "_"): _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()
    }
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{where}: {exc}") from None
    return obj


def replace(cfg: C, **overrides: Any) -> C:
    """``dataclasses.replace`` that ignores ``None`` overrides (options the user did not give)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return cfg
    merged = {**to_dict(cfg), **to_dict(given)}
    return from_dict(type(cfg), merged, where=type(cfg).__name__)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping from ``path`` (an empty file is an empty mapping)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"cannot read config file ({exc.strerror})", path=path) from None
    except UnicodeDecodeError:
        raise BadInputError("config file is not UTF-8 text", path=path,
                            fix="save it as UTF-8 YAML or JSON") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise BadInputError(f"not valid YAML/JSON{at}", path=path, fix="check the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise BadInputError("a config file must hold a mapping of option: value", path=path)
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config (a dataclass or mapping) as YAML, atomically."""
    import yaml

    from pseudolabel.io import atomic_write

    path = Path(path)
    with atomic_write(path, "w") as fh:
        yaml.safe_dump(to_dict(cfg), fh, sort_keys=False)
    return path


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME:key=value,key=value`` (the ``--refiner`` syntax) into name and raw options.

    Values stay strings; :func:`from_dict` coerces them to the plugin's declared types.
    A value may hold commas when bracketed: ``fusion:weights=[0.3,0.7]``.
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise BadInputError(f"empty name in {spec!r}", fix="write NAME or NAME:key=value,...")
    options: dict[str, str] = {}
    depth, token, tokens = 0, "", []
    for ch in rest:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            tokens.append(token)
            token = ""
        else:
            token += ch
    tokens.append(token)
    for tok in tokens:
        if not tok.strip():
            continue
        key, eq, value = tok.partition("=")
        if not eq:
            raise BadInputError(f"option {tok!r} in {spec!r} has no '='", fix="write key=value")
        options[key.strip().replace("-", "_")] = value.strip().strip("[]()")
    return name, options
