"""Write the fake SIIM-ACR files in dummy_data/ (run from any folder).

The files follow the Kaggle layout: `train-rle.csv` with its shipped header
and small uncompressed DICOMs in `dicom-images-train/<study>/<series>/<id>.dcm`.
Masks are run-length encoded relative to the fake 32 x 32 images.
"""

import pathlib

import numpy as np
from pydicom.dataset import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.uid import SecondaryCaptureImageStorage

from keras_dissect.data.rle import rle_encode

DUMMY_DIR = pathlib.Path(__file__).resolve().parent / "dummy_data"
IMAGE_SIZE = 32
UID_ROOT = "1.2.826.0.1.3680043.10.999."
# (image id suffix, patient, list of mask rectangles (row0, row1, col0, col1)
# each written as its own CSV row; an empty list is written as -1).
IMAGES = [
    ("1", "patient-a", []),
    ("2", "patient-a", [(4, 10, 3, 8)]),
    ("3", "patient-b", [(5, 9, 20, 26), (15, 20, 22, 28)]),
    ("4", "patient-c", []),
    ("5", "patient-d", [(2, 12, 2, 6)]),
    ("6", "patient-e", []),
    ("7", "patient-f", []),
    ("8", "patient-g", [(10, 14, 10, 14)]),
    ("9", "patient-g", []),
    ("10", "patient-h", []),
]


def write_dicom(path, pixels, patient_id, photometric="MONOCHROME2", **attributes):
    """Write a small uncompressed DICOM with the given pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = attributes.pop("SOPInstanceUID", UID_ROOT + "1")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientID = patient_id
    dataset.Modality = "CR"
    bits = 8 if pixels.dtype == np.uint8 else 12
    dataset.set_pixel_data(pixels, photometric, bits)
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)


def fake_radiograph(rng, size=IMAGE_SIZE):
    """Return a uint8 image with two dark lung fields on a bright body."""
    rows, columns = np.mgrid[0:size, 0:size] / size
    lungs = (np.abs(columns - 0.5) > 0.1) & (np.abs(columns - 0.5) < 0.4) & (rows > 0.15) & (rows < 0.8)
    image = 200 - 120 * lungs + rng.integers(0, 20, size=(size, size))
    return image.astype(np.uint8)


def main():
    rng = np.random.default_rng(0)
    lines = ["ImageId, EncodedPixels"]
    for suffix, patient, rectangles in IMAGES:
        image_id = UID_ROOT + "4." + suffix
        path = DUMMY_DIR / "dicom-images-train" / (UID_ROOT + "2." + suffix) / (UID_ROOT + "3." + suffix)
        write_dicom(path / f"{image_id}.dcm", fake_radiograph(rng), patient, SOPInstanceUID=image_id)
        if not rectangles:
            lines.append(f"{image_id},-1")
        for row0, row1, column0, column1 in rectangles:
            mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
            mask[row0:row1, column0:column1] = 1
            lines.append(f"{image_id},{rle_encode(mask)}")
    (DUMMY_DIR / "train-rle.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
