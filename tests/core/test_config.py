"""Frozen-dataclass configs: coercion, unknown keys, overrides, files, the refiner spec syntax."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from pseudolabel.config import (
    from_dict,
    load_config_file,
    parse_spec,
    replace,
    save_config,
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


def test_parse_spec() -> None:
    assert parse_spec("gmm") == ("gmm", {})
    assert parse_spec("threshold:t=0.3,mode=power") == ("threshold", {"t": "0.3", "mode": "power"})
    assert parse_spec("fusion:weights=[0.3,0.7],how=mean") == (
        "fusion", {"weights": "0.3,0.7", "how": "mean"})
    with pytest.raises(BadInputError):
        parse_spec("gmm:bands")
    with pytest.raises(BadInputError):
        parse_spec(":a=1")
