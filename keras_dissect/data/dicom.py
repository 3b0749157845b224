"""Reading DICOM radiographs as gray images in [0, 1] with pydicom.

The pixel pipeline follows the DICOM grayscale display chain: stored values go
through the modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence),
then the VOI LUT (a VOI LUT Sequence, else Window Center/Width), then the result
is scaled to [0, 1] and inverted for MONOCHROME1, where low values are bright.
"""

import os
import pathlib
import warnings

import numpy as np
import pydicom
import pydicom.errors
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import apply_voi_lut
from pydicom.pixels import apply_windowing
from pydicom.pixels import get_decoder

from keras_dissect.data.errors import ImageDecodeError

# Detectors of chest radiographs are at most about 4300 x 4300 pixels, so a
# header claiming more than 8192 x 8192 is corrupt or not a radiograph, and
# decoding it could exhaust memory.
DEFAULT_MAX_PIXELS = 8192 * 8192

# ITU-R BT.601 luma weights, the ones Pillow uses to turn RGB into "L".
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

GRAYSCALE_INTERPRETATIONS = ("MONOCHROME1", "MONOCHROME2")
COLOR_INTERPRETATIONS = (
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "PALETTE COLOR",
)
PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
DICOM_EXTRA_HINT = (
    "install the DICOM decoders with `pip install 'keras-dissect[dicom]'` "
    "(pylibjpeg and pylibjpeg-libjpeg)"
)


def read_dicom_header(path):
    """Read the attributes of a DICOM file without its pixel data.

    Args:
        path: path of a DICOM file.

    Returns:
        A `pydicom.Dataset` without the pixel data element, for attributes such
        as `PatientID`.

    Raises:
        ImageDecodeError: the file is missing, empty or not DICOM.
    """
    return _read_dataset(path, stop_before_pixels=True)


