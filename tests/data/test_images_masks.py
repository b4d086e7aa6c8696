"""Image decoding of every common mode (pixel values against a reference) and mask I/O."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pseudolabel.data import IGNORE, image_size, load_image, read_mask, voc_palette, write_mask
from pseudolabel.errors import BadInputError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def test_rgb_png_is_exact_and_writable(tmp_path) -> None:
    Image.fromarray(RGB).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out, RGB)
    assert out.dtype == np.uint8 and out.flags.writeable


def test_grayscale_palette_and_cmyk(tmp_path) -> None:
    gray = RGB[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), np.repeat(gray[..., None], 3, 2))

    idx = RNG.integers(0, 4, (5, 7), dtype=np.uint8)
    pal = np.array([[10, 20, 30], [200, 0, 0], [0, 250, 0], [1, 2, 3]], np.uint8)
    img = Image.fromarray(idx, "P")
    img.putpalette(pal.reshape(-1).tolist())
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), pal[idx])
    img.save(tmp_path / "pt.png", transparency=1)  # index 1 transparent -> black
    expected = pal[idx].copy()
    expected[idx == 1] = 0
    np.testing.assert_array_equal(load_image(tmp_path / "pt.png"), expected)

    cmyk = np.zeros((2, 3, 4), np.uint8)
    cmyk[0, 1, 3] = 255  # K: black
    cmyk[0, 2, 0] = 255  # C: cyan
    cmyk[1, 0, 1] = 255  # M: magenta
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
    out = load_image(tmp_path / "c.tif")
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(out[0, 1], [0, 0, 0])
    np.testing.assert_array_equal(out[0, 2], [0, 255, 255])
    np.testing.assert_array_equal(out[1, 0], [255, 0, 255])


def test_alpha_is_composited_on_black(tmp_path) -> None:
    alpha = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(np.dstack([RGB, alpha]), "RGBA").save(tmp_path / "a.png")
    expected = RGB.astype(float) * alpha[..., None] / 255.0
    np.testing.assert_allclose(load_image(tmp_path / "a.png"), expected, atol=1.0)
    la = np.dstack([RGB[..., 0], alpha])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    expected = np.repeat((RGB[..., 0].astype(float) * alpha / 255.0)[..., None], 3, 2)
    np.testing.assert_allclose(load_image(tmp_path / "la.png"), expected, atol=1.0)


def test_16_bit_grayscale_is_scaled_to_8_bit(tmp_path) -> None:
    arr = np.array([[0, 257, 32768, 65535]], np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    assert out.shape == (1, 4, 3)


@pytest.mark.parametrize("orientation,rotate", [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation: int, rotate: int) -> None:
    img = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "r.png", exif=exif.tobytes())
    expected = np.rot90(RGB, k=rotate)
    np.testing.assert_array_equal(load_image(tmp_path / "r.png"), expected)
    assert image_size(tmp_path / "r.png") == expected.shape[:2]


def test_broken_files_name_the_file(tmp_path) -> None:
    Image.fromarray(RGB).save(tmp_path / "ok.jpg", quality=95)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not an image\n")
    Image.fromarray(RGB).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    for name in ("truncated.jpg", "empty.jpg", "text.jpg", "cut.png", "missing.jpg"):
        with pytest.raises(BadInputError) as info:
            load_image(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: "), info.value
        assert "\n" not in str(info.value)
    for name in ("empty.jpg", "text.jpg", "missing.jpg"):
        with pytest.raises(BadInputError, match=name):
            image_size(tmp_path / name)


def test_decompression_bomb_is_a_bad_input_error(tmp_path, monkeypatch) -> None:
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "warn.png")
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144 px: warning; 900 px: error
    for name in ("warn.png", "bomb.png"):
        with pytest.raises(BadInputError, match=rf"{name}: image is larger than PIL's"):
            load_image(tmp_path / name)
    with pytest.raises(BadInputError, match="decompression-bomb"):
        image_size(tmp_path / "bomb.png")


def test_voc_palette_known_entries() -> None:
    pal = voc_palette()
    assert pal.shape == (256, 3)
    assert pal[0].tolist() == [0, 0, 0] and pal[1].tolist() == [128, 0, 0]
    assert pal[2].tolist() == [0, 128, 0] and pal[15].tolist() == [192, 128, 128]
    assert pal[255].tolist() == [224, 224, 192]


def test_mask_round_trip_as_voc_palette_png(tmp_path) -> None:
    mask = RNG.integers(0, 4, (6, 9), dtype=np.uint8)
    mask[0, :3] = IGNORE
    write_mask(tmp_path / "sub" / "m.png", mask)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["m.png"]  # no temp left
    with Image.open(tmp_path / "sub" / "m.png") as img:
        assert img.mode == "P"
        assert img.getpalette()[3:6] == [128, 0, 0]
    out = read_mask(tmp_path / "sub" / "m.png")
    np.testing.assert_array_equal(out, mask)
    assert out.flags.writeable
    with pytest.raises(ValueError):
        write_mask(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8))


def test_grayscale_and_16_bit_masks(tmp_path) -> None:
    mask = np.array([[0, 1, 2, 255]], np.uint8)
    Image.fromarray(mask, "L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "l.png"), mask)
    Image.fromarray(mask.astype(np.uint16)).save(tmp_path / "i16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "i16.png"), mask)
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "big.png")
    with pytest.raises(BadInputError, match=r"big\.png: 16-bit mask holds values above 255"):
        read_mask(tmp_path / "big.png")
    Image.fromarray(RGB).save(tmp_path / "rgb.png")
    with pytest.raises(BadInputError, match=r"rgb\.png: mask has colour mode RGB"):
        read_mask(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG junk")
    with pytest.raises(BadInputError, match=r"bad\.png"):
        read_mask(tmp_path / "bad.png")
    with pytest.raises(BadInputError, match=r"none\.png: mask file is missing"):
        read_mask(tmp_path / "none.png")
