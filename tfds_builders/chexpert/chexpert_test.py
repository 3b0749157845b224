import csv
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_dissect_tfds.chexpert import CHEXPERT_OBSERVATIONS
from keras_dissect_tfds.chexpert import Chexpert

pytestmark = pytest.mark.backend_independent

DUMMY_DIR = pathlib.Path(__file__).resolve().parent / "dummy_data"
RELEASE_DIR = DUMMY_DIR / "CheXpert-v1.0-small"
EXPECTED_SPLIT_COUNTS = {"train": 5, "validation": 3, "test": 3}
STATE_OF_CELL = {"1.0": 1, "0.0": 0, "-1.0": -1, "": -2}


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    builder = Chexpert(data_dir=tmp_path_factory.mktemp("tfds"), config="64")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=DUMMY_DIR)
    )
    return builder


@pytest.fixture(scope="module")
def examples(builder):
    return {
        split: list(tfds.as_numpy(builder.as_dataset(split=split)))
        for split in EXPECTED_SPLIT_COUNTS
    }


def test_split_counts(builder):
    counts = {
        name: split.num_examples for name, split in builder.info.splits.items()
    }
    assert counts == EXPECTED_SPLIT_COUNTS


def test_test_split_is_official_validation(examples):
    for example in examples["test"]:
        assert example["image_id"].decode().startswith("valid/")


def test_splits_patient_disjoint(examples):
    patients = {
        split: {example["patient_id"] for example in rows}
        for split, rows in examples.items()
    }
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]


def test_observations_and_views_match_csv(examples):
    rows = {}
    for name in ("train.csv", "valid.csv"):
        with open(RELEASE_DIR / name, newline="") as file:
            for row in csv.DictReader(file):
                rows[row["Path"].split("/", 1)[1]] = row
    for split_rows in examples.values():
        for example in split_rows:
            row = rows[example["image_id"].decode()]
            expected = [STATE_OF_CELL[row[name]] for name in CHEXPERT_OBSERVATIONS]
            np.testing.assert_array_equal(example["observations"], expected)
            assert example["observations"].dtype == np.int8
            assert example["frontal_lateral"].decode() == row["Frontal/Lateral"]
            assert example["ap_pa"].decode() == row["AP/PA"]
            assert example["patient_id"].decode() in row["Path"]


def test_images_keep_aspect_ratio(examples):
    # The 20 x 16 fake images have their shorter side resized to 64.
    for rows in examples.values():
        for example in rows:
            assert example["image"].shape == (80, 64, 1)
            assert example["image"].dtype == np.uint8
