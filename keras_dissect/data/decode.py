"""Decode chest X-ray image files (PNG, JPEG, DICOM) to one gray channel."""

import pathlib
import struct
import zlib

import numpy as np
from PIL import Image

from keras_dissect.data.errors import ImageDecodeError

# The largest chest radiographs are roughly 4,300 x 3,500 pixels, so a header
# that claims more than 8192 x 8192 pixels is far more likely a corrupt or
# hostile file than an X-ray, and decoding it could exhaust memory.
DEFAULT_MAX_PIXELS = 8192 * 8192

DICOM_SUFFIXES = (".dcm", ".dicom")
# A DICOM Part 10 file has a 128-byte preamble followed by these four bytes.
DICOM_MAGIC = b"DICM"
DICOM_MAGIC_OFFSET = 128

# ITU-R BT.601 luma weights, the ones Pillow uses for RGB -> L.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Errors that Pillow and zlib raise for truncated or corrupt files.
_DECODE_FAILURES = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Read a PNG, JPEG or DICOM file as one gray channel.

    PNG and JPEG files in modes `1`, `L`, `LA`, `P`, `PA`, `RGB`, `RGBA`, `I`,
    `I;16` and `F` are accepted. Colour images whose channels are equal (as
    some NIH ChestX-ray14 files stored as RGBA are) give that channel exactly,
    others their BT.601 luminance. The alpha channel is ignored, because a
    radiograph carries no transparency. DICOM files (suffix `.dcm`/`.dicom`
    or the `DICM` marker) are read by `keras_dissect.data.dicom.read_dicom`.

    Args:
        path: path of the image file.
        max_pixels: maximum number of pixels (height times width) accepted.
            The size stored in the file's header is checked before the pixel
            data are decoded, so an absurd header cannot exhaust memory.

    Returns:
        A float32 NumPy array of shape `(H, W)` with values in `[0, 1]`.

    Raises:
        ImageDecodeError: when the file is missing, empty, truncated, corrupt,
            larger than `max_pixels`, or of an unsupported kind.
    """
    path = pathlib.Path(path)
    _check_file(path)
    if _is_dicom(path):
        # Imported here so that PNG-only users do not pay for pydicom.
        from keras_dissect.data.dicom import read_dicom

        return read_dicom(path, max_pixels=max_pixels)
    return _read_pillow_image(path, max_pixels)


def _check_file(path):
    if not path.exists():
        raise ImageDecodeError(
            f"Image file {path} does not exist. Check that the dataset was "
            "extracted completely into the expected folder."
        )
    if not path.is_file():
        raise ImageDecodeError(
            f"Image path {path} is not a regular file. Point to the image "
            "file itself."
        )
    if path.stat().st_size == 0:
        raise ImageDecodeError(
            f"Image file {path} is empty (0 bytes). Download or extract it "
            "again."
        )


def _is_dicom(path):
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as file:
        file.seek(DICOM_MAGIC_OFFSET)
        return file.read(len(DICOM_MAGIC)) == DICOM_MAGIC


def _read_pillow_image(path, max_pixels):
    try:
        image = Image.open(path)
    except Image.UnidentifiedImageError as error:
        raise ImageDecodeError(
            f"Image file {path} is not a readable PNG, JPEG or DICOM file "
            f"({error}). Download or extract it again."
        ) from error
    except _DECODE_FAILURES as error:
        raise ImageDecodeError(
            f"Failed to read the header of image file {path} ({error}). "
            "Download or extract it again."
        ) from error

    with image:
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise ImageDecodeError(
                f"Image file {path} claims a size of {width} x {height} "
                f"pixels, outside the accepted range of 1 to {max_pixels} "
                "pixels. The file is probably corrupt; if it really is that "
                "large, pass a larger `max_pixels`."
            )
        try:
            image.load()
        except _DECODE_FAILURES as error:
            raise ImageDecodeError(
                f"Image file {path} is truncated or corrupt ({error}). "
                "Download or extract it again."
            ) from error
        return _to_gray(image, path)


def _to_gray(image, path):
    mode = image.mode
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
        mode = image.mode
    if mode == "CMYK":
        image = image.convert("RGB")
        mode = image.mode

    if mode == "1":
        return np.asarray(image, dtype=np.float32)
    if mode in ("L", "LA", "RGB", "RGBA"):
        pixels = np.asarray(image, dtype=np.uint8)
        return _collapse_channels(pixels).astype(np.float32) / np.float32(255)
    if mode.startswith("I;16"):
        # NOTE: Pillow does not read the PNG sBIT chunk, so a 12-bit image
        # stored in 16 bits is scaled by 65535 and comes out dark.
        pixels = np.asarray(image).astype(np.float32)
        return pixels / np.float32(np.iinfo(np.uint16).max)
    if mode in ("I", "F"):
        return _rescale_wide(np.asarray(image).astype(np.float64), path)
    raise ImageDecodeError(
        f"Image file {path} has the unsupported pixel mode {mode!r}. Convert "
        "it to 8- or 16-bit grayscale PNG."
    )


def _collapse_channels(pixels):
    """Reduce `(H, W)`, `(H, W, 2)`, `(H, W, 3)` or `(H, W, 4)` to `(H, W)`."""
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[-1] == 2:
        return pixels[..., 0]
    color = pixels[..., :3]
    if np.array_equal(color[..., 0], color[..., 1]) and np.array_equal(
        color[..., 0], color[..., 2]
    ):
        return color[..., 0]
    luminance = color.astype(np.float32) @ LUMA_WEIGHTS
    return np.clip(np.round(luminance), 0, 255)


def _rescale_wide(pixels, path):
    # 32-bit integer images are usually 16-bit data that Pillow widened, so
    # values inside the 16-bit range keep that scale. Other values have no
    # known full scale and are min-max scaled.
    low, high = float(pixels.min()), float(pixels.max())
    if not np.isfinite([low, high]).all():
        raise ImageDecodeError(
            f"Image file {path} contains non-finite pixel values. Re-export "
            "it as 8- or 16-bit grayscale PNG."
        )
    if low >= 0 and high <= np.iinfo(np.uint16).max:
        return (pixels / np.iinfo(np.uint16).max).astype(np.float32)
    if high == low:
        return np.zeros(pixels.shape, dtype=np.float32)
    return ((pixels - low) / (high - low)).astype(np.float32)
