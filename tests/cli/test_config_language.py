"""One config language: options are the config dataclasses' fields, values are checked once.

The options of each command are compared with the fields of its config dataclass (names, help,
choices, defaults shown); bad values are one line naming the option or the config file and key,
whether they come from the command line, a YAML file or Python.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pseudolabel.affinity.config import AffinityTrainConfig
from pseudolabel.cams.config import MakeCamsConfig
from pseudolabel.cli.main import cli
from pseudolabel.cli.options import FieldOption
from pseudolabel.config import InvalidValue, from_dict, parse_spec
from pseudolabel.data.config import AugmentConfig, DemoConfig, InspectConfig
from pseudolabel.errors import BadInputError
from pseudolabel.evaluate.config import EvaluateConfig
from pseudolabel.export import ExportConfig
from pseudolabel.refine.config import RefineConfig
from pseudolabel.report.config import ReportConfig
from pseudolabel.train.config import TrainConfig

from cli_helpers import assert_one_line_error

CONFIGS = {
    "train": TrainConfig, "make-cams": MakeCamsConfig, "refine": RefineConfig,
    "train-affinity": AffinityTrainConfig, "evaluate": EvaluateConfig, "report": ReportConfig,
    "export": ExportConfig, "demo-data": DemoConfig, "inspect": InspectConfig,
}


def _command(name: str) -> click.Command:
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None
    return cmd


def _leaf_fields(cls: type, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every field of ``cls`` by its dotted key (nested dataclasses flattened)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_leaf_fields(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = f
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_field_is_an_option_of_the_same_name_with_the_fields_help(name: str) -> None:
    cmd, cls = _command(name), CONFIGS[name]
    fields = _leaf_fields(cls)
    options = {p.key: p for p in cmd.params if isinstance(p, FieldOption)}
    assert set(options) == set(fields)
    for key, f in fields.items():
        option = options[key]
        expected = f.metadata.get("option") or "--" + key.replace("_", "-")
        assert option.opts[0] == expected
        assert f.metadata["help"] and option.help.startswith(f.metadata["help"])
        assert option.default is None  # the default lives in the dataclass only
        tp = typing.get_type_hints(cls if "." not in key else AugmentConfig)[key.split(".")[-1]]
        if typing.get_origin(tp) is typing.Literal:
            assert list(option.type.choices) == list(typing.get_args(tp))
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, (int, float, str)) and not isinstance(default, bool):
            assert f"[default: {default}]" in option.help


def test_registry_fields_name_every_built_in_entry() -> None:
    from pseudolabel.cams.methods import CAM_METHODS
    from pseudolabel.train.losses import ALIGN_LOSSES

    for cls, name, registry in ((TrainConfig, "align", ALIGN_LOSSES),
                                (MakeCamsConfig, "method", CAM_METHODS)):
        help_text = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]
        assert all(n in help_text for n in registry.names()), (name, registry.names())


def _invoke(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize("args, needle", [
    (["train", "data", "--out", "r", "--weight-decay", "nan"], "--weight-decay"),
    (["train", "data", "--out", "r", "--lr", "nan"], "--lr"),
    (["train", "data", "--out", "r", "--lr", "-1"], "--lr"),
    (["train", "data", "--out", "r", "--momentum", "inf"], "--momentum"),
    (["train", "data", "--out", "r", "--augment.hflip", "1.5"], "--augment.hflip"),
    (["train", "data", "--out", "r", "--augment.crop-ratio", "1,nan"], "--augment.crop-ratio"),
    (["make-cams", "data", "--model", "r", "--out", "c.h5", "--scales", "nan"], "--scales"),
    (["make-cams", "data", "--model", "r", "--out", "c.h5", "--scales", "1,inf"], "--scales"),
    (["make-cams", "data", "--model", "r", "--out", "c.h5", "--scales", ""], "--scales"),
    (["train-affinity", "c.h5", "--images", "d", "--out", "a", "--radius", "nan"], "--radius"),
    (["demo-data", "d", "--n-images", "1"], "--n-images"),
    (["report", "m", "--out", "r.html", "--thresholds", "0.5,2"], "--thresholds"),
    # checks between two values of a field, or two fields, name the option too
    (["train", "data", "--out", "r", "--augment.crop-scale", "0.9,0.5"],
     "--augment.crop-scale must be LO,HI with LO <= HI"),
    (["make-cams", "data", "--model", "r", "--out", "c.h5", "--shard", "3/2"], "--shard must"),
    (["make-cams", "data", "--model", "r", "--out", "c.h5", "--models", "student,student"],
     "--models must"),
    (["train-affinity", "c.h5", "--images", "d", "--out", "a", "--lo", "0.6", "--hi", "0.3"],
     "--hi must be at least lo"),
])
def test_bad_values_on_the_command_line_name_the_option(args: list[str], needle: str,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    error = assert_one_line_error(_invoke(args), needle)
    assert "must be" in error or "expected" in error


@pytest.mark.parametrize("spec, needle", [
    ("threshold:t=nan", "t must be"), ("threshold:t=inf", "t must be"),
    ("threshold:t=-1", "t must be"), ("threshold:background=power,alpha=nan", "alpha must be"),
    ("affinity:radius=nan", "radius must be"), ("threshold:t=0.3,t=0.5", "given twice"),
])
def test_bad_refiner_parameters_are_one_line_naming_the_option(spec: str, needle: str,
                                                               tmp_path: Path) -> None:
    error = assert_one_line_error(
        _invoke(["refine", str(tmp_path / "none.h5"), "--out", str(tmp_path / "m"),
                 "--refiner", spec]), needle)
    assert "--refiner" in error
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("text, needles", [
    ("lr: fast\n", ["lr", "fast"]),
    ("lr: .nan\n", ["lr must be"]),
    ("weight_decay: -1\n", ["weight_decay must be"]),
    ("augment:\n  hflip: 2\n", ["augment.hflip must be"]),
    ("augment.crop_ratio: [1, .inf]\n", ["augment.crop_ratio must be"]),
    ("augment:\n  crop_ratio: [2, 1]\n", ["augment.crop_ratio must be LO,HI"]),
    ("augment: 3\n", ["augment: expected a mapping of", "crop_scale", "got 3"]),
    ("augment:\n  hflip: yes\n", ["augment.hflip: expected a number, got True"]),
    ("lr: on\n", ["lr: expected a number, got True"]),
    ("epochs: no\n", ["epochs: expected a number, got False"]),
    ("mode: sideways\n", ["mode", "sideways"]),
    ("epochs: [1, 2]\n", ["epochs"]),
    ("align_layers: {a: b}\n", ["align_layers"]),
])
def test_bad_values_in_a_config_file_name_the_file_and_key(text: str, needles: list[str],
                                                           tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    error = assert_one_line_error(
        _invoke(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--config", str(config)]),
        *needles)
    assert str(config) in error
    assert not (tmp_path / "r").exists()


def test_the_command_line_wins_over_the_file_and_names_itself(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("lr: 0.1\n")
    error = assert_one_line_error(
        _invoke(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--config", str(config),
                 "--lr", "nan"]), "--lr must be")
    assert str(config) not in error


def _captured(monkeypatch: pytest.MonkeyPatch, module: str) -> dict[str, Any]:
    """Replace ``module.run`` by a recorder of its config (nothing is computed)."""
    import importlib

    seen: dict[str, Any] = {}

    def fake_run(config: Any, *args: Any, **kwargs: Any) -> Path:
        seen["config"] = config
        return Path("x")

    monkeypatch.setattr(importlib.import_module(module), "run", fake_run)
    return seen


def test_refiner_key_of_the_option_name_is_accepted_in_a_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch, "pseudolabel.refine.stage")
    config = tmp_path / "r.yaml"
    for text, expected in (("refiner: threshold:t=0.4\n", ("threshold:t=0.4",)),
                           ("refiner: [gmm, 'threshold:t=0.2']\n", ("gmm", "threshold:t=0.2")),
                           ("refiners: [gmm]\n", ("gmm",))):
        config.write_text(text)
        result = _invoke(["refine", "c.h5", "--out", str(tmp_path / "m"), "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert seen["config"].refiners == expected
    config.write_text("refiner: gmm\nrefiners: [crf]\n")
    assert_one_line_error(
        _invoke(["refine", "c.h5", "--out", "m", "--config", str(config)]), "given twice")


def test_nested_and_hidden_old_options_reach_the_dataclass(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch, "pseudolabel.train.stage")
    config = tmp_path / "t.yaml"
    config.write_text("augment:\n  crop_ratio: [0.5, 2]\nmomentum: 0.8\ndrop-rate: 0.2\n")
    result = _invoke(["train", str(tmp_path), "--out", "r", "--config", str(config),
                      "--min-lr-ratio", "0.05", "--augment.hflip", "0.25", "--color-jitter", "0.1",
                      "--align-layers", "features:features, layer3:blocks.4"])
    assert result.exit_code == 0, result.output
    cfg = seen["config"]
    assert cfg.augment == AugmentConfig(crop_ratio=(0.5, 2.0), hflip=0.25, brightness=0.1,
                                        contrast=0.1, saturation=0.1)
    assert (cfg.momentum, cfg.drop_rate, cfg.min_lr_ratio) == (0.8, 0.2, 0.05)
    assert cfg.align_layers == ("features:features", "layer3:blocks.4")


def test_demo_data_n_images_and_its_old_spelling(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch, "pseudolabel.data.demo")
    for args in (["--n-images", "7"], ["--n", "7"]):
        result = _invoke(["demo-data", str(tmp_path / "d"), *args])
        assert result.exit_code == 0, result.output
        assert seen["config"].n_images == 7


@pytest.mark.parametrize("cls, kwargs, needle", [
    (TrainConfig, {"lr": math.nan}, "lr must be"),
    (TrainConfig, {"weight_decay": -1.0}, "weight_decay must be"),
    (MakeCamsConfig, {"scales": (1.0, math.inf)}, "scales must be"),
    (MakeCamsConfig, {"layers": ()}, "layers must be not empty"),
    (AffinityTrainConfig, {"radius": math.nan}, "radius must be"),
    (AugmentConfig, {"hflip": -0.1}, "hflip must be"),
    (RefineConfig, {"refiners": ()}, "refiners must be"),
])
def test_python_construction_checks_the_same_values(cls: type, kwargs: dict, needle: str) -> None:
    with pytest.raises(InvalidValue, match=needle):
        cls(**kwargs)
    with pytest.raises(BadInputError, match=needle):
        from_dict(cls, kwargs)


def test_refiner_params_are_checked_from_python_too() -> None:
    from pseudolabel.refine import create_refiner

    for spec in ("threshold:t=nan", "threshold:t=-1", "threshold:t=1.5", "affinity:radius=inf"):
        with pytest.raises(BadInputError, match="must be"):
            create_refiner(spec)
    with pytest.raises(BadInputError, match="given twice"):
        parse_spec("gmm:lo=0.2,lo=0.3")


def test_two_configs_under_prefixes_share_one_command(tmp_path: Path) -> None:
    """The shape ``pseudolabel run`` can use: --train.lr and --refine.workers side by side."""
    from pseudolabel.cli.options import config_from_params, config_option, dataclass_options

    seen: dict[str, Any] = {}

    @click.command()
    @dataclass_options(TrainConfig, prefix="train.")
    @dataclass_options(RefineConfig, prefix="refine.")
    @config_option
    def both(config: str | None, **options: Any) -> None:
        seen["train"] = config_from_params(TrainConfig, options, prefix="train.")
        seen["refine"] = config_from_params(RefineConfig, options, prefix="refine.")

    config = tmp_path / "both.yaml"
    config.write_text("train:\n  epochs: 3\n  augment: {hflip: 0.1}\nrefine:\n  refiner: [gmm]\n")
    result = CliRunner().invoke(both, ["--train.lr", "0.5", "--refine.workers", "2",
                                       "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (seen["train"].lr, seen["train"].epochs, seen["train"].augment.hflip) == (0.5, 3, 0.1)
    assert (seen["refine"].workers, seen["refine"].refiners) == (2, ("gmm",))
    bad = CliRunner().invoke(both, ["--train.augment.hflip", "nan"])
    assert bad.exit_code != 0 and "--train.augment.hflip must be" in str(bad.exception)
