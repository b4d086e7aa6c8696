"""Configuration: frozen dataclasses hold each component's defaults, help and checks once.

A stage's config is a frozen dataclass (possibly nesting others). It is built from defaults,
then a YAML/JSON file, then command-line overrides, with :func:`from_dict`, and the resolved
result is written beside every output with :func:`save_config`.

A field says everything about itself in its metadata (:func:`setting` writes it):

    lr: float = setting(3e-4, help="Learning rate.", gt=0)

``help`` is the option's help text, ``ge``/``gt``/``le``/``lt`` bounds (checked on every item
of a tuple), ``finite`` (default: true for numbers) and ``nonempty`` are checked by
:func:`check_fields` - from Python, from a config file and from the command line alike - and
``option``/``aliases``/``multiple``/``registry``/``metavar``/``cli`` shape the command-line
option that ``pseudolabel.cli.options`` builds from the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pseudolabel.errors import BadInputError

C = TypeVar("C")

_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


class InvalidValue(BadInputError):
    """A config value outside what its field allows; ``keys`` locate it (nested: several).

    The command line re-labels it with the option's name, a config file with the file's path.
    """

    def __init__(self, keys: tuple[str, ...], requirement: str, value: Any, *,
                 where: str | None = None, path: str | Path | None = None,
                 label: str | None = None, kind: str = "range") -> None:
        self.keys = keys
        self.requirement = requirement
        self.value = value
        self.where = where
        self.kind = kind  # "type": the value is not of the field's type; "range": out of range
        if label is None:
            label = ".".join(keys) or "value"
            label = f"{where}: {label}" if where else label
        super().__init__(self.text(label), path=path)

    def text(self, label: str) -> str:
        """The message with the value called ``label`` (an option, a key)."""
        if self.requirement.startswith("one of "):
            return f"{label}: {self.value!r} is not {self.requirement}"
        if self.kind == "type":
            return f"{label}: expected {self.requirement}, got {self.value!r}"
        return f"{label} must be {self.requirement}, got {self.value!r}"

    def located(self, *, keys: tuple[str, ...] | None = None, where: str | None = None,
                path: str | Path | None = None, label: str | None = None) -> InvalidValue:
        """The same error under other keys, a ``where`` prefix, a file, or one ``label``."""
        return InvalidValue(self.keys if keys is None else keys, self.requirement, self.value,
                            where=where, path=path, label=label, kind=self.kind)


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            help: str = "", **meta: Any) -> Any:
    """A dataclass field with its help text and checks (see the module docstring for keys)."""
    unknown = set(meta) - {"ge", "gt", "le", "lt", "finite", "nonempty", "option", "aliases",
                           "multiple", "registry", "metavar", "cli"}
    if unknown:
        raise TypeError(f"unknown setting metadata: {', '.join(sorted(unknown))}")
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"help": help, **meta})


def split_list(text: str) -> list[str]:
    """``"a, b,c"`` or ``"[a,b]"`` -> ``["a", "b", "c"]``: the one rule for comma lists."""
    text = str(text).strip()
    if text[:1] in "[(" and text[-1:] in "])":
        text = text[1:-1]
    return [item.strip() for item in text.split(",") if item.strip()]


def _requirement(meta: Mapping[str, Any], value: Any, plural: bool = False) -> str:
    finite = "finite " if meta.get("finite", True) and not isinstance(value, int) else ""
    if plural:
        kind = "a list of " + ("integers" if isinstance(value, int) else f"{finite}numbers")
    else:
        kind = "an integer" if isinstance(value, int) else f"a {finite}number"
    lo = next(((k, meta[k]) for k in ("ge", "gt") if meta.get(k) is not None), None)
    hi = next(((k, meta[k]) for k in ("le", "lt") if meta.get(k) is not None), None)
    if lo and hi:  # an interval: [0, 1), (0, 1] ...
        return (f"{kind} in {'[' if lo[0] == 'ge' else '('}{lo[1]}, "
                f"{hi[1]}{']' if hi[0] == 'le' else ')'}")
    bounds = [f"{sign} {meta[key]}" for key, sign in _BOUNDS if meta.get(key) is not None]
    return " ".join([kind, *bounds])


def check_value(f: dataclasses.Field, value: Any) -> None:
    """Raise :class:`InvalidValue` when ``value`` breaks the checks of field ``f``."""
    meta = f.metadata
    if meta.get("nonempty") and (value is None or len(value) == 0):
        raise InvalidValue((f.name,), "not empty", value)
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        ok = not (isinstance(item, float) and meta.get("finite", True) and not math.isfinite(item))
        for key, _ in _BOUNDS:
            bound = meta.get(key)
            if bound is None or not ok:
                continue
            ok = {"ge": item >= bound, "gt": item > bound, "le": item <= bound,
                  "lt": item < bound}[key]
        if not ok:
            requirement = _requirement(meta, item, plural=isinstance(value, (tuple, list)))
            raise InvalidValue((f.name,), requirement, value)


def check_fields(obj: Any) -> None:
    """Check every field of the dataclass instance ``obj`` (call it in ``__post_init__``)."""
    for f in dataclasses.fields(obj):
        check_value(f, getattr(obj, f.name))


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


_PLURAL = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def type_name(tp: Any, *, plural: bool = False) -> str:
    """A readable name of an annotation: ``a number``, ``one of a, b``, ``a list of numbers``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a, plural=plural) for a in args if a is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (tuple, list):
        return "a list of " + (type_name(args[0], plural=True) if args else "values")
    if plural:
        return _PLURAL.get(tp, f"{getattr(tp, '__name__', tp)} values")
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(tp: Any, value: Any) -> Any:
    """Convert ``value`` (from YAML or the CLI) to the annotated type ``tp`` where it is simple.

    Raises :class:`InvalidValue` (without keys; the caller adds them) when it cannot.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value)
            except (BadInputError, TypeError, ValueError):
                continue
        raise InvalidValue((), type_name(tp), value, kind="type")
    if origin is typing.Literal:
        if value not in args:
            raise InvalidValue((), type_name(tp), value, kind="type")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = split_list(value)
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and len(args) > 1 and args[1] is not Ellipsis and len(value) != len(args):
            raise InvalidValue((), f"{len(args)} comma-separated values", value, kind="type")
        items = [_coerce(args[0] if len(args) == 1 or args[1] is Ellipsis else args[i], v)
                 for i, v in enumerate(value)] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise InvalidValue((), "a mapping", value, kind="type")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=None)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise InvalidValue((), type_name(tp), value, kind="type")
    if tp in (int, float):
        if isinstance(value, bool):
            raise InvalidValue((), type_name(tp), value, kind="type")
        try:
            out = tp(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidValue((), type_name(tp), value, kind="type") from None
        if tp is int and isinstance(value, float) and out != value:
            raise InvalidValue((), type_name(tp), value, kind="type")
        return out
    if tp is str:
        if isinstance(value, (Mapping, list, tuple)):
            raise InvalidValue((), "a string", value, kind="type")
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def nest(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"augment.hflip": 0.2}`` -> ``{"augment": {"hflip": 0.2}}`` (dotted keys nest)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        head, dot, rest = str(key).partition(".")
        if dot:
            section = out.setdefault(head, {})
            if not isinstance(section, dict):
                raise BadInputError(f"{head!r} is given both as a value and as a section")
            section.update(nest({rest: value}))
        elif isinstance(value, Mapping) and isinstance(out.get(head), dict):
            out[head].update(value)
        else:
            out[head] = value
    return out


def field_names(cls: type) -> dict[str, str]:
    """Every key ``cls`` accepts -> its field name (field names, ``-`` spellings, aliases)."""
    names: dict[str, str] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        for key in (f.name, *f.metadata.get("aliases", ())):
            names[key] = names[key.replace("_", "-")] = f.name
    return names


def from_dict(cls: type[C], data: Mapping[str, Any] | C | None, *,
              where: str | None = "config") -> C:
    """Build the frozen dataclass ``cls`` from a mapping; unknown keys are a clear error.

    Missing keys keep the dataclass defaults; values are coerced to the annotated types
    (lists to tuples, "0.5,1" to (0.5, 1.0), "true" to True, nested dicts to nested
    dataclasses, ``a.b`` keys to nested ones) and checked against the fields' metadata.
    A field's ``aliases`` are accepted as keys too. Bad values raise :class:`InvalidValue`.
    """
    if data is None:
        return cls()
    if isinstance(data, cls):
        check_fields(data)
        return data
    if not isinstance(data, Mapping):
        raise BadInputError(f"{where or cls.__name__}: expected a mapping of options, "
                            f"got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    names = field_names(cls)
    data = nest(data)
    unknown = sorted(k for k in data if k not in names)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise BadInputError(
            f"{prefix}unknown option(s) {', '.join(map(repr, unknown))}",
            fix=f"valid options are: {', '.join(fields)}",
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = names[key]
        if name in kwargs:
            raise BadInputError(f"{where or cls.__name__}: {name!r} is given twice "
                                f"(as {key!r} too)")
        try:
            kwargs[name] = _coerce(hints[name], value)
        except InvalidValue as exc:
            raise exc.located(keys=(name, *exc.keys), where=where) from None
        if kwargs[name] is not None:
            try:
                check_value(fields[name], kwargs[name])
            except InvalidValue as exc:
                raise exc.located(where=where) from None
    try:
        obj = cls(**kwargs)
    except InvalidValue as exc:
        raise exc.located(where=where) from None
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{where or cls.__name__}: {exc}") from None
    return obj


def replace(cfg: C, **overrides: Any) -> C:
    """``dataclasses.replace`` that ignores ``None`` overrides (options the user did not give)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return cfg
    merged = {**to_dict(cfg), **to_dict(given)}
    return from_dict(type(cfg), merged, where=type(cfg).__name__)


