"""Tests for the SIIM-ACR builder on fake files and on the real sample DICOM."""

import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_dissect import testing
from keras_dissect.data.errors import DatasetLayoutError
from keras_dissect_tfds.siim_acr_pneumothorax import SiimAcrPneumothorax
from keras_dissect_tfds.siim_acr_pneumothorax import SiimAcrPneumothoraxConfig
from keras_dissect_tfds.siim_acr_pneumothorax import make_dummy_data

pytestmark = pytest.mark.backend_independent

DUMMY_DIR = make_dummy_data.DUMMY_DIR
UID_ROOT = make_dummy_data.UID_ROOT
# Expected with the default fractions (10 % each, at least one patient) and
# seed over the 8 fake patients.
EXPECTED_SPLITS = {"train": 7, "validation": 1, "test": 2}


def prepare(manual_dir, data_dir, config="64"):
    builder = SiimAcrPneumothorax(config=config, data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def load_examples(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


@pytest.fixture(scope="module")
def dummy_builder(tmp_path_factory):
    return prepare(DUMMY_DIR, tmp_path_factory.mktemp("tfds"))


def test_split_counts(dummy_builder):
    for split, count in EXPECTED_SPLITS.items():
        assert dummy_builder.info.splits[split].num_examples == count


def test_splits_patient_disjoint(dummy_builder):
    patients = {split: {e["patient_id"] for e in load_examples(dummy_builder, split)} for split in EXPECTED_SPLITS}
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]


def test_masks_from_rle(dummy_builder):
    examples = {}
    for split in EXPECTED_SPLITS:
        for example in load_examples(dummy_builder, split):
            examples[example["image_id"].decode()] = example
    assert len(examples) == len(make_dummy_data.IMAGES)
    for suffix, _, rectangles in make_dummy_data.IMAGES:
        example = examples[UID_ROOT + "4." + suffix]
        # 32 px images stored at 64 px: nearest-neighbour doubling of each
        # rectangle, and the rows of one image form a union.
        expected = np.zeros((64, 64), np.uint8)
        for row0, row1, column0, column1 in rectangles:
            expected[2 * row0 : 2 * row1, 2 * column0 : 2 * column1] = 1
        assert example["image"].shape == (64, 64, 1)
        np.testing.assert_array_equal(example["mask"][..., 0], expected)
        assert example["has_pneumothorax"] == bool(rectangles)
        assert example["labels"].tolist() == [float(bool(rectangles))]


def test_real_sample_dicom(tmp_path):
    manual_dir = testing.data_path("siim-acr-sample")
    config = SiimAcrPneumothoraxConfig(name="256_all_train", image_size=256, validation_fraction=0.0, test_fraction=0.0)
    builder = prepare(manual_dir, tmp_path, config=config)
    (example,) = load_examples(builder, "train")

    assert example["image_id"].decode() == "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819"
    assert example["patient_id"].decode() == "16d7f894-55d7-4d95-8957-d18987f0e981"
    assert example["image"].shape == (256, 256, 1)
    image = example["image"][..., 0] / 255.0
    assert 0.3 < image.mean() < 0.8
    # MONOCHROME2 radiograph: the mediastinum is brighter than the lungs.
    assert image[75:175, 112:144].mean() > image[75:175, 50:88].mean() + 0.1
    # Its row is -1: no pneumothorax, empty mask.
    assert not example["has_pneumothorax"]
    assert example["mask"].shape == (256, 256, 1)
    assert not example["mask"].any()


def copy_dummy(tmp_path):
    manual_dir = tmp_path / "manual"
    shutil.copytree(DUMMY_DIR, manual_dir)
    return manual_dir


def test_missing_files_listed(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    # TFDS itself rejects an empty manual folder, before the builder looks.
    (manual_dir / "notes.txt").write_text("unrelated file")
    with pytest.raises(DatasetLayoutError, match="(?s)train-rle.csv.*dicom-images-train"):
        prepare(manual_dir, tmp_path / "tfds")


def test_listed_image_absent(tmp_path):
    manual_dir = copy_dummy(tmp_path)
    next(manual_dir.rglob(f"{UID_ROOT}4.6.dcm")).unlink()
    with pytest.raises(DatasetLayoutError, match=rf"Image {UID_ROOT}4\.6 is listed in train-rle.csv"):
        prepare(manual_dir, tmp_path / "tfds")


def test_duplicate_empty_row(tmp_path):
    manual_dir = copy_dummy(tmp_path)
    label_file = manual_dir / "train-rle.csv"
    label_file.write_text(label_file.read_text() + f"{UID_ROOT}4.7,-1\n")
    with pytest.raises(DatasetLayoutError, match=rf"Duplicate image id {UID_ROOT}4\.7"):
        prepare(manual_dir, tmp_path / "tfds")


def test_malformed_rle(tmp_path):
    manual_dir = copy_dummy(tmp_path)
    label_file = manual_dir / "train-rle.csv"
    label_file.write_text(label_file.read_text() + f"{UID_ROOT}4.7,12 3 4\n")
    with pytest.raises(DatasetLayoutError, match=r"line 13, image .*odd number.*'12 3 4'"):
        prepare(manual_dir, tmp_path / "tfds")


def test_skip_bad_input_counts(tmp_path):
    manual_dir = copy_dummy(tmp_path)
    next(manual_dir.rglob(f"{UID_ROOT}4.6.dcm")).unlink()
    builder = SiimAcrPneumothorax(config="64", data_dir=tmp_path / "tfds", skip_bad_input=True)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    assert len(builder.skipped_input) == 1
    total = sum(builder.info.splits[split].num_examples for split in EXPECTED_SPLITS)
    assert total == len(make_dummy_data.IMAGES) - 1
