"""Tests for the procedural chest phantom generator."""

import numpy as np
import pytest

from keras_dissect.data import phantom
from keras_dissect.data.phantom import FINDINGS
from keras_dissect.data.phantom import MASK_FINDINGS

pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def batch():
    return phantom.generate_phantoms(200, image_size=64, seed=3)


def test_shapes_and_ranges(batch):
    assert batch["image"].shape == (200, 64, 64, 1)
    assert batch["image"].dtype == np.float32
    assert batch["image"].min() >= 0.0
    assert batch["image"].max() <= 1.0
    assert batch["labels"].shape == (200, len(FINDINGS))
    assert batch["mask"].shape == (200, 64, 64, 1)
    assert batch["mask"].dtype == np.uint8
    assert batch["finding_masks"].shape == (200, 64, 64, len(MASK_FINDINGS))
    assert set(np.unique(batch["mask"])) <= {0, 1}


def test_deterministic_per_seed():
    first = phantom.generate_phantoms(4, image_size=32, seed=11)
    second = phantom.generate_phantoms(4, image_size=32, seed=11)
    other = phantom.generate_phantoms(4, image_size=32, seed=12)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["image"], other["image"])


def test_pieces_equal_whole():
    whole = phantom.generate_phantoms(6, image_size=32, seed=5)
    tail = phantom.generate_phantoms(2, image_size=32, seed=5, start_index=4)
    np.testing.assert_array_equal(whole["image"][4:], tail["image"])
    np.testing.assert_array_equal(whole["labels"][4:], tail["labels"])


def test_same_patient_at_every_size():
    small = phantom.generate_phantom((1, 7), image_size=32)
    large = phantom.generate_phantom((1, 7), image_size=128)
    np.testing.assert_array_equal(small["labels"], large["labels"])
    # Pixel noise differs, so compare block means: the 128 px image averaged
    # over 4x4 blocks must follow the 32 px image up to noise and
    # antialiasing (0.08 is about three times the largest noise level).
    pooled = large["image"].reshape(32, 4, 32, 4).mean(axis=(1, 3))
    assert np.abs(pooled - small["image"]).mean() < 0.08


def test_masks_agree_with_labels(batch):
    for channel, name in enumerate(MASK_FINDINGS):
        present = batch["labels"][:, FINDINGS.index(name)] == 1
        non_empty = batch["finding_masks"][..., channel].any(axis=(1, 2))
        np.testing.assert_array_equal(non_empty, present, err_msg=name)
        # Every finding occurs in a batch of 200 at the default prevalence.
        assert present.sum() > 10, name

    any_mask_finding = batch["labels"][:, [FINDINGS.index(n) for n in MASK_FINDINGS]].any(axis=1)
    np.testing.assert_array_equal(batch["mask"].any(axis=(1, 2, 3)), any_mask_finding)


def test_finding_changes_pixels_inside_mask():
    # The same seed without and with a nodule differs inside the nodule mask.
    without = phantom.generate_phantom((2, 0), image_size=64, finding_probability=0.0)
    with_nodule = phantom.generate_phantom(
        (2, 0), image_size=64, finding_probability=[1.0, 0.0, 0.0, 0.0, 0.0]
    )
    mask = with_nodule["finding_masks"][..., MASK_FINDINGS.index("nodule")] == 1
    assert mask.any()
    brighter = with_nodule["image"][mask].mean() - without["image"][mask].mean()
    assert brighter > 0.05


def test_cardiomegaly_widens_heart():
    normal = phantom.generate_phantom((4, 0), image_size=64, finding_probability=0.0)
    enlarged = phantom.generate_phantom(
        (4, 0), image_size=64, finding_probability=[0.0, 0.0, 0.0, 1.0, 0.0]
    )
    assert enlarged["labels"][FINDINGS.index("cardiomegaly")] == 1
    assert not enlarged["mask"].any()
    # The enlarged heart covers more of the lower lung fields, which are dark.
    assert enlarged["image"][32:48].mean() > normal["image"][32:48].mean()


def test_marker_follows_finding_in_train():
    train = phantom.generate_phantoms(
        400, image_size=32, seed=8, marker_finding="pneumothorax", marker_probability=(0.9, 0.1)
    )
    present = train["labels"][:, FINDINGS.index("pneumothorax")] == 1
    assert train["has_marker"][present].mean() > 0.75
    assert train["has_marker"][~present].mean() < 0.2

    test = phantom.generate_phantoms(
        400, image_size=32, seed=9, marker_finding="pneumothorax", marker_probability=(0.5, 0.5)
    )
    present = test["labels"][:, FINDINGS.index("pneumothorax")] == 1
    gap = test["has_marker"][present].mean() - test["has_marker"][~present].mean()
    # Independent marker: with about 80 positives the difference of two
    # proportions has a standard error near 0.06, so 0.2 is over three of them.
    assert abs(gap) < 0.2


def test_marker_drawn_at_box():
    found = phantom.generate_phantoms(
        20, image_size=64, seed=1, marker_finding="nodule", marker_probability=(1.0, 1.0)
    )
    assert found["has_marker"].all()
    for image, box in zip(found["image"][..., 0], found["marker_box"]):
        top, left, bottom, right = np.round(box * 64).astype(int)
        assert (image[top:bottom, left:right] == 1.0).sum() >= 8
    absent = phantom.generate_phantoms(5, image_size=64, seed=1)
    assert not absent["has_marker"].any()
    assert not absent["marker_box"].any()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="Received: image_size=8"):
        phantom.generate_phantoms(1, image_size=8)
    with pytest.raises(ValueError, match="Received: marker_finding='fracture'"):
        phantom.generate_phantoms(1, marker_finding="fracture")
    with pytest.raises(ValueError, match="Received: marker_probability=\\(1.5, 0.1\\)"):
        phantom.generate_phantoms(1, marker_finding="nodule", marker_probability=(1.5, 0.1))
    with pytest.raises(ValueError, match="Received: finding_probability=\\[0.5, 0.5\\]"):
        phantom.generate_phantoms(1, finding_probability=[0.5, 0.5])
    with pytest.raises(ValueError, match="Received: num_images=-1"):
        phantom.generate_phantoms(-1)


def test_zero_images():
    empty = phantom.generate_phantoms(0, image_size=32)
    assert empty["image"].shape == (0, 32, 32, 1)
    assert empty["labels"].shape == (0, len(FINDINGS))
