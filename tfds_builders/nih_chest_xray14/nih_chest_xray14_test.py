import csv
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_dissect_tfds.nih_chest_xray14 import NIH_FINDINGS
from keras_dissect_tfds.nih_chest_xray14 import NihChestXray14

pytestmark = pytest.mark.backend_independent

DUMMY_DIR = pathlib.Path(__file__).resolve().parent / "dummy_data"
EXPECTED_SPLIT_COUNTS = {"train": 8, "validation": 2, "test": 4}


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = NihChestXray14(data_dir=data_dir, config="64")
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


def test_splits_patient_disjoint(examples):
    patients = {
        split: {example["patient_id"] for example in rows}
        for split, rows in examples.items()
    }
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]


def test_labels_match_csv(examples):
    with open(DUMMY_DIR / "Data_Entry_2017_v2020.csv", newline="") as file:
        rows = {row["Image Index"]: row for row in csv.DictReader(file)}
    for rows_of_split in examples.values():
        for example in rows_of_split:
            row = rows[example["image_id"].decode()]
            names = row["Finding Labels"].split("|")
            expected = [float(name in names) for name in NIH_FINDINGS]
            np.testing.assert_array_equal(example["labels"], expected)
            assert example["no_finding"] == ("No Finding" in names)
            assert example["age"] == int(row["Patient Age"])
            assert example["sex"].decode() == row["Patient Gender"]
            assert example["view_position"].decode() == row["View Position"]


def test_images_are_gray_uint8_at_config_size(examples):
    for rows in examples.values():
        for example in rows:
            assert example["image"].shape == (64, 64, 1)
            assert example["image"].dtype == np.uint8


def test_rgba_and_16bit_match_8bit_rendering(examples):
    by_id = {
        example["image_id"].decode(): example
        for rows in examples.values()
        for example in rows
    }
    # The fake images are the same gradient scaled by 0.5 + 0.03 * index, so
    # the brightest pixel of each file predicts the stored maximum.
    for image_id, index in (("00000003_000.png", 4), ("00000009_000.png", 10)):
        brightest = (0.5 + 0.03 * index) * 255
        # Lanczos resizing from 16 to 64 px overshoots by a few levels.
        assert abs(int(by_id[image_id]["image"].max()) - brightest) < 8


def test_boxes_normalized_from_release_size(examples):
    by_id = {
        example["image_id"].decode(): example
        for rows in examples.values()
        for example in rows
    }
    boxes = by_id["00000004_000.png"]["boxes"]
    order = np.argsort(boxes["finding"])
    findings = [NIH_FINDINGS[index] for index in boxes["finding"][order]]
    assert findings == ["Mass", "Nodule"]
    # Nodule box x=700, y=350, w=60, h=48 on the 1024-px release grid.
    np.testing.assert_allclose(
        boxes["bbox"][order][1],
        np.array([350, 700, 398, 760]) / 1024,
        rtol=1e-6,
    )
    infiltrate = by_id["00000011_001.png"]["boxes"]
    assert NIH_FINDINGS[infiltrate["finding"][0]] == "Infiltration"
    # The box runs past the image border and is clipped to 1.
    np.testing.assert_allclose(infiltrate["bbox"][0][2:], [1.0, 1.0])
    assert len(by_id["00000005_000.png"]["boxes"]["bbox"]) == 0
