"""Frozen-dataclass configs: coercion, unknown keys, overrides, files, the refiner spec syntax."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from pseudolabel.config import (
    InvalidValue,
    check_fields,
    from_dict,
    load_config_file,
    nest,
    parse_spec,
    replace,
    save_config,
    setting,
    split_list,
    to_dict,
)
from pseudolabel.errors import BadInputError


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    steps: int = 3


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    scales: tuple[float, ...] = (1.0,)
    flip: bool = True
    mode: Literal["a", "b"] = "a"
    out: Path | None = None
    inner: Inner = field(default_factory=Inner)


def test_from_dict_coerces_simple_types() -> None:
    cfg = from_dict(Outer, {"scales": "0.5,1,2", "flip": "false", "mode": "b", "out": "x/y",
                            "inner": {"lr": "0.01", "steps": 5}})
    assert cfg.scales == (0.5, 1.0, 2.0) and cfg.flip is False and cfg.mode == "b"
    assert cfg.out == Path("x/y") and cfg.inner == Inner(0.01, 5)


@pytest.mark.parametrize(
    "data, needle",
    [({"nme": 1}, "nme"), ({"mode": "c"}, "mode"), ({"flip": "maybe"}, "flip"),
     ({"inner": {"steps": 1.5}}, "steps"), ({"inner": {"lr": "fast"}}, "lr")],
)
def test_from_dict_rejects_bad_values_with_the_key(data: dict, needle: str) -> None:
    with pytest.raises(BadInputError, match=needle):
        from_dict(Outer, data)


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = from_dict(Outer, {"scales": [0.5, 1.5], "out": "o"})
    path = save_config(cfg, tmp_path / "c.yaml")
    assert yaml.safe_load(path.read_text())["scales"] == [0.5, 1.5]
    assert from_dict(Outer, load_config_file(path)) == cfg
    assert to_dict(cfg)["inner"] == {"lr": 0.1, "steps": 3}


def test_replace_ignores_options_not_given() -> None:
    cfg = Outer()
    assert replace(cfg, name=None, flip=None) is cfg
    assert replace(cfg, name="y", scales=None).name == "y"


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(BadInputError, match=r"bad\.yaml"):
        load_config_file(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(BadInputError, match="mapping"):
        load_config_file(listy)
    with pytest.raises(BadInputError, match="missing"):
        load_config_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("name", "text", "needle"), [
    ("dup.yaml", "workers: 1\nworkers: 2\n", "line 2: key 'workers' is given twice"),
    ("dup2.yaml", "a:\n  b: 1\n  c: 2\n  b: 3\n", "line 4: key 'b' is given twice"),
    ("dup.json", '{"workers": 1, "workers": 2}', "key 'workers' is given twice"),
])
def test_a_key_repeated_in_a_config_file_is_an_error(name: str, text: str, needle: str,
                                                     tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadInputError, match=needle) as info:
        load_config_file(path)
    assert info.value.path == path and info.value.fix


def test_yaml_merge_keys_and_overrides_are_not_repeats(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text("a: &x {b: 1, c: 2}\nd: {<<: *x, b: 3}\n")
    assert load_config_file(path) == {"a": {"b": 1, "c": 2}, "d": {"b": 3, "c": 2}}


def test_parse_spec() -> None:
    assert parse_spec("gmm") == ("gmm", {})
    assert parse_spec("threshold:t=0.3,mode=power") == ("threshold", {"t": "0.3", "mode": "power"})
    assert parse_spec("fusion:weights=[0.3,0.7],how=mean") == (
        "fusion", {"weights": "0.3,0.7", "how": "mean"})
    with pytest.raises(BadInputError):
        parse_spec("gmm:bands")
    with pytest.raises(BadInputError):
        parse_spec(":a=1")
    with pytest.raises(BadInputError, match="given twice"):
        parse_spec("threshold:t=0.3,t=0.5")


@dataclass(frozen=True)
class Checked:
    rate: float = setting(0.5, help="a share", ge=0, le=1)
    scales: tuple[float, ...] = setting((1.0,), help="positive", gt=0, nonempty=True)
    steps: int = setting(3, help="at least one", ge=1)
    free: float = setting(0.0, help="any finite number")
    unbounded: float = setting(0.0, help="inf allowed", finite=False)
    names: tuple[str, ...] = setting(("a",), help="aka", aliases=("name",))

    def __post_init__(self) -> None:
        check_fields(self)


@pytest.mark.parametrize("kwargs, message", [
    ({"rate": math.nan}, "rate must be a finite number in [0, 1], got nan"),
    ({"rate": 1.5}, "rate must be a finite number in [0, 1], got 1.5"),
    ({"scales": (1.0, -2.0)}, "scales must be a list of finite numbers > 0, got (1.0, -2.0)"),
    ({"scales": ()}, "scales must be not empty, got ()"),
    ({"steps": 0}, "steps must be an integer >= 1, got 0"),
    ({"free": math.inf}, "free must be a finite number, got inf"),
])
def test_setting_checks_from_python_and_from_dict(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidValue) as python:
        Checked(**kwargs)
    assert str(python.value) == message
    with pytest.raises(InvalidValue) as data:
        from_dict(Checked, {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
                  where="cfg")
    assert str(data.value) == f"cfg: {message}" and data.value.keys == tuple(kwargs)


def test_setting_allows_what_it_says() -> None:
    assert Checked(unbounded=math.inf, rate=0.0, free=-1e9).unbounded == math.inf
    assert from_dict(Checked, {"name": "x,y"}).names == ("x", "y")  # an alias
    with pytest.raises(BadInputError, match="twice"):
        from_dict(Checked, {"name": "x", "names": "y"})
    with pytest.raises(TypeError, match="unknown setting metadata"):
        setting(1, help="x", minimum=0)


def test_one_comma_list_rule_and_dotted_keys() -> None:
    assert split_list(" a, b ,,c ") == ["a", "b", "c"]
    assert split_list("[0.3,0.7]") == ["0.3", "0.7"] and split_list("") == []
    assert nest({"inner.lr": 1, "inner": {"steps": 2}, "name": "n"}) == {
        "inner": {"lr": 1, "steps": 2}, "name": "n"}
    cfg = from_dict(Outer, {"inner.lr": "0.5", "scales": "[1, 2]"})
    assert cfg.inner.lr == 0.5 and cfg.scales == (1.0, 2.0)
    with pytest.raises(InvalidValue, match=r"inner\.lr: expected a number"):
        from_dict(Outer, {"inner": {"lr": "fast"}}, where=None)
