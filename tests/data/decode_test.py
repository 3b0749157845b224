import io
import sys
import types

import numpy as np
import pytest
from PIL import Image

from keras_dissect import testing
from keras_dissect.data import decode
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect.data.errors import ImageDecodeError
from keras_dissect.data.paths import resolve_manual_path

pytestmark = pytest.mark.backend_independent


def _gray_ramp(height=6, width=5):
    return (np.arange(height * width, dtype=np.uint8) * 7).reshape(height, width)


def _save(tmp_path, name, array, mode=None, **kwargs):
    path = tmp_path / name
    Image.fromarray(array, mode=mode).save(path, **kwargs)
    return path


def test_png_8bit_gray(tmp_path):
    pixels = _gray_ramp()
    image = decode.read_image(_save(tmp_path, "gray.png", pixels))
    assert image.shape == (6, 5)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, pixels.astype(np.float32) / 255)


def test_png_16bit_gray(tmp_path):
    pixels = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    image = decode.read_image(_save(tmp_path, "wide.png", pixels))
    np.testing.assert_allclose(image, pixels / 65535.0, rtol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_equal_channels_give_that_channel(tmp_path, mode):
    gray = _gray_ramp()
    channels = {"RGB": 3, "RGBA": 4, "LA": 2}[mode]
    stacked = np.stack([gray] * channels, axis=-1)
    stacked[..., -1] = 255 if mode != "RGB" else gray
    image = decode.read_image(_save(tmp_path, f"{mode}.png", stacked))
    np.testing.assert_array_equal(image, gray.astype(np.float32) / 255)


def test_colored_rgb_gives_luminance(tmp_path):
    pixels = np.zeros((2, 3, 3), dtype=np.uint8)
    pixels[0, :, 0] = 200
    pixels[1, :, 2] = 100
    image = decode.read_image(_save(tmp_path, "color.png", pixels))
    # BT.601: 0.299 * 200 = 59.8 -> 60 and 0.114 * 100 = 11.4 -> 11.
    np.testing.assert_array_equal(image[0], np.full(3, 60 / 255, np.float32))
    np.testing.assert_array_equal(image[1], np.full(3, 11 / 255, np.float32))


def test_palette_png(tmp_path):
    gray = _gray_ramp()
    path = tmp_path / "palette.png"
    Image.fromarray(np.stack([gray] * 3, -1)).convert("P").save(path)
    expected = np.asarray(Image.open(path).convert("L"), np.float32) / 255
    np.testing.assert_array_equal(decode.read_image(path), expected)


def test_jpeg_gray(tmp_path):
    flat = np.full((16, 16), 128, dtype=np.uint8)
    image = decode.read_image(_save(tmp_path, "flat.jpg", flat, quality=95))
    # A flat JPEG decodes to its value up to rounding in the DCT (+-1 level).
    np.testing.assert_allclose(image, 128 / 255, atol=1.5 / 255)


def test_absurd_header_rejected_before_decoding(tmp_path):
    path = _save(tmp_path, "big.png", np.zeros((64, 64), np.uint8))
    with pytest.raises(ImageDecodeError, match="big.png.*64 x 64.*max_pixels"):
        decode.read_image(path, max_pixels=64 * 63)


def test_forged_header_dimensions(tmp_path):
    # A PNG whose IHDR claims 100000 x 100000 pixels but contains a tiny image.
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = (100000).to_bytes(4, "big") * 2
    path = tmp_path / "forged.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageDecodeError, match="forged.png"):
        decode.read_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty.png.*0 bytes"):
        decode.read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="absent.png.*does not exist"):
        decode.read_image(tmp_path / "absent.png")


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    path = _save(tmp_path, "cut.png", noise)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageDecodeError, match="cut.png.*truncated or corrupt"):
        decode.read_image(path)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.png"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageDecodeError, match="garbage.png.*not a readable"):
        decode.read_image(path)


def test_dicom_dispatch(tmp_path, monkeypatch):
    calls = []

    def fake_read_dicom(path, max_pixels):
        calls.append((path.name, max_pixels))
        return np.zeros((2, 2), np.float32)

    fake_module = types.ModuleType("keras_dissect.data.dicom")
    fake_module.read_dicom = fake_read_dicom
    monkeypatch.setitem(sys.modules, "keras_dissect.data.dicom", fake_module)
    path = tmp_path / "scan.DCM"
    path.write_bytes(b"\0" * 200)
    decode.read_image(path, max_pixels=99)
    assert calls == [("scan.DCM", 99)]


def test_real_nih_rgba_and_gray_originals():
    images = testing.data_path("nih-chestxray14-sample", "images")
    rgba = images / "00000100_000.png"
    gray = images / "00000002_000.png"
    assert Image.open(rgba).mode == "RGBA"
    for path in (rgba, gray):
        image = decode.read_image(path)
        assert image.shape == (1024, 1024)
        assert image.dtype == np.float32
        assert image.min() >= 0.0
        assert image.max() <= 1.0
    expected = np.asarray(Image.open(rgba))[..., 0].astype(np.float32) / 255
    np.testing.assert_array_equal(decode.read_image(rgba), expected)


def test_resolve_manual_path_inside(tmp_path):
    resolved = resolve_manual_path(tmp_path, "train/a/../b.png")
    assert resolved == tmp_path / "train" / "b.png"
    resolved = resolve_manual_path(tmp_path, "train\\c.png")
    assert resolved == tmp_path / "train" / "c.png"


@pytest.mark.parametrize(
    "bad_path", ["../outside.png", "a/../../x.png", "/etc/passwd", "C:\\x.png", ""]
)
def test_resolve_manual_path_rejects(tmp_path, bad_path):
    with pytest.raises(DatasetLayoutError, match="row 3"):
        resolve_manual_path(tmp_path, bad_path, source="labels.csv, row 3")
