import numpy as np
import pytest

from keras_dissect import evaluation

pytestmark = pytest.mark.backend_independent


def _masks():
    truth = np.zeros((3, 4, 4, 1))
    prediction = np.zeros((3, 4, 4, 1))
    # Image 0: truth 4 pixels, prediction 2 of them plus 2 others.
    truth[0, :2, :2] = 1
    prediction[0, :1, :2] = 1
    prediction[0, 3, :2] = 1
    # Image 1: both empty. Image 2: empty truth, 1 predicted pixel.
    prediction[2, 0, 0] = 0.9
    return truth, prediction


def test_dice_and_iou_by_hand():
    truth, prediction = _masks()
    dice = evaluation.dice_per_image(truth, prediction)
    iou = evaluation.iou_per_image(truth, prediction)
    # Image 0: intersection 2, sizes 4 and 4, union 6.
    np.testing.assert_allclose(dice, [2 * 2 / 8, 1.0, 0.0])
    np.testing.assert_allclose(iou, [2 / 6, 1.0, 0.0])


def test_segmentation_scores_summary():
    truth, prediction = _masks()
    scores = evaluation.segmentation_scores(truth, prediction)
    assert scores["dice"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert scores["iou"] == pytest.approx((1 / 3 + 1.0 + 0.0) / 3)
    assert scores["num_images"] == 3
    assert scores["num_empty_masks"] == 2


def test_threshold_applies_to_probabilities():
    truth = np.ones((1, 2, 2))
    prediction = np.full((1, 2, 2), 0.4)
    assert evaluation.dice_per_image(truth, prediction)[0] == 0.0
    assert evaluation.dice_per_image(truth, prediction, threshold=0.3)[0] == 1.0


def test_mask_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        evaluation.dice_per_image(np.zeros((1, 2, 2)), np.zeros((1, 3, 3)))
