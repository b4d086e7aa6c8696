"""The bad-input corpus (corpus.py) against every command that reads each input.

Refused input: exit 2, exactly one 'error:' line naming the file and a fix, no traceback,
nothing written outside the output folder and no earlier file changed. Odd but valid input
(CMYK, 16-bit, grayscale, RGBA, palette, EXIF-rotated, huge): every command works. With
--skip-bad the other images are processed and the bad one is named in the log.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from corpus import EXIF_SIZE, KINDS, Case
from harness import TINY_CAMS, TINY_TRAIN, invoke
from PIL import Image

from pseudolabel.store import CamStore

from cli_helpers import assert_one_line_error

PIL_LIMIT = Image.MAX_IMAGE_PIXELS  # the decompression-bomb guard must stay as it is

# (kind, command) pairs that fail for a bug in the stage's code: none open
SKIP_BUGS: dict[tuple[str, str], str] = {}
# inspect checks image headers only: a file truncated after its header is not its business
HEADER_OK = {"truncated_jpeg", "truncated_png"}


@pytest.fixture
def case(tmp_path: Path, rel_root: Path, rel_run: Path, rel_cams: Path, rel_masks: Path) -> Case:
    inputs = tmp_path / "in"
    shutil.copytree(rel_root, inputs / "data")
    shutil.copytree(rel_run, inputs / "run", ignore=shutil.ignore_patterns("last.pt", "*.png"))
    shutil.copy(rel_cams, inputs / "cams.h5")
    shutil.copytree(rel_masks, inputs / "masks")
    train = (rel_root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    return Case(inputs / "data", inputs / "cams.h5", inputs / "run", train[0])


def _args(command: str, c: Case, out: Path) -> list[object]:
    return {
        "inspect": ["inspect", c.root, "--split", "train"],
        "train": ["train", c.root, "--out", out / "run", *TINY_TRAIN],
        "make-cams": ["make-cams", c.root, "--model", c.run, "--out", out / "cams.h5",
                      *TINY_CAMS],
        "evaluate": ["evaluate", c.root.parent / "masks", "--gt", c.root, "--split", "train",
                     "--json", out / "eval.json"],
        "refine": ["refine", c.cams, "--out", out / "masks"],
    }[command]


def _snapshot(folder: Path, skip: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and skip not in p.parents}


def _cases() -> list:
    return [pytest.param(kind, command, id=f"{kind}-{command}")
            for kind, (_, commands, _) in KINDS.items() for command in commands]


@pytest.mark.parametrize(("kind", "command"), _cases())
def test_corpus(kind: str, command: str, case: Case, tmp_path: Path) -> None:
    make, _, expected = KINDS[kind]
    needle = make(case)
    out = tmp_path / "out"
    before = _snapshot(tmp_path, out)
    result = invoke(*_args(command, case, out))
    text = result.output
    assert "Traceback" not in text, text
    assert _snapshot(tmp_path, out) == before, "files outside the output folder changed"
    assert Image.MAX_IMAGE_PIXELS == PIL_LIMIT is not None
    if expected == "work" or (expected == "either" and result.exit_code == 0):
        assert result.exit_code == 0, text
        if command == "make-cams":
            _check_store(out / "cams.h5", case, kind)
    elif command == "inspect" and "problems:" in text:  # the data set could be read
        assert needle in text or kind in HEADER_OK, f"inspect did not report {needle}: {text}"
        # exit 2 exactly when a problem would stop train (listed under "errors")
        assert result.exit_code == (2 if "\nerrors (" in text else 0), text
    else:
        line = assert_one_line_error(result, needle)
        assert "fix:" in line, line


def _check_store(path: Path, c: Case, kind: str) -> None:
    sizes = {"exif_rotated": EXIF_SIZE, "huge_image": (700, 900), "one_pixel": (1, 1)}
    with CamStore.open(path) as store:
        assert c.victim in store
        rec = store.read(c.victim)
        assert tuple(rec.image_size) == sizes.get(kind, (48, 48)), (kind, rec.image_size)


SKIPPABLE = ["truncated_jpeg", "zero_byte", "text_as_jpg", "decompression_bomb",
             "unknown_class", "label_without_image", "dotdot_id"]


def _skip_cases() -> list:
    return [pytest.param(kind, command, id=f"{kind}-{command}",
                         marks=[pytest.mark.xfail(strict=True, reason=SKIP_BUGS[kind, command])]
                         if (kind, command) in SKIP_BUGS else [])
            for kind in SKIPPABLE for command in ("train", "make-cams")]


@pytest.mark.parametrize(("kind", "command"), _skip_cases())
def test_skip_bad_goes_on_and_names_the_file(kind: str, command: str, case: Case,
                                             tmp_path: Path) -> None:
    make = KINDS[kind][0]
    needle = make(case)
    out = tmp_path / "out"
    result = invoke(*_args(command, case, out), "--skip-bad")
    assert result.exit_code == 0, result.output
    assert needle in result.output, result.output
    if command == "make-cams":
        train = (case.root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
        with CamStore.open(out / "cams.h5") as store:
            ids = set(store.ids())
        good = {i for i in train if i != case.victim or kind not in
                ("truncated_jpeg", "zero_byte", "text_as_jpg", "decompression_bomb")}
        good -= {"extra", "ghost", "../../etc/passwd"}
        assert good <= ids and not ids & {"extra", "ghost"}
        if kind in ("truncated_jpeg", "zero_byte", "text_as_jpg", "decompression_bomb"):
            assert case.victim not in ids
    else:
        assert (out / "run" / "student.pt").is_file()
