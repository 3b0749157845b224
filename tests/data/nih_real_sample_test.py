import csv

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from keras_dissect import testing
from keras_dissect.data import pipelines
from keras_dissect_tfds.nih_chest_xray14 import NIH_FINDINGS
from keras_dissect_tfds.nih_chest_xray14 import NihChestXray14

pytestmark = pytest.mark.backend_independent

SPLITS = ("train", "validation", "test")
RGBA_ORIGINALS = ("00000100_000.png", "00001369_000.png")
GRAY_ORIGINALS = ("00000002_000.png", "00000013_003.png", "00009285_000.png")


@pytest.fixture(scope="module")
def sample_dir():
    return testing.data_path("nih-chestxray14-sample")


@pytest.fixture(scope="module")
def builder(sample_dir, tmp_path_factory):
    builder = NihChestXray14(
        data_dir=tmp_path_factory.mktemp("tfds"), config="64"
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=sample_dir)
    )
    return builder


@pytest.fixture(scope="module")
def examples(builder):
    return {
        split: {
            example["image_id"].decode(): example
            for example in tfds.as_numpy(builder.as_dataset(split=split))
        }
        for split in SPLITS
    }


def _read_lines(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def test_split_counts(examples, sample_dir):
    train_val = _read_lines(sample_dir / "train_val_list.txt")
    test = _read_lines(sample_dir / "test_list.txt")
    assert len(examples["test"]) == len(test) == 114
    assert len(examples["train"]) + len(examples["validation"]) == 407
    assert set(examples["test"]) == set(test)
    assert set(examples["train"]) | set(examples["validation"]) == set(train_val)
    # 407 patients with one image each; 10 % of them are validation.
    assert len(examples["validation"]) == 41


def test_splits_patient_disjoint(examples):
    patients = {
        split: {row["patient_id"] for row in rows.values()}
        for split, rows in examples.items()
    }
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]


def test_labels_equal_csv(examples, sample_dir):
    with open(sample_dir / "Data_Entry_2017_v2020.csv", newline="") as file:
        rows = {row["Image Index"]: row for row in csv.DictReader(file)}
    checked = 0
    for split_rows in examples.values():
        for image_id, example in split_rows.items():
            names = set(rows[image_id]["Finding Labels"].split("|"))
            expected = np.array([name in names for name in NIH_FINDINGS], np.float32)
            np.testing.assert_array_equal(example["labels"], expected)
            assert bool(example["no_finding"]) == ("No Finding" in names)
            assert example["patient_id"].decode() == rows[image_id]["Patient ID"]
            checked += 1
    assert checked == len(rows) == 521


def test_boxes_from_bbox_list(examples, sample_dir):
    with open(sample_dir / "BBox_List_2017.csv", newline="") as file:
        box_rows = list(csv.reader(file))[1:]
    stored = sum(
        len(example["boxes"]["bbox"])
        for rows in examples.values()
        for example in rows.values()
    )
    assert stored == len(box_rows) == 9


@pytest.mark.parametrize("image_id", RGBA_ORIGINALS + GRAY_ORIGINALS)
def test_originals_stored_like_the_rest(examples, sample_dir, image_id):
    example = next(rows[image_id] for rows in examples.values() if image_id in rows)
    assert example["image"].shape == (64, 64, 1)
    assert example["image"].dtype == np.uint8

    # Independent rendering: Pillow's own gray conversion, then Lanczos.
    original = Image.open(sample_dir / "images" / image_id)
    assert original.size == (1024, 1024)
    gray = np.asarray(original.convert("L"), np.float32) / 255
    expected = Image.fromarray(gray, mode="F").resize((64, 64), Image.LANCZOS)
    expected = np.clip(np.round(np.asarray(expected) * 255), 0, 255)
    # Pillow's RGB -> L rounding equals the R channel here (R = G = B), so the
    # two renderings agree to the rounding of the last level.
    np.testing.assert_allclose(example["image"][..., 0], expected, atol=1)


def test_prepared_sample_through_pipelines(builder):
    train = builder.as_dataset(split="train")
    views = next(
        iter(pipelines.pretraining_dataset(train, 56, 16, shuffle_buffer=64))
    )
    assert views["view1"].shape == (16, 56, 56, 1)
    assert views["view2"].shape == (16, 56, 56, 1)

    test = builder.as_dataset(split="test")
    images, labels = next(iter(pipelines.classification_dataset(test, 64, 16)))
    assert images.shape == (16, 64, 64, 1)
    assert labels.shape == (16, 14)
    # The stored 64-px images pass through evaluation unchanged.
    first = next(iter(tfds.as_numpy(test)))
    np.testing.assert_allclose(images[0, ..., 0], first["image"][..., 0] / 255, atol=1e-6)
