"""Per-class and mean ROC AUC for multi-label findings with ignored entries."""

import dataclasses

import numpy as np
from sklearn import metrics

IGNORE_LABEL = -1

STATUS_OK = "ok"
STATUS_NO_POSITIVES = "no positives"
STATUS_NO_NEGATIVES = "no negatives"
STATUS_NO_LABELS = "no labels"


@dataclasses.dataclass(frozen=True)
class ClassAUC:
    """ROC AUC of one finding, or the reason it could not be computed.

    Attributes:
        name: finding name.
        auc: ROC AUC in [0, 1], or `None` when `status` is not `"ok"`.
        status: `"ok"`, `"no positives"`, `"no negatives"` or `"no labels"`
            (every entry of the class was ignored).
        positives: number of entries labelled 1.
        negatives: number of entries labelled 0.
    """

    name: str
    auc: float | None
    status: str
    positives: int
    negatives: int


@dataclasses.dataclass(frozen=True)
class AUCReport:
    """Per-class ROC AUC and their mean over the classes where AUC is defined.

    Attributes:
        classes: one `ClassAUC` per finding, in label order.
        mean_auc: mean over the classes with status `"ok"`, or `None` when
            there is none.
        num_classes_used: number of classes that entered the mean.
    """

    classes: tuple
    mean_auc: float | None
    num_classes_used: int

    @property
    def num_classes(self):
        return len(self.classes)

    def to_dict(self):
        """Return the report as plain JSON-serializable Python values."""
        return {
            "mean_auc": self.mean_auc,
            "num_classes_used": self.num_classes_used,
            "num_classes": self.num_classes,
            "classes": [dataclasses.asdict(item) for item in self.classes],
        }

    @classmethod
    def from_dict(cls, data):
        """Rebuild a report written by `to_dict`."""
        classes = tuple(ClassAUC(**item) for item in data["classes"])
        return cls(classes, data["mean_auc"], data["num_classes_used"])


def _as_2d(array, argument):
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(
            f"`{argument}` must have shape (N, K) or (N,). "
            f"Received: {argument}.shape={array.shape}"
        )
    return array


def compute_auc_report(labels, scores, class_names=None):
    """Compute ROC AUC per class and the mean over the classes that have one.

    Entries labelled -1 are ignored class by class. A class whose remaining
    entries are all positive or all negative has no ROC AUC: it is reported
    with its status and left out of the mean, and `num_classes_used` gives the
    number of classes the mean covers.

    Args:
        labels: array of shape `(N, K)` (or `(N,)` for one class) with values
            1 (positive), 0 (negative) or -1 (ignored); N examples, K classes.
        scores: array of the same shape with predicted scores (probabilities
            or logits: ROC AUC depends only on their order).
        class_names: K names; defaults to `"class_0"`, `"class_1"`, ...

    Returns:
        An `AUCReport`.
    """
    labels = _as_2d(labels, "labels")
    scores = _as_2d(scores, "scores")
    if labels.shape != scores.shape:
        raise ValueError(
            "`labels` and `scores` must have the same shape. "
            f"Received: labels.shape={labels.shape}, scores.shape={scores.shape}"
        )
    valid_values = np.isin(labels, (0, 1, IGNORE_LABEL))
    if not valid_values.all():
        bad = np.unique(labels[~valid_values])[:5]
        raise ValueError(
            "`labels` may contain only 1, 0 and -1 (ignored). "
            f"Received: labels with values {bad.tolist()}"
        )
    if not np.isfinite(scores).all():
        raise ValueError(
            "`scores` must be finite. Received: scores with NaN or infinite "
            "values; check the model output for divergence"
        )

    num_classes = labels.shape[1]
    if class_names is None:
        class_names = [f"class_{index}" for index in range(num_classes)]
    class_names = list(class_names)
    if len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must name all {num_classes} classes. "
            f"Received: class_names={class_names}"
        )

    results = []
    for index, name in enumerate(class_names):
        keep = labels[:, index] != IGNORE_LABEL
        truth = labels[keep, index]
        positives = int((truth == 1).sum())
        negatives = int((truth == 0).sum())

        if positives == 0 and negatives == 0:
            status = STATUS_NO_LABELS
        elif positives == 0:
            status = STATUS_NO_POSITIVES
        elif negatives == 0:
            status = STATUS_NO_NEGATIVES
        else:
            status = STATUS_OK

        auc = None
        if status == STATUS_OK:
            auc = float(metrics.roc_auc_score(truth, scores[keep, index]))
        results.append(ClassAUC(name, auc, status, positives, negatives))

    used = [item.auc for item in results if item.status == STATUS_OK]
    mean_auc = float(np.mean(used)) if used else None
    return AUCReport(tuple(results), mean_auc, len(used))
