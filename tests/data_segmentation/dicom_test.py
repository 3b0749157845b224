"""Tests for keras_dissect.data.dicom on the real SIIM-ACR file and synthetic DICOMs."""

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.uid import SecondaryCaptureImageStorage
from pydicom.uid import generate_uid

from keras_dissect import testing
from keras_dissect.data.dicom import read_dicom
from keras_dissect.data.dicom import read_dicom_header
from keras_dissect.data.errors import ImageDecodeError

pytestmark = pytest.mark.backend_independent

BITS_STORED = 12
# A horizontal ramp over the 12-bit range, 64 values per row.
RAMP = np.tile(np.arange(0, 2**BITS_STORED, 64, dtype=np.uint16), (4, 1))


def write_dicom(path, pixels, photometric="MONOCHROME2", bits_stored=BITS_STORED, **attributes):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientID = "patient-1"
    dataset.Modality = "CR"
    dataset.set_pixel_data(pixels, photometric, bits_stored)
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.save_as(path, enforce_file_format=True)
    return path


def siim_dicom_path():
    folder = testing.data_path("siim-acr-sample", "dicom-images-train")
    paths = sorted(folder.rglob("*.dcm"))
    assert len(paths) == 1
    return paths[0]


def test_real_siim_jpeg_dicom_decodes():
    path = siim_dicom_path()
    image = read_dicom(path)

    assert image.shape == (1024, 1024)
    assert image.dtype == np.float32
    assert image.min() >= 0.0
    assert image.max() <= 1.0
    # The file stores 8-bit values 0..255 without VOI attributes, so the
    # min-max scaling must reach both ends.
    assert image.min() == 0.0
    assert image.max() == 1.0
    assert 0.1 < image.std() < 0.45

    # A PA radiograph in MONOCHROME2: the mediastinum (central band) is
    # brighter than the lung fields on either side of it.
    middle_rows = slice(300, 700)
    mediastinum = image[middle_rows, 450:575].mean()
    right_lung = image[middle_rows, 200:350].mean()
    left_lung = image[middle_rows, 675:825].mean()
    assert mediastinum > right_lung + 0.1
    assert mediastinum > left_lung + 0.1


def test_real_siim_header_patient_id():
    header = read_dicom_header(siim_dicom_path())
    assert header.PatientID == "16d7f894-55d7-4d95-8957-d18987f0e981"
    assert "PixelData" not in header


def test_monochrome2_scaled_by_min_max(tmp_path):
    image = read_dicom(write_dicom(tmp_path / "m2.dcm", RAMP))
    expected = RAMP.astype(np.float64) / RAMP.max()
    # float32 output: its rounding is below 1e-6 on [0, 1].
    np.testing.assert_allclose(image, expected, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path):
    monochrome2 = read_dicom(write_dicom(tmp_path / "m2.dcm", RAMP))
    monochrome1 = read_dicom(write_dicom(tmp_path / "m1.dcm", RAMP, "MONOCHROME1"))
    np.testing.assert_allclose(monochrome1, 1.0 - monochrome2, atol=1e-6)
    assert monochrome1[0, 0] == 1.0
    assert monochrome1[0, -1] == 0.0


def test_window_applied(tmp_path):
    center, width = 2048, 1024
    path = write_dicom(tmp_path / "window.dcm", RAMP, WindowCenter=center, WindowWidth=width)
    image = read_dicom(path)

    # DICOM LINEAR windowing (PS3.3 C.11.2.1.2.1), written out independently.
    values = RAMP.astype(np.float64)
    expected = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(image, expected, atol=1e-6)
    assert (image == 0.0).sum() > 0
    assert (image == 1.0).sum() > 0


def test_rescale_then_window(tmp_path):
    slope, intercept, center, width = 2.0, -1000.0, 3000.0, 2000.0
    path = write_dicom(
        tmp_path / "rescale.dcm",
        RAMP,
        RescaleSlope=slope,
        RescaleIntercept=intercept,
        WindowCenter=center,
        WindowWidth=width,
    )
    image = read_dicom(path)

    modality = RAMP.astype(np.float64) * slope + intercept
    expected = np.clip((modality - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(image, expected, atol=1e-6)


def test_voi_lut_sequence_applied(tmp_path):
    # A 256-entry LUT mapping input v to 255 - v over inputs 0..255, 8-bit output.
    pixels = np.tile(np.arange(0, 256, 8, dtype=np.uint16), (2, 1))
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new("LUTData", "US", list(range(255, -1, -1)))
    path = write_dicom(tmp_path / "lut.dcm", pixels, bits_stored=8, VOILUTSequence=[item])
    image = read_dicom(path)
    np.testing.assert_allclose(image, (255.0 - pixels) / 255.0, atol=1e-6)


def test_rgb_converted_to_luma(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(6, 5, 3)).astype(np.uint8)
    image = read_dicom(write_dicom(tmp_path / "rgb.dcm", pixels, "RGB", 8))
    expected = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    np.testing.assert_allclose(image, expected, atol=1e-6)


def test_multiframe_needs_frame(tmp_path):
    frames = np.stack([RAMP, RAMP[:, ::-1]])
    path = write_dicom(tmp_path / "frames.dcm", frames)
    with pytest.raises(ImageDecodeError, match="has 2 frames"):
        read_dicom(path)
    np.testing.assert_allclose(read_dicom(path, frame=1), read_dicom(path, frame=0)[:, ::-1])
    with pytest.raises(ValueError, match="Received: frame=2"):
        read_dicom(path, frame=2)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"empty\.dcm is empty \(0 bytes\)"):
        read_dicom(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match=r"absent\.dcm was not found"):
        read_dicom(tmp_path / "absent.dcm")


def test_non_dicom_file(tmp_path):
    path = tmp_path / "image.dcm"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    with pytest.raises(ImageDecodeError, match=r"image\.dcm is not a DICOM file"):
        read_dicom(path)


def test_truncated_pixel_data(tmp_path):
    data = write_dicom(tmp_path / "full.dcm", RAMP).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-100])
    with pytest.raises(ImageDecodeError, match=r"cut\.dcm could not be decoded"):
        read_dicom(path)


def test_truncated_real_jpeg_dicom(tmp_path):
    data = siim_dicom_path().read_bytes()
    path = tmp_path / "half.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"half\.dcm .*truncated"):
        read_dicom(path)


def test_absurd_dimensions_rejected_before_decoding(tmp_path):
    path = write_dicom(tmp_path / "huge.dcm", RAMP)
    dataset = pydicom.dcmread(path)
    dataset.Rows = 60000
    dataset.Columns = 60000
    dataset.save_as(path)
    # The pixel data no longer matches the header, so reaching the decoder
    # would raise "could not be decoded" instead of the size message.
    with pytest.raises(ImageDecodeError, match=r"huge\.dcm declares 60000x60000"):
        read_dicom(path)
    with pytest.raises(ImageDecodeError, match="more than max_pixels=8"):
        read_dicom(write_dicom(tmp_path / "small.dcm", RAMP), max_pixels=8)


def test_invalid_max_pixels(tmp_path):
    path = write_dicom(tmp_path / "ramp.dcm", RAMP)
    with pytest.raises(ValueError, match="Received: max_pixels=0"):
        read_dicom(path, max_pixels=0)
