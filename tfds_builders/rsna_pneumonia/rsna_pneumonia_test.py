"""Tests for the RSNA builder on fake files and its label parsing on the real file."""

import collections
import csv
import io
import zipfile

import pytest
import tensorflow_datasets as tfds

from keras_dissect import testing
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect_tfds.rsna_pneumonia import RsnaPneumonia
from keras_dissect_tfds.rsna_pneumonia import make_dummy_data
from keras_dissect_tfds.rsna_pneumonia import rsna_pneumonia

pytestmark = pytest.mark.backend_independent

# Default fractions (10 % each, at least one patient) over 10 fake patients.
EXPECTED_SPLITS = {"train": 8, "validation": 1, "test": 1}


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    builder = RsnaPneumonia(config="64", data_dir=tmp_path_factory.mktemp("tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=make_dummy_data.DUMMY_DIR)
    )
    return builder


def test_split_counts(builder):
    for split, count in EXPECTED_SPLITS.items():
        assert builder.info.splits[split].num_examples == count


def test_box_masks(builder):
    for split in EXPECTED_SPLITS:
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            boxes = make_dummy_data.IMAGES[example["image_id"].decode()]
            # 32 px images stored at 64 px; the fake boxes do not overlap.
            expected_area = sum(4 * width * height for _, _, width, height in boxes)
            assert int(example["mask"].sum()) == expected_area
            assert example["has_pneumonia"] == bool(boxes)
            assert example["boxes"].shape == (len(boxes), 4)


def test_real_label_file_parsing(tmp_path):
    archive = testing.data_path("label-files", "kaggle_stage_2_train_labels.csv.zip")
    with zipfile.ZipFile(archive) as opened:
        text = opened.read("stage_2_train_labels.csv").decode()
    path = tmp_path / "stage_2_train_labels.csv"
    path.write_text(text)
    records = rsna_pneumonia.read_labels(path)

    # Independent count with the csv module.
    boxes_per_image = collections.Counter()
    targets = {}
    for row in csv.DictReader(io.StringIO(text)):
        targets[row["patientId"]] = int(row["Target"])
        if row["Target"] == "1":
            boxes_per_image[row["patientId"]] += 1
    assert len(records) == len(targets)
    assert sum(record.target for record in records.values()) == sum(targets.values())
    assert sum(1 - record.target for record in records.values()) == len(targets) - sum(targets.values())
    for patient_id, record in records.items():
        assert len(record.boxes) == boxes_per_image[patient_id], patient_id
    assert len(records) == 26684
    assert sum(targets.values()) == 6012


def test_listed_image_absent(tmp_path):
    import shutil

    manual_dir = tmp_path / "manual"
    shutil.copytree(make_dummy_data.DUMMY_DIR, manual_dir)
    (manual_dir / "stage_2_train_images" / "00000002-fake-rsna.dcm").unlink()
    builder = RsnaPneumonia(config="64", data_dir=tmp_path / "tfds")
    with pytest.raises(DatasetLayoutError, match="Image 00000002-fake-rsna is listed"):
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))


def test_conflicting_targets(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("patientId,x,y,width,height,Target\na,1,1,2,2,1\na,,,,,0\n")
    with pytest.raises(DatasetLayoutError, match="line 3: image a has Target 0"):
        rsna_pneumonia.read_labels(path)
