"""benchmarks/quality.py end to end at its tiny preset, with tiny models on the demo data.

Its oracle rows are checked against their own threshold curves, and a rerun against the first
run (everything cached, nothing retrained). Its scorer is pseudolabel.refine.api, whose masks and
scores equal the refine and evaluate stages' (tests/refine/test_api.py).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .helpers import REPO

ARGS = ["--data", "demo", "--preset", "tiny", "--cnn", "test_resnet", "--vit", "test_vit",
        "--weights", "none", "--threads", "1"]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_bench", REPO / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Path, dict]:
    module = _load()
    out = tmp_path_factory.mktemp("quality")
    module.main([*ARGS, "--out", str(out)])
    return module, out, json.loads((out / "quality.json").read_text())


def test_writes_every_section(bench: tuple[ModuleType, Path, dict]) -> None:
    _, out, res = bench
    text = (out / "quality.md").read_text()
    for title in ("### Training variants", "### Refiners", "### Multi-layer CAM fusion"):
        assert title in text
    titles = [r["title"] for r in res["models"]]
    assert {"single CNN", "single ViT", "T-S channel, no projector", "co-training (CNN's CAMs)"} <= set(titles)
    assert any(t.startswith("T-S spatial λ=") for t in titles)
    # the seed paper's direction (the CNN teaching a ViT) and the single CNN's levers
    assert {"paper direction: CNN teacher → ViT student, global (λ=1)",
            "single CNN + negatives' CAM loss (w=1)"} <= set(titles)
    assert all(0.0 <= r["rec"]["miou"] <= 1.0 for r in res["models"])
    for r in res["models"] + res["refiners"] + res["fusion"]:
        row = r.get("oracle", r)
        assert 0.0 <= row["miou"] <= 1.0 and 0.0 <= row["coverage"] <= 1.0
    curves = json.loads((out / "curves.json").read_text())
    assert any("λ" in name for name in curves)


def test_oracle_is_the_best_point_of_its_curve(bench: tuple[ModuleType, Path, dict]) -> None:
    _, _, res = bench
    for r in res["models"]:
        best_t, best = max(r["curve"], key=lambda p: p[1])
        assert r["oracle"]["miou"] == pytest.approx(best)
        assert r["t"] == pytest.approx(best_t)


def test_rerun_reuses_everything(bench: tuple[ModuleType, Path, dict]) -> None:
    module, out, res = bench
    stamp = (out / "runs" / "cnn" / "student.pt").stat().st_mtime_ns
    module.main([*ARGS, "--out", str(out)])
    assert (out / "runs" / "cnn" / "student.pt").stat().st_mtime_ns == stamp
    again = json.loads((out / "quality.json").read_text())
    assert again["models"] == res["models"] and again["refiners"] == res["refiners"]


def test_variants_train_what_they_need_only(bench: tuple[ModuleType, Path, dict],
                                            tmp_path: Path) -> None:
    module, _, _ = bench
    module.main([*ARGS, "--out", str(tmp_path), "--only", "models", "--variants", "rev-global-l1",
                 "--grid", "finest"])
    res = json.loads((tmp_path / "quality.json").read_text())
    assert sorted(r["run"] for r in res["models"]) == ["cnn", "rev-global-l1"]  # + its teacher
    assert sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir()) == [
        "cnn", "rev-global-l1"]
    assert (tmp_path / "cams" / "rev-global-l1-finest.h5").is_file()
