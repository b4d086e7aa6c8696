"""The refine stage: masks on disk, workers, resume, config checks, images, dataset fits, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from pseudolabel.cli.main import cli
from pseudolabel.data.masks import read_mask, voc_palette
from pseudolabel.errors import BadInputError
from pseudolabel.io import RunLock
from pseudolabel.refine import REFINERS, Refiner, create_chain, initial_state, to_mask
from pseudolabel.refine.stage import RefineConfig, run
from refine.stores import write_cam_store, write_store_and_images

from cli_helpers import assert_one_line_error

CLASSES = ("smoke", "chimney", "cloud")
HERE = Path(__file__).resolve().parent


def _records(n: int = 9, seed: int = 0) -> list[dict]:
    """Records with blob CAMs (two keys), a few negatives, varied sizes, one nested id."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        height, width = (40, 48) if i % 3 else (32, 36)
        k = 0 if i % 4 == 3 else (1 + i % 2)
        classes = np.sort(rng.choice(len(CLASSES), k, replace=False))
        cams = {}
        for key, (h, w) in (("student/features", (height // 4, width // 4)),
                            ("teacher/features", (height // 8, width // 8))):
            maps = np.clip(rng.normal(0.1, 0.05, (k, h, w)), 0, 1)
            for j in range(k):
                y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
                maps[j, y:y + h // 2, x:x + w // 2] = rng.uniform(0.7, 1.0)
            maps = maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-6)
            cams[key] = maps.astype(np.float16).astype(np.float32)  # as the store keeps them
        image_id = f"sub/img{i}" if i == 5 else f"img{i}"
        out.append({"id": image_id, "image_size": (height, width), "class_indices": classes,
                    "cams": cams})
    return out


@pytest.fixture
def data(tmp_path: Path) -> dict:
    """A CAM store and the matching image root."""
    return write_store_and_images(tmp_path, CLASSES, _records())


def _expected(records: list[dict], specs: list[str], key: str = "student/features",
              root: Path | None = None) -> dict[str, np.ndarray]:
    """The masks computed in memory, record by record (the stage must write exactly these)."""
    chain = create_chain(specs)
    out = {}
    for r in records:
        image = None
        if root is not None:
            image = np.asarray(Image.open(root / "JPEGImages" / (r["id"] + ".png")).convert("RGB"))
        state = initial_state({k: v.astype(np.float32) for k, v in r["cams"].items()}, key,
                              r["class_indices"], r["image_size"], image=image, image_id=r["id"])
        for refiner in chain:
            state = refiner.refine(state)
        out[r["id"]] = to_mask(state)
    return out


def _read_all(out: Path, records: list[dict]) -> dict[str, np.ndarray]:
    return {r["id"]: read_mask(out / (r["id"] + ".png")) for r in records}


def test_masks_are_palette_pngs_equal_to_the_chain(data: dict) -> None:
    specs = ["fusion:mode=max", "threshold:t=0.4"]
    out = run(RefineConfig(refiners=tuple(specs)), data["store"], data["tmp"] / "masks")
    want = _expected(data["records"], specs)
    for r in data["records"]:
        path = out / (r["id"] + ".png")
        with Image.open(path) as img:
            assert img.mode == "P" and img.size == r["image_size"][::-1]
            palette = np.array(img.getpalette()[:768], np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, voc_palette())
        np.testing.assert_array_equal(read_mask(path), want[r["id"]])
    saved = yaml.safe_load((out / "refine.yaml").read_text())
    assert saved["refiners"][0].startswith("fusion:keys=[],mode=max")
    assert saved["key"] == "student/features" and saved["cams"] == str(data["store"].resolve())
    values = np.unique(np.concatenate([m.ravel() for m in want.values()]))
    assert {0, 1}.issubset(values.tolist())  # both background and some class were written


def test_workers_give_identical_files(data: dict) -> None:
    specs = ("gmm",)
    one = run(RefineConfig(refiners=specs), data["store"], data["tmp"] / "one")
    two = run(RefineConfig(refiners=specs, workers=2, chunk_size=2), data["store"],
              data["tmp"] / "two")
    for r in data["records"]:
        name = r["id"] + ".png"
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_rerun_skips_finished_images_and_redoes_missing_ones(data: dict) -> None:
    out = data["tmp"] / "masks"
    cfg = RefineConfig(refiners=("gmm",), save_scores=True)
    run(cfg, data["store"], out)
    first = {p: p.read_bytes() for p in out.rglob("*.png")}
    (out / "img1.png").unlink()
    (out / "scores" / "img2.npz").unlink()  # mask kept, scores lost: redone
    (out / ".tmp-img4.png.xyz").write_bytes(b"partial")
    stamp = (out / "img0.png").stat().st_mtime_ns
    run(cfg, data["store"], out)
    assert (out / "img0.png").stat().st_mtime_ns == stamp
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == first
    assert not list(out.rglob(".tmp-*"))


class _Identity(Refiner):
    name, description = "slow", "the identity"

    def refine(self, state):
        return state


def test_kill_9_then_rerun_gives_the_uninterrupted_result(
        data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records(n=40, seed=3)
    store = write_cam_store(data["tmp"] / "big.h5", CLASSES, records)
    out = data["tmp"] / "killed"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(HERE.parents[1])!r}]
        from dataclasses import dataclass
        from pseudolabel.refine import REFINERS, Refiner
        from pseudolabel.refine.stage import RefineConfig, run

        @REFINERS.register("slow")
        class Slow(Refiner):
            name, description = "slow", "sleeps"
            def refine(self, state):
                time.sleep(0.05)
                return state

        run(RefineConfig(refiners=("slow", "gmm"), chunk_size=1), {str(store)!r}, {str(out)!r})
    """)
    env = {**os.environ, "PSEUDOLABEL_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 120
    while len(list(out.glob("*.png"))) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(out.rglob("*.png")))
    assert 5 <= done < len(records), "the run was not interrupted half-way"
    # A rerun of the same chain (the sleep aside, "slow" is the identity) finishes the job.
    monkeypatch.setitem(REFINERS._entries, "slow", _Identity)
    run(RefineConfig(refiners=("slow", "gmm")), store, out)
    got = _read_all(out, records)
    want = _expected(records, ["gmm"])
    for image_id, mask in want.items():
        np.testing.assert_array_equal(got[image_id], mask)


def test_changed_config_is_refused_unless_overwrite(data: dict) -> None:
    out = data["tmp"] / "masks"
    run(RefineConfig(refiners=("threshold:t=0.3",)), data["store"], out)
    with pytest.raises(BadInputError, match=r"another configuration.*threshold"):
        run(RefineConfig(refiners=("threshold:t=0.6",)), data["store"], out)
    # Options that do not change the masks are not a new configuration.
    run(RefineConfig(refiners=("threshold:t=0.3",), workers=2), data["store"], out)
    # A store remade at the same path (another make-cams config) is another configuration too.
    write_cam_store(data["store"], CLASSES, data["records"], config={"model": "other-run"})
    with pytest.raises(BadInputError, match=r"cams_config"):
        run(RefineConfig(refiners=("threshold:t=0.3",)), data["store"], out)
    run(RefineConfig(refiners=("threshold:t=0.6",), overwrite=True), data["store"], out)
    want = _expected(data["records"], ["threshold:t=0.6"])
    got = _read_all(out, data["records"])
    for image_id in want:
        np.testing.assert_array_equal(got[image_id], want[image_id])


def test_masks_without_refine_yaml_are_not_overwritten(data: dict) -> None:
    out = data["tmp"] / "foreign"
    out.mkdir()
    (out / "img0.png").write_bytes(b"someone else's")
    with pytest.raises(BadInputError, match=r"no refine.yaml"):
        run(RefineConfig(), data["store"], out)
    run(RefineConfig(overwrite=True), data["store"], out)
    assert read_mask(out / "img0.png").shape == (32, 36)


def test_refiner_needing_images(data: dict) -> None:
    specs = ("gmm:input=cam+color",)
    with pytest.raises(BadInputError, match=r"gmm needs the images.*--images"):
        run(RefineConfig(refiners=specs), data["store"], data["tmp"] / "m")
    out = run(RefineConfig(refiners=specs), data["store"], data["tmp"] / "m", data["root"])
    want = _expected(data["records"], list(specs), root=data["root"])
    got = _read_all(out, data["records"])
    for image_id in want:
        np.testing.assert_array_equal(got[image_id], want[image_id])


def test_bad_image_stops_or_is_skipped(data: dict, caplog: pytest.LogCaptureFixture) -> None:
    path = data["root"] / "JPEGImages" / "img2.png"
    Image.new("RGB", (10, 10)).save(path)  # not the size of its CAM record
    specs = ("gmm:input=cam+color",)
    with pytest.raises(BadInputError, match=r"img2.png: image is 10x10"):
        run(RefineConfig(refiners=specs), data["store"], data["tmp"] / "a", data["root"])
    out = run(RefineConfig(refiners=specs, skip_bad=True, workers=2, chunk_size=3),
              data["store"], data["tmp"] / "b", data["root"])
    assert not (out / "img2.png").exists()
    assert len(list(out.rglob("*.png"))) == len(data["records"]) - 1
    assert "img2" in caplog.text


def test_dataset_scope_fit_is_independent_of_workers_and_chunks(data: dict) -> None:
    specs = ("fusion", "gmm:scope=dataset,samples_per_image=64,max_fit_samples=200")
    a = run(RefineConfig(refiners=specs, save_scores=True), data["store"], data["tmp"] / "a")
    b = run(RefineConfig(refiners=specs, save_scores=True, workers=2, chunk_size=2),
            data["store"], data["tmp"] / "b")
    for r in data["records"]:
        sa = np.load(a / "scores" / (r["id"] + ".npz"))
        sb = np.load(b / "scores" / (r["id"] + ".npz"))
        np.testing.assert_array_equal(sa["scores"], sb["scores"])
    # The same fit by hand: every image's samples pooled, capped by the smallest random keys.
    chain = create_chain(specs)
    gmm = chain[1]
    pooled: dict[int, list] = {}
    for r in data["records"]:
        state = chain[0].refine(initial_state(r["cams"], "student/features", r["class_indices"],
                                              r["image_size"], image_id=r["id"]))
        rng = np.random.default_rng(__import__("zlib").crc32(r["id"].encode()))
        for c, v in gmm.fit_samples(state).items():
            pooled.setdefault(c, []).append((v, rng.random(len(v))))
    samples = {}
    for c, parts in pooled.items():
        v = np.concatenate([p[0] for p in parts])
        keys = np.concatenate([p[1] for p in parts])
        samples[c] = v[np.argsort(keys)[:200]]
    fitted = gmm.fit(samples)
    for r in data["records"]:
        state = chain[0].refine(initial_state(r["cams"], "student/features", r["class_indices"],
                                              r["image_size"], image_id=r["id"]))
        ref = fitted.refine(state).scores
        got = np.load(a / "scores" / (r["id"] + ".npz"))
        np.testing.assert_allclose(got["scores"].astype(np.float32), ref, atol=2e-3)
        assert got["values"].tolist() == [0, *(np.asarray(r["class_indices"]) + 1)]


def test_lock_key_and_store_errors(data: dict) -> None:
    out = data["tmp"] / "masks"
    with RunLock(out), pytest.raises(BadInputError, match="another run"):
        run(RefineConfig(), data["store"], out)
    with pytest.raises(BadInputError, match=r"CAM key 'nope'.*student/features"):
        run(RefineConfig(key="nope"), data["store"], out)
    with pytest.raises(BadInputError, match="does not exist"):
        run(RefineConfig(), data["tmp"] / "missing.h5", out)


def test_unsafe_id_never_leaves_the_output_folder(data: dict) -> None:
    records = _records(n=2)
    records[1]["id"] = "../evil"
    store = write_cam_store(data["tmp"] / "evil.h5", CLASSES, records)
    with pytest.raises(BadInputError, match="not a plain relative name"):
        run(RefineConfig(), store, data["tmp"] / "out")
    assert not (data["tmp"] / "evil.png").exists()


def test_cli(data: dict) -> None:
    runner = CliRunner()
    out = data["tmp"] / "cli"
    result = runner.invoke(cli, ["refine", str(data["store"]), "--out", str(out),
                                 "--refiner", "fusion:mode=mean", "--refiner", "gmm:lo=0.2",
                                 "--workers", "2"])
    assert result.exit_code == 0, result.output
    want = _expected(data["records"], ["fusion:mode=mean", "gmm:lo=0.2"])
    got = _read_all(out, data["records"])
    for image_id in want:
        np.testing.assert_array_equal(got[image_id], want[image_id])
    # The saved refine.yaml replays the same run through --config.
    again = runner.invoke(cli, ["refine", "--config", str(out / "refine.yaml"), "--out", str(out)])
    assert again.exit_code == 0, again.output
    for args, needle in (
        (["--refiner", "gmm:input=cam+color"], "--images"),
        (["--refiner", "nope"], "unknown refiner 'nope'"),
        (["--refiner", "threshold:t=x"], "expected a number"),
    ):
        bad = runner.invoke(cli, ["refine", str(data["store"]), "--out", str(data["tmp"] / "x"),
                                  *args])
        assert_one_line_error(bad, needle)
    missing = runner.invoke(cli, ["refine", "--out", str(out)])
    assert missing.exit_code == 2 and "CAMS" in missing.output