def read_dicom(path, max_pixels=DEFAULT_MAX_PIXELS, frame=None):
    """Decode a DICOM radiograph into a gray float32 image in [0, 1].

    Grayscale images pass through the modality LUT and the VOI LUT (window)
    with pydicom. After a VOI transform the image is scaled by the transform's
    output range, so the window's clipping is kept. Without VOI attributes the
    image is scaled by its own minimum and maximum, which is what viewers do
    for such images. MONOCHROME1 images (and images whose Presentation LUT Shape
    is INVERSE) are inverted, so that bone is bright in every output. Colour
    images (RGB, YBR, PALETTE COLOR) become gray with the ITU-R BT.601 luma
    weights and are scaled by the maximum stored value.

    Args:
        path: path of a DICOM file.
        max_pixels: largest accepted `Rows * Columns * frames`. The header is
            checked before the pixel data is read or decoded.
        frame: index of the frame to read from a multi-frame image. `None`
            accepts single-frame images only.

    Returns:
        float32 array `(H, W)` in [0, 1].

    Raises:
        ImageDecodeError: the file is missing, empty, truncated, not DICOM,
            has no pixel data, claims implausible dimensions, has several
            frames and `frame` is `None`, or its compression has no installed
            decoder.
        ValueError: `max_pixels` or `frame` is invalid.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise ValueError(
            f"`max_pixels` must be a positive integer. Received: max_pixels={max_pixels!r}"
        )
    if max_pixels <= 0:
        raise ValueError(
            f"`max_pixels` must be a positive integer. Received: max_pixels={max_pixels}"
        )

    # Deferring large elements keeps the pixel data on disk until the header
    # has been checked.
    dataset = _read_dataset(path, defer_size="64 KB")
    frames = _check_header(dataset, path, max_pixels)
    frame = _check_frame(frame, frames, path)
    pixels = _decode_pixels(dataset, path, frame if frames > 1 else None)

    interpretation = str(dataset.PhotometricInterpretation).strip()
    if interpretation in GRAYSCALE_INTERPRETATIONS:
        image = _grayscale_to_unit_range(pixels, dataset, path)
    else:
        image = _color_to_unit_range(pixels, dataset, interpretation, path)

    if not np.isfinite(image).all():
        raise ImageDecodeError(
            f"DICOM file {path} decodes to non-finite values (NaN or infinity); "
            "check its Rescale Slope/Intercept and pixel data, or exclude the file."
        )
    return image.astype(np.float32)


def _read_dataset(path, **kwargs):
    path = pathlib.Path(os.fspath(path))
    if not path.exists():
        raise ImageDecodeError(
            f"DICOM file {path} was not found; check the path or re-download the file."
        )
    if not path.is_file():
        raise ImageDecodeError(f"DICOM path {path} is not a file.")
    if path.stat().st_size == 0:
        raise ImageDecodeError(
            f"DICOM file {path} is empty (0 bytes); re-download or re-copy it."
        )

    try:
        with warnings.catch_warnings():
            # pydicom warns about harmless deviations from the standard; a
            # file that cannot be read raises below.
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, **kwargs)
    except pydicom.errors.InvalidDicomError as error:
        raise ImageDecodeError(
            f"File {path} is not a DICOM file ({error}). Check that the file is "
            "a complete DICOM download and not another format."
        ) from error
    except (EOFError, OSError, ValueError, KeyError, TypeError) as error:
        raise ImageDecodeError(
            f"DICOM file {path} is truncated or corrupt and could not be parsed "
            f"({type(error).__name__}: {error}); re-download it."
        ) from error


def _check_header(dataset, path, max_pixels):
    """Validate the image attributes and return the number of frames."""
    if not any(keyword in dataset for keyword in PIXEL_DATA_KEYWORDS):
        raise ImageDecodeError(
            f"DICOM file {path} has no pixel data; it is not an image (for "
            "example a structured report) or it is truncated."
        )
    for keyword in ("Rows", "Columns", "PhotometricInterpretation"):
        if keyword not in dataset or dataset[keyword].value in (None, ""):
            raise ImageDecodeError(
                f"DICOM file {path} lacks the required attribute {keyword}; "
                "the file is corrupt or not an image."
            )

    rows, columns = int(dataset.Rows), int(dataset.Columns)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if rows <= 0 or columns <= 0 or frames <= 0:
        raise ImageDecodeError(
            f"DICOM file {path} declares an empty image: Rows={rows}, "
            f"Columns={columns}, NumberOfFrames={frames}."
        )
    if rows * columns * frames > max_pixels:
        raise ImageDecodeError(
            f"DICOM file {path} declares {rows}x{columns} pixels x {frames} "
            f"frame(s), more than max_pixels={max_pixels}. The header is "
            "probably corrupt; raise `max_pixels` only if the image is genuine."
        )

    interpretation = str(dataset.PhotometricInterpretation).strip()
    if interpretation not in GRAYSCALE_INTERPRETATIONS + COLOR_INTERPRETATIONS:
        raise ImageDecodeError(
            f"DICOM file {path} has the unsupported Photometric Interpretation "
            f"{interpretation!r}; expected one of "
            f"{GRAYSCALE_INTERPRETATIONS + COLOR_INTERPRETATIONS}."
        )
    return frames


def _check_frame(frame, frames, path):
    if frame is None:
        if frames > 1:
            raise ImageDecodeError(
                f"DICOM file {path} has {frames} frames; a radiograph has one. "
                "Pass `frame=` to pick one of them."
            )
        return 0
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise ValueError(f"`frame` must be an integer or None. Received: frame={frame!r}")
    if not 0 <= frame < frames:
        raise ValueError(
            f"`frame` must be in [0, {frames}) for DICOM file {path}. "
            f"Received: frame={frame}"
        )
    return int(frame)


def _decode_pixels(dataset, path, frame):
    transfer_syntax = dataset.file_meta.get("TransferSyntaxUID")
    if transfer_syntax is not None and transfer_syntax.is_compressed:
        try:
            decoder = get_decoder(transfer_syntax)
        except NotImplementedError:
            raise ImageDecodeError(
                f"DICOM file {path} uses the transfer syntax "
                f"{transfer_syntax.name!r}, which pydicom cannot decode."
            ) from None
        if not decoder.is_available:
            raise ImageDecodeError(
                f"DICOM file {path} is compressed as {transfer_syntax.name!r} and "
                f"no decoder for it is installed: {DICOM_EXTRA_HINT}, or one of "
                f"{decoder.missing_dependencies}."
            )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if frame is None:
                return dataset.pixel_array
            return pydicom.pixels.pixel_array(dataset, index=frame)
    except Exception as error:
        # Decoders raise many exception types (ValueError, RuntimeError,
        # OSError, struct.error) for truncated or corrupt pixel data.
        raise ImageDecodeError(
            f"Pixel data of DICOM file {path} could not be decoded "
            f"({type(error).__name__}: {error}). The file is truncated or "
            "corrupt; re-download it."
        ) from error


def _grayscale_to_unit_range(pixels, dataset, path):
    if pixels.ndim != 2:
        raise ImageDecodeError(
            f"DICOM file {path} is grayscale but decodes to shape "
            f"{pixels.shape}; expected (Rows, Columns)."
        )
    values = apply_modality_lut(pixels, dataset)

    # The VOI transform's output range is known from its attributes, so the
    # scale to [0, 1] keeps the window: pixels below it become 0, above it 1.
    low, high = _voi_output_range(dataset)
    if low is None:
        values = np.asarray(values, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
    else:
        with warnings.catch_warnings():
            # pydicom warns when a VOI LUT indexes float values from a rescale;
            # it rounds them to the LUT's integer input, as the standard does.
            warnings.simplefilter("ignore")
            values = apply_voi_lut(values, dataset)
        values = np.asarray(values, dtype=np.float64)
    image = _scale(values, low, high)

    inverted = str(dataset.PhotometricInterpretation).strip() == "MONOCHROME1"
    if str(dataset.get("PresentationLUTShape", "")).strip().upper() == "INVERSE":
        # In DX images a MONOCHROME1 image carries INVERSE as a restatement of
        # the same inversion, so the two do not cancel out.
        inverted = True
    return 1.0 - image if inverted else image


def _voi_output_range(dataset):
    """Return `(low, high)` output values of the VOI transform, or `(None, None)`."""
    sequence = dataset.get("VOILUTSequence")
    if sequence:
        item = sequence[0]
        descriptor = item.get("LUTDescriptor")
        if descriptor is not None and item.get("LUTData") is not None:
            # The third descriptor value is the bit depth of the LUT entries.
            return 0.0, float(2 ** int(descriptor[2]) - 1)

    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        # Windowing maps values below the window to its minimum output and
        # values above it to its maximum, so the extremes give the range.
        with np.errstate(over="ignore"):
            ends = apply_windowing(np.array([-np.inf, np.inf]), dataset)
        return float(np.min(ends)), float(np.max(ends))
    return None, None


def _color_to_unit_range(pixels, dataset, interpretation, path):
    if interpretation == "PALETTE COLOR":
        pixels = pydicom.pixels.apply_color_lut(pixels, dataset)

        # Palette entries are 16 bits wide whatever the stored depth.
        max_value = float(np.iinfo(pixels.dtype).max)
    else:
        max_value = float(2 ** int(dataset.get("BitsStored", 8)) - 1)

    # pydicom returns YBR pixel data converted to RGB by default.
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ImageDecodeError(
            f"DICOM file {path} is {interpretation} but decodes to "
            f"shape {pixels.shape}; expected (Rows, Columns, 3)."
        )
    gray = pixels.astype(np.float64) @ np.array(LUMA_WEIGHTS)
    return _scale(gray, 0.0, max_value)


def _scale(values, low, high):
    if high <= low:
        # A constant image carries no contrast; it maps to 0 instead of NaN.
        return np.zeros(values.shape, dtype=np.float64)
    return np.clip((values - low) / (high - low), 0.0, 1.0)
