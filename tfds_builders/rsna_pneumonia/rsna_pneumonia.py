"""RSNA Pneumonia Detection dataset builder (manual download)."""

import csv
import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect_tfds import _common
from keras_dissect_tfds import _segmentation

RSNA_FINDINGS = ("Lung Opacity",)
LABEL_FILE = "stage_2_train_labels.csv"
IMAGE_FOLDER = "stage_2_train_images"
COLUMNS = ("patientId", "x", "y", "width", "height", "Target")

_DESCRIPTION = """\
RSNA Pneumonia Detection Challenge (Kaggle, 2018): frontal chest radiographs as
DICOM with boxes around lung opacities suggestive of pneumonia. Each row of
`stage_2_train_labels.csv` is one box (Target 1) or an image without box
(Target 0); an image may have several rows. Each example has the image, the
label `has_pneumonia` (also as `labels`, shape (1,)), the boxes (relative
coordinates) and `mask`, the union of the boxes filled, at the image size. In
this dataset one image is one patient. Splits: train / validation / test divide
the patients with `validation_fraction` and `test_fraction` (10 % each by
default), drawn by a seeded permutation of the sorted patient ids.
"""


@dataclasses.dataclass(eq=False)
class RsnaPneumoniaConfig(_segmentation.PatientSplitConfig):
    """Config of `RsnaPneumonia` (fields of `PatientSplitConfig`)."""


@dataclasses.dataclass
class RsnaRecord:
    """Label rows of one image: the target and its boxes `(x, y, width, height)` in pixels."""

    patient_id: str
    target: int
    boxes: list


def read_labels(path):
    """Read `stage_2_train_labels.csv` into {patientId: RsnaRecord}, in file order.

    Raises:
        DatasetLayoutError: a column is missing, a value is invalid, or the
            rows of one image disagree about its target.
    """
    records = {}
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        missing = [name for name in COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise DatasetLayoutError(f"{path} lacks the columns {missing}; use the file as shipped.")
        for line_number, row in enumerate(reader, start=2):
            where = f"{path}, line {line_number}"
            patient_id = row["patientId"].strip()
            if not patient_id:
                raise DatasetLayoutError(f"{where}: empty patientId.")
            try:
                target = int(row["Target"])
            except ValueError:
                raise DatasetLayoutError(f"{where}: Target must be 0 or 1, got {row['Target']!r}.") from None
            if target not in (0, 1):
                raise DatasetLayoutError(f"{where}: Target must be 0 or 1, got {target}.")

            record = records.setdefault(patient_id, RsnaRecord(patient_id, target, []))
            if record.target != target:
                raise DatasetLayoutError(
                    f"{where}: image {patient_id} has Target {target} here and "
                    f"{record.target} on an earlier row; fix the label file."
                )
            if target == 0:
                if record.boxes:
                    raise DatasetLayoutError(f"{where}: image {patient_id} has a box but Target 0.")
                continue
            try:
                box = tuple(float(row[name]) for name in ("x", "y", "width", "height"))
            except ValueError:
                raise DatasetLayoutError(
                    f"{where}: image {patient_id} has Target 1 but an invalid box "
                    f"{[row[name] for name in ('x', 'y', 'width', 'height')]}."
                ) from None
            if box[2] <= 0 or box[3] <= 0:
                raise DatasetLayoutError(f"{where}: box of image {patient_id} has no area: {box}.")
            record.boxes.append(box)
    return records


def box_mask(boxes, shape):
    """Fill the union of pixel boxes `(x, y, width, height)` into a uint8 `(H, W)` mask."""
    height, width = shape
    mask = np.zeros((height, width), np.uint8)
    for x, y, box_width, box_height in boxes:
        top, left = max(int(np.floor(y)), 0), max(int(np.floor(x)), 0)
        bottom, right = min(int(np.ceil(y + box_height)), height), min(int(np.ceil(x + box_width)), width)
        mask[top:bottom, left:right] = 1
    return mask


class RsnaPneumonia(_common.ManualImageBuilder):
    """RSNA pneumonia chest radiographs with opacity boxes and box masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = _common.make_image_size_configs(RsnaPneumoniaConfig)
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the RSNA Pneumonia Detection Challenge data (Kaggle competition
"rsna-pneumonia-detection-challenge") and arrange the manual folder as:

  <manual_dir>/{LABEL_FILE}
  <manual_dir>/{IMAGE_FOLDER}/<patientId>.dcm
"""

    def _info(self):
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8),
                    "mask": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8),
                    "has_pneumonia": tfds.features.Scalar(dtype=np.bool_),
                    "labels": tfds.features.Tensor(shape=(1,), dtype=np.float32),
                    "boxes": tfds.features.Sequence(tfds.features.BBoxFeature()),
                    "image_id": tfds.features.Text(),
                    "patient_id": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "mask"),
            homepage="https://www.kaggle.com/c/rsna-pneumonia-detection-challenge",
        )

    def _split_generators(self, dl_manager):
        manual_dir = pathlib.Path(os.fspath(dl_manager.manual_dir))
        _common.check_manual_files(
            manual_dir,
            [("the label file", [LABEL_FILE]), ("the DICOM images", [IMAGE_FOLDER])],
            self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
        records = read_labels(manual_dir / LABEL_FILE)
        items = []
        for patient_id, record in records.items():
            path = manual_dir / IMAGE_FOLDER / f"{patient_id}.dcm"
            if not path.is_file():
                self.bad_input.handle(
                    DatasetLayoutError(
                        f"Image {patient_id} is listed in {LABEL_FILE} but {path} does "
                        "not exist. Extract the complete image archive."
                    )
                )
                continue
            items.append((record, path))

        splits = _segmentation.split_items_by_patient(items, lambda item: item[0].patient_id, self.builder_config)
        for name, split_items in splits.items():
            self.check_split_not_empty(name, len(split_items), manual_dir / LABEL_FILE)
        return {name: self._generate_examples(split_items, name) for name, split_items in splits.items()}

    def _generate_examples(self, items, split):
        count = 0
        for record, path in items:
            image = self.load_image(path)
            if image is None:
                continue
            header = _common_header(path)
            full_shape = (int(header.Rows), int(header.Columns))
            mask = _segmentation.resize_mask(box_mask(record.boxes, full_shape), image.shape[:2])
            count += 1
            yield record.patient_id, {
                "image": image,
                "mask": mask,
                "has_pneumonia": bool(record.target),
                "labels": np.array([record.target], np.float32),
                "boxes": [_relative_box(box, full_shape) for box in record.boxes],
                "image_id": record.patient_id,
                "patient_id": record.patient_id,
            }
        self.check_split_not_empty(split, count, "the DICOM images")


def _common_header(path):
    from keras_dissect.data.dicom import read_dicom_header

    return read_dicom_header(path)


def _relative_box(box, shape):
    x, y, width, height = box
    rows, columns = shape
    return tfds.features.BBox(
        ymin=float(np.clip(y / rows, 0, 1)),
        xmin=float(np.clip(x / columns, 0, 1)),
        ymax=float(np.clip((y + height) / rows, 0, 1)),
        xmax=float(np.clip((x + width) / columns, 0, 1)),
    )
