"""Keras callback that computes the mean ROC AUC on a validation set."""

import warnings

import keras
import numpy as np

from keras_dissect.evaluation import auc as auc_lib

VALIDATION_AUC_KEY = "val_auc"


def predict_with_labels(model, dataset):
    """Run `model` over a `(images, labels)` dataset and return both as arrays.

    Args:
        model: a model mapping images to scores `(B, K)`.
        dataset: an iterable of `(images, labels)` batches, for example a
            `tf.data.Dataset`.

    Returns:
        `(labels, scores)`, NumPy arrays of shape `(N, K)`.
    """
    all_labels = []
    all_scores = []
    iterator = dataset.as_numpy_iterator() if hasattr(dataset, "as_numpy_iterator") else dataset
    for images, labels in iterator:
        all_scores.append(keras.ops.convert_to_numpy(model.predict_on_batch(images)))
        all_labels.append(np.asarray(labels))
    if not all_labels:
        raise ValueError("`dataset` is empty. Received: a dataset with no batches")
    return np.concatenate(all_labels), np.concatenate(all_scores)


class ValidationAUC(keras.callbacks.Callback):
    """Add the mean validation ROC AUC to the epoch logs as `"val_auc"`.

    The AUC is computed with scikit-learn over the whole validation set after
    each epoch, ignoring labels of -1 and classes without both positives and
    negatives. Place this callback before `EarlyStopping(monitor="val_auc",
    mode="max")` or `ModelCheckpoint` so that they see the value.

    Args:
        validation_data: `(images, labels)` batches of the validation split.
        class_names: names of the K classes, for the stored report.
    """

    def __init__(self, validation_data, class_names=None):
        super().__init__()
        self.validation_data = validation_data
        self.class_names = class_names
        self.last_report = None

    def on_epoch_end(self, epoch, logs=None):
        labels, scores = predict_with_labels(self.model, self.validation_data)
        report = auc_lib.compute_auc_report(labels, scores, self.class_names)
        self.last_report = report
        if report.mean_auc is None:
            warnings.warn(
                "No validation class has both positive and negative labels, "
                "so the validation AUC is undefined and cannot select a model."
            )
        if logs is not None:
            logs[VALIDATION_AUC_KEY] = (
                float("nan") if report.mean_auc is None else report.mean_auc
            )
