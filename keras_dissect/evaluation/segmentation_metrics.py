"""Dice and IoU for binary masks, in NumPy.

Empty-mask convention: when both the ground-truth and the predicted mask of
an image are empty, Dice and IoU are 1, because the prediction is exactly
right (as for the many pneumothorax-free images of SIIM-ACR). When only one
of them is empty, both scores are 0. Scores are computed per image and then
averaged.
"""

import numpy as np

DEFAULT_THRESHOLD = 0.5


def _binarize(y_true, y_pred, threshold):
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same shape. "
            f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    if y_true.ndim < 2:
        raise ValueError(
            "Masks must have shape (B, H, W) or (B, H, W, 1). "
            f"Received: y_true.shape={y_true.shape}"
        )
    truth = (y_true > threshold).reshape(len(y_true), -1)
    prediction = (y_pred > threshold).reshape(len(y_pred), -1)
    return truth, prediction


def dice_per_image(y_true, y_pred, threshold=DEFAULT_THRESHOLD):
    """Return the Dice score of each image, shape `(B,)`.

    Args:
        y_true: ground-truth masks `(B, H, W)` or `(B, H, W, 1)`, 0/1 or
            probabilities (binarized with `threshold`).
        y_pred: predicted masks or probabilities, same shape.
        threshold: values above it count as foreground.
    """
    truth, prediction = _binarize(y_true, y_pred, threshold)
    intersection = np.logical_and(truth, prediction).sum(axis=1)
    total = truth.sum(axis=1) + prediction.sum(axis=1)
    both_empty = total == 0
    scores = 2.0 * intersection / np.where(both_empty, 1, total)
    return np.where(both_empty, 1.0, scores)


def iou_per_image(y_true, y_pred, threshold=DEFAULT_THRESHOLD):
    """Return the intersection over union of each image, shape `(B,)`.

    Arguments as for `dice_per_image`.
    """
    truth, prediction = _binarize(y_true, y_pred, threshold)
    intersection = np.logical_and(truth, prediction).sum(axis=1)
    union = np.logical_or(truth, prediction).sum(axis=1)
    both_empty = union == 0
    scores = intersection / np.where(both_empty, 1, union)
    return np.where(both_empty, 1.0, scores)


def segmentation_scores(y_true, y_pred, threshold=DEFAULT_THRESHOLD):
    """Return mean Dice, mean IoU and counts as a JSON-serializable dict.

    The dict also gives the number of images and how many have an empty
    ground-truth mask, because the empty-mask convention weighs heavily on
    datasets where most images are negative.
    """
    dice = dice_per_image(y_true, y_pred, threshold)
    iou = iou_per_image(y_true, y_pred, threshold)
    truth, _ = _binarize(y_true, y_pred, threshold)
    return {
        "dice": float(dice.mean()) if len(dice) else None,
        "iou": float(iou.mean()) if len(iou) else None,
        "num_images": int(len(dice)),
        "num_empty_masks": int((truth.sum(axis=1) == 0).sum()),
        "threshold": float(threshold),
    }