class DuplicateKey(ValueError):
    """A key given twice in one mapping of a config file (``line``: 1-based, or None)."""

    def __init__(self, key: Any, line: int | None) -> None:
        super().__init__(key)
        self.key, self.line = key, line


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key, None)
        out[key] = value
    return out


def _yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses a key repeated in one mapping (PyYAML keeps the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *anchor may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, typing.Hashable) and key in seen:
                    raise DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=Loader)  # a SafeLoader subclass


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping from ``path`` (an empty file is an empty mapping); a key given
    twice in one mapping is an error naming it (YAML and JSON would keep the last silently)."""
    import yaml

    from pseudolabel.io import read_text

    path = Path(path)
    text = read_text(path, "config file", fix="save it as UTF-8 YAML or JSON")
    try:
        data = (json.loads(text, object_pairs_hook=_json_pairs) if path.suffix == ".json"
                else _yaml_load(text))
    except DuplicateKey as exc:
        at = f"line {exc.line}: " if exc.line is not None else ""
        raise BadInputError(f"{at}key {exc.key!r} is given twice", path=path,
                            fix="keep one") from None
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
    A value may hold commas when bracketed: ``fusion:weights=[0.3,0.7]``. A key given twice
    is an error.
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
        key = key.strip().replace("-", "_")
        if key in options:
            raise BadInputError(f"option {key!r} is given twice in {spec!r}",
                                fix=f"keep one {key}=...")
        options[key] = value.strip().strip("[]()")
    return name, options
