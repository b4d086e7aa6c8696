"""Files pseudolabel wrote, damaged: every one is a one-line error naming the file, never a
traceback. Checkpoints with the right format tag but broken fields, a last.pt whose config is
not JSON, a refine.source.json that is not JSON (the saved configs: tests/core/test_runtime.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pseudolabel.errors import BadInputError
from pseudolabel.models import create_classifier, load_checkpoint, save_checkpoint

DAMAGES = {
    "meta not JSON": {"meta": '{"role": "student", '},
    "meta not text": {"meta": 5},
    "meta a JSON list": {"meta": "[1, 2]"},
    "no model_name": {"model_name": None},
    "classes not a list": {"classes": "smoke"},
    "classes empty": {"classes": []},
    "state_dict not tensors": {"state_dict": {"w": [1.0, 2.0]}},
    "version not a number": {"version": "one"},
}


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    save_checkpoint(path, create_classifier("test_resnet", ("smoke",)), role="student", epoch=1)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_checkpoint_is_bad_input_naming_it(damage: str, good_checkpoint: dict,
                                                     tmp_path: Path) -> None:
    payload = dict(good_checkpoint)
    for key, value in DAMAGES[damage].items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    path = tmp_path / "student.pt"
    torch.save(payload, path)
    with pytest.raises(BadInputError) as info:
        load_checkpoint(path)
    assert info.value.path == path and info.value.fix, info.value


def test_the_good_checkpoint_still_loads(good_checkpoint: dict, tmp_path: Path) -> None:
    path = tmp_path / "student.pt"
    torch.save(good_checkpoint, path)
    model, meta = load_checkpoint(path)
    assert model.classes == ("smoke",) and meta["role"] == "student" and meta["epoch"] == 1


def test_a_damaged_checkpoint_through_the_cli_is_one_line(good_checkpoint: dict, rel_root: Path,
                                                          tmp_path: Path) -> None:
    from harness import invoke

    from cli_helpers import assert_one_line_error

    path = tmp_path / "student.pt"
    torch.save({**good_checkpoint, "meta": "not json"}, path)
    result = invoke("make-cams", rel_root, "--model", path, "--out",
                    tmp_path / "cams.h5", "--device", "cpu")
    assert_one_line_error(result, "student.pt")


@pytest.mark.parametrize(("field", "value"), [("config", "not json"), ("config", "[1]"),
                                              ("history", '{"epoch": 1}'), ("history", 3)])
def test_a_last_pt_with_damaged_json_fields_names_the_file(field: str, value: object,
                                                          tmp_path: Path) -> None:
    from pseudolabel.train.state import FORMAT, VERSION, load_state

    path = tmp_path / "last.pt"
    torch.save({"format": FORMAT, "version": VERSION, "history": "[]", "config": "{}",
                field: value}, path)
    with pytest.raises(BadInputError, match="damaged") as info:
        load_state(path)
    assert info.value.path == path and "--overwrite" in (info.value.fix or "")


@pytest.mark.parametrize("damage", [{"stride": "4"}, {"backbone": None}, {"state_dict": {}}])
def test_a_damaged_affinity_model_names_the_file(damage: dict, tmp_path: Path) -> None:
    from pseudolabel.affinity.net import AffinityNet, load_affinity_net, save_affinity_net

    path = save_affinity_net(tmp_path / "model.pt", AffinityNet("test_resnet", 4, 8))
    payload = torch.load(path, weights_only=True)
    for key, value in damage.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, path)
    with pytest.raises(BadInputError, match="damaged") as info:
        load_affinity_net(tmp_path)
    assert info.value.path == path


def _damage_weight(state: dict) -> dict:
    nets = {role: dict(sd) for role, sd in state["nets"].items()}
    name = next(k for k, v in nets["student"].items() if v.ndim > 1)
    nets["student"][name] = nets["student"][name][:1]
    return {"nets": nets}


def _damage_momentum(state: dict) -> dict:
    opt = {"state": {k: {n: (v[:1] if v.ndim else v) for n, v in buf.items()}
                     for k, buf in state["optimizer"]["state"].items()},
           "param_groups": state["optimizer"]["param_groups"]}
    return {"optimizer": opt}


LAST_PT_DAMAGES = {
    "epoch text": lambda s: {"epoch": "1"},
    "phase negative": lambda s: {"phase": -1},
    "nets not dicts": lambda s: {"nets": {"student": 3}},
    "nets role missing": lambda s: {"nets": {}},
    "weight of another shape": _damage_weight,
    "optimizer not a dict": lambda s: {"optimizer": 3},
    "optimizer of another run": lambda s: {"optimizer": {"state": {}, "param_groups": []}},
    "momentum of another shape": _damage_momentum,
    "scheduler step text": lambda s: {"scheduler": {**s["scheduler"], "last_epoch": "1"}},
    "rng missing": lambda s: {"rng": {}},
    "rng refused": lambda s: {"rng": {"torch": torch.zeros(3, dtype=torch.uint8)}},
}


@pytest.mark.parametrize("damage", list(LAST_PT_DAMAGES))
def test_resuming_from_a_last_pt_with_a_damaged_field_is_one_line(
        damage: str, rel_root: Path, rel_run: Path, tmp_path: Path) -> None:
    """Every field of last.pt (not only its JSON ones) is checked before it is used."""
    import shutil

    from harness import TINY_TRAIN, invoke

    from cli_helpers import assert_one_line_error

    run = tmp_path / "run"
    shutil.copytree(rel_run, run)
    state = torch.load(run / "last.pt", weights_only=True)
    torch.save({**state, **LAST_PT_DAMAGES[damage](state)}, run / "last.pt")
    result = invoke("train", rel_root, "--out", run, "--resume", *TINY_TRAIN, "--epochs", "2")
    line = assert_one_line_error(result, "last.pt", "damaged", "--overwrite")
    assert "fix:" in line
