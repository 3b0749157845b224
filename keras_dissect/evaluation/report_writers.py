"""Writers for AUC reports: JSON, a markdown table and a ROC plot PNG."""

import json
import pathlib

import numpy as np
from sklearn import metrics

from keras_dissect.evaluation import auc as auc_lib

ROC_FIGURE_SIZE_INCHES = (7.0, 6.0)
ROC_FIGURE_DPI = 120


def write_auc_json(report, path, extra=None):
    """Write an `AUCReport` as JSON, with optional extra top-level fields.

    Args:
        report: an `AUCReport`.
        path: output file.
        extra: optional dict merged into the top level (for example the run
            configuration or the split name).

    Returns:
        The path written, as a `pathlib.Path`.
    """
    path = pathlib.Path(path)
    data = report.to_dict()
    if extra:
        data.update(extra)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _format_auc(value):
    return "-" if value is None else f"{value:.4f}"


def auc_markdown_table(report, title=None):
    """Return the report as a markdown table, one row per class plus the mean.

    Classes without an AUC show their status in the last column and a dash as
    their AUC, and the mean row states how many classes it covers.
    """
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines += [
        "| finding | AUC | positives | negatives | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for item in report.classes:
        note = "" if item.status == auc_lib.STATUS_OK else f"{item.status}, not in mean"
        lines.append(
            f"| {item.name} | {_format_auc(item.auc)} | {item.positives} "
            f"| {item.negatives} | {note} |"
        )
    lines.append(
        f"| **mean** | **{_format_auc(report.mean_auc)}** | | "
        f"| over {report.num_classes_used} of {report.num_classes} classes |"
    )
    return "\n".join(lines) + "\n"


def write_auc_markdown(report, path, title=None):
    """Write `auc_markdown_table(report, title)` to `path` and return the path."""
    path = pathlib.Path(path)
    path.write_text(auc_markdown_table(report, title))
    return path


def plot_roc_curves(labels, scores, report, path, title=None):
    """Draw one ROC curve per class that has an AUC and save it as a PNG.

    Args:
        labels: `(N, K)` labels with -1 for ignored entries.
        scores: `(N, K)` predicted scores.
        report: the `AUCReport` computed from the same arrays (gives names,
            which classes to draw and the AUC shown in the legend).
        path: output PNG file.
        title: optional figure title.

    Returns:
        The path written, as a `pathlib.Path`.
    """
    # The Agg backend renders without a display (servers, CI).
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    path = pathlib.Path(path)

    figure, axes = pyplot.subplots(figsize=ROC_FIGURE_SIZE_INCHES)
    for index, item in enumerate(report.classes):
        if item.status != auc_lib.STATUS_OK:
            continue
        keep = labels[:, index] != auc_lib.IGNORE_LABEL
        false_positive_rate, true_positive_rate, _ = metrics.roc_curve(
            labels[keep, index], scores[keep, index]
        )
        axes.plot(
            false_positive_rate,
            true_positive_rate,
            linewidth=1.2,
            label=f"{item.name} ({item.auc:.3f})",
        )

    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=0.8)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    mean_text = _format_auc(report.mean_auc)
    axes.set_title(
        title
        or f"ROC, mean AUC {mean_text} over {report.num_classes_used} classes"
    )
    if report.num_classes_used:
        axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=ROC_FIGURE_DPI)
    pyplot.close(figure)
    return path
