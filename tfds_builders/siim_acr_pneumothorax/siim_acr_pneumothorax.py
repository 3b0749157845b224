"""SIIM-ACR pneumothorax segmentation dataset builder (manual download)."""

import collections
import csv
import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from keras_dissect.data import rle
from keras_dissect.data.dicom import read_dicom_header
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect.data.errors import ImageDecodeError
from keras_dissect_tfds import _common
from keras_dissect_tfds import _segmentation

SIIM_FINDINGS = ("Pneumothorax",)
LABEL_FILE = "train-rle.csv"
IMAGE_FOLDER = "dicom-images-train"
ID_COLUMN = "ImageId"
# The shipped header is "ImageId, EncodedPixels"; names are compared stripped.
RLE_COLUMN = "EncodedPixels"

_DESCRIPTION = """\
SIIM-ACR Pneumothorax Segmentation (Kaggle, 2019): frontal chest radiographs
as DICOM with pneumothorax masks run-length encoded in `train-rle.csv`. Each
example has the image, its 0/1 `mask` (union of all rows of the image, empty
for `-1`, resized with nearest neighbour to the image size), the label
`has_pneumothorax` (also as `labels`, shape (1,)), the image id and the DICOM
PatientID. Splits: train / validation / test divide the labelled images by
patient, with `validation_fraction` and `test_fraction` of the patients (10 %
each by default) drawn by a seeded permutation of the sorted patient ids.
"""


@dataclasses.dataclass(eq=False)
class SiimAcrPneumothoraxConfig(_segmentation.PatientSplitConfig):
    """Config of `SiimAcrPneumothorax` (fields of `PatientSplitConfig`)."""


