"""Tests for the cxr_phantom builder, prepared into a temporary folder."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_dissect.data import phantom
from keras_dissect_tfds.cxr_phantom import CxrPhantom
from keras_dissect_tfds.cxr_phantom import CxrPhantomConfig
from keras_dissect_tfds.cxr_phantom.cxr_phantom import MARKER_FINDING
from keras_dissect_tfds.cxr_phantom.cxr_phantom import MARKER_PROBABILITIES

pytestmark = pytest.mark.backend_independent

SPLIT_SIZES = {"train": 12, "validation": 4, "test": 6}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    config = CxrPhantomConfig(
        name="test_32_marker",
        image_size=32,
        num_train=SPLIT_SIZES["train"],
        num_validation=SPLIT_SIZES["validation"],
        num_test=SPLIT_SIZES["test"],
        seed=5,
        spurious_marker=True,
    )
    builder = CxrPhantom(config=config, data_dir=tmp_path_factory.mktemp("tfds"))
    builder.download_and_prepare()
    return builder


def test_split_counts(prepared):
    for split, count in SPLIT_SIZES.items():
        assert prepared.info.splits[split].num_examples == count


def test_examples_match_generator(prepared):
    examples = list(tfds.as_numpy(prepared.as_dataset(split="test")))
    examples.sort(key=lambda example: example["image_id"])
    for index, example in enumerate(examples):
        expected = phantom.generate_phantom(
            (5, 2, index),
            image_size=32,
            marker_finding=MARKER_FINDING,
            marker_probability=MARKER_PROBABILITIES["test"],
        )
        assert example["image"].shape == (32, 32, 1)
        # uint8 storage rounds to the nearest 1/255.
        np.testing.assert_allclose(example["image"][..., 0] / 255.0, expected["image"], atol=0.5 / 255 + 1e-6)
        np.testing.assert_array_equal(example["mask"][..., 0], expected["mask"])
        np.testing.assert_array_equal(example["labels"], expected["labels"])
        assert example["has_marker"] == expected["has_marker"]
        for bit in range(len(phantom.MASK_FINDINGS)):
            np.testing.assert_array_equal(
                (example["finding_map"][..., 0] >> bit) & 1, expected["finding_masks"][..., bit]
            )


def test_default_configs():
    names = [config.name for config in CxrPhantom.BUILDER_CONFIGS]
    assert names[:2] == ["64", "64_marker"]
    default = CxrPhantom.builder_configs["64"]
    assert default.split_sizes() == {"train": 512, "validation": 128, "test": 128}
    assert not default.spurious_marker
    assert CxrPhantom.builder_configs["224_marker"].spurious_marker


def test_invalid_config():
    with pytest.raises(ValueError, match="Received: num_train=0"):
        CxrPhantomConfig(name="bad", num_train=0)