class SiimAcrPneumothorax(_common.ManualImageBuilder):
    """SIIM-ACR chest radiographs with pneumothorax masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _common.make_image_size_configs(SiimAcrPneumothoraxConfig)
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the SIIM-ACR Pneumothorax Segmentation training data (Kaggle
competition "siim-acr-pneumothorax-segmentation", or its mirror
"seesee/siim-train-test") and arrange the manual folder as:

  <manual_dir>/{LABEL_FILE}          (header "ImageId, EncodedPixels")
  <manual_dir>/{IMAGE_FOLDER}/<StudyInstanceUID>/<SeriesInstanceUID>/<ImageId>.dcm

Images without a row in {LABEL_FILE} (the competition's test images) are
ignored. JPEG-compressed DICOMs need `pip install 'keras-dissect[dicom]'`.
"""

    def _info(self):
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8),
                    "mask": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8),
                    "has_pneumothorax": tfds.features.Scalar(dtype=np.bool_),
                    "labels": tfds.features.Tensor(shape=(1,), dtype=np.float32),
                    "image_id": tfds.features.Text(),
                    "patient_id": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "mask"),
            homepage="https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation",
        )

    def _split_generators(self, dl_manager):
        manual_dir = dl_manager.manual_dir
        _common.check_manual_files(
            manual_dir,
            [("the run-length label file", [LABEL_FILE]), ("the DICOM images", [IMAGE_FOLDER])],
            self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
        encodings = read_rle_file(manual_dir / LABEL_FILE, self.bad_input)
        paths = find_dicoms(manual_dir / IMAGE_FOLDER, self.bad_input)

        items = []
        for image_id in encodings:
            if image_id not in paths:
                self.bad_input.handle(
                    DatasetLayoutError(
                        f"Image {image_id} is listed in {LABEL_FILE} but no file "
                        f"{image_id}.dcm exists below {manual_dir / IMAGE_FOLDER}. "
                        "Extract the complete image archive."
                    )
                )
                continue
            patient_id = self._patient_id(paths[image_id], image_id)
            if patient_id is not None:
                items.append((image_id, patient_id, paths[image_id], encodings[image_id]))

        splits = _segmentation.split_items_by_patient(items, lambda item: item[1], self.builder_config)
        for name, split_items in splits.items():
            self.check_split_not_empty(name, len(split_items), manual_dir / LABEL_FILE)
        return {name: self._generate_examples(split_items, name) for name, split_items in splits.items()}

    def _patient_id(self, path, image_id):
        try:
            header = read_dicom_header(path)
        except ImageDecodeError as error:
            self.bad_input.handle(error)
            return None
        return str(header.get("PatientID", "") or image_id).strip()

    def _generate_examples(self, items, split):
        count = 0
        for image_id, patient_id, path, encoded_masks in items:
            loaded = self.load_image_and_mask(path, encoded_masks)
            if loaded is None:
                continue
            image, mask = loaded
            has_pneumothorax = bool(mask.any())
            count += 1
            yield image_id, {
                "image": image,
                "mask": mask,
                "has_pneumothorax": has_pneumothorax,
                "labels": np.array([has_pneumothorax], np.float32),
                "image_id": image_id,
                "patient_id": patient_id,
            }
        self.check_split_not_empty(split, count, "the DICOM images")

    def load_image_and_mask(self, path, encoded_masks):
        """Decode an image and its mask at the config size, or `None` if skipped."""
        header = read_dicom_header(path)
        shape = (int(header.Rows), int(header.Columns))
        try:
            full_mask = rle.rle_decode_union(encoded_masks, shape)
        except ValueError as error:
            self.bad_input.handle(
                DatasetLayoutError(f"The mask of {path.stem} in {LABEL_FILE} does not fit its image: {error}")
            )
            return None
        image = self.load_image(path)
        if image is None:
            return None
        return image, _segmentation.resize_mask(full_mask, image.shape[:2])


def read_rle_file(path, bad_input):
    """Read `train-rle.csv` into {image id: list of run-length strings}.

    Raises:
        DatasetLayoutError: the header lacks a column, a row is malformed, or
            an image is listed as empty (`-1`) more than once or both empty and
            with runs (unless `bad_input` skips such images).
    """
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = [name.strip() for name in next(reader, [])]
        if ID_COLUMN not in header or RLE_COLUMN not in header:
            raise DatasetLayoutError(
                f"{path} must have the columns {ID_COLUMN!r} and {RLE_COLUMN!r}; "
                f"its header is {header}. Use the file as shipped."
            )
        id_index, rle_index = header.index(ID_COLUMN), header.index(RLE_COLUMN)
        rows = collections.defaultdict(list)
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(id_index, rle_index):
                raise DatasetLayoutError(f"{path}, line {line_number}: expected {len(header)} columns, got {row}.")
            image_id, encoded = row[id_index].strip(), row[rle_index].strip()
            try:
                rle.parse_runs(encoded, shape=(2**16, 2**16))
            except ValueError as error:
                bad_input.handle(DatasetLayoutError(f"{path}, line {line_number}, image {image_id}: {error}"))
                continue
            rows[image_id].append((line_number, encoded))

    encodings = {}
    for image_id, entries in rows.items():
        empty_lines = [line for line, encoded in entries if encoded == rle.EMPTY_MASK_CODE]
        if empty_lines and len(entries) > 1:
            lines = [line for line, _ in entries]
            bad_input.handle(
                DatasetLayoutError(
                    f"Duplicate image id {image_id} in {path} (lines {lines}): an image "
                    f"without pneumothorax ({rle.EMPTY_MASK_CODE}) must have exactly one row. "
                    "Remove the extra rows."
                )
            )
            continue
        encodings[image_id] = [encoded for _, encoded in entries]
    return encodings


def find_dicoms(folder, bad_input):
    """Map image id (file stem) to path for every `.dcm` below `folder`."""
    paths = {}
    # TFDS hands over an `epath.Path`, which has no recursive glob.
    for path in sorted(pathlib.Path(os.fspath(folder)).rglob("*.dcm")):
        if path.stem in paths:
            bad_input.handle(
                DatasetLayoutError(
                    f"Duplicate image id {path.stem}: both {paths[path.stem]} and {path} "
                    "exist. Remove one copy."
                )
            )
            continue
        paths[path.stem] = path
    return paths
