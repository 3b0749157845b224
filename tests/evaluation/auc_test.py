import json

import numpy as np
import pytest

from keras_dissect import evaluation

pytestmark = pytest.mark.backend_independent


def test_auc_matches_pair_count():
    # Positives score 0.9 and 0.4, negatives 0.2 and 0.6: 3 of the 4
    # positive-negative pairs are ordered correctly, so AUC = 0.75 exactly.
    labels = np.array([[1], [0], [1], [0]])
    scores = np.array([[0.9], [0.2], [0.4], [0.6]])
    report = evaluation.compute_auc_report(labels, scores, ["Nodule"])
    assert report.classes[0].auc == pytest.approx(0.75, abs=1e-12)
    assert report.mean_auc == pytest.approx(0.75, abs=1e-12)
    assert report.num_classes_used == 1


def test_auc_counts_ties_as_half():
    labels = np.array([1, 0, 0])
    scores = np.array([0.5, 0.5, 0.1])
    report = evaluation.compute_auc_report(labels, scores)
    # One tied pair (0.5) and one correct pair: (0.5 + 1) / 2.
    assert report.classes[0].auc == pytest.approx(0.75, abs=1e-12)


def test_auc_ignores_minus_one():
    # Without the ignored entry the ordering is perfect; counting -1 as a
    # negative with the highest score would lower the AUC to 2/3.
    labels = np.array([[1], [0], [-1], [1]])
    scores = np.array([[0.8], [0.1], [0.99], [0.7]])
    report = evaluation.compute_auc_report(labels, scores)
    assert report.classes[0].auc == pytest.approx(1.0, abs=1e-12)
    assert report.classes[0].positives == 2
    assert report.classes[0].negatives == 1


def test_auc_class_without_positives_left_out():
    labels = np.array([[1, 0, -1], [0, 0, -1], [1, 0, -1], [0, 0, -1]])
    scores = np.array(
        [[0.9, 0.3, 0.5], [0.2, 0.1, 0.5], [0.4, 0.7, 0.5], [0.6, 0.2, 0.5]]
    )
    report = evaluation.compute_auc_report(labels, scores, ["a", "b", "c"])
    statuses = [item.status for item in report.classes]
    assert statuses == ["ok", "no positives", "no labels"]
    assert report.classes[1].auc is None
    assert report.classes[2].auc is None
    assert report.num_classes_used == 1
    assert report.num_classes == 3
    # The mean covers class "a" only.
    assert report.mean_auc == pytest.approx(0.75, abs=1e-12)


def test_auc_class_without_negatives():
    labels = np.array([[1, 1], [0, 1], [1, 1]])
    scores = np.array([[0.9, 0.1], [0.2, 0.2], [0.4, 0.3]])
    report = evaluation.compute_auc_report(labels, scores)
    assert report.classes[1].status == "no negatives"
    assert report.mean_auc == pytest.approx(1.0)


def test_auc_all_ignored_gives_no_mean():
    labels = -np.ones((4, 2))
    report = evaluation.compute_auc_report(labels, np.zeros((4, 2)))
    assert report.mean_auc is None
    assert report.num_classes_used == 0


def test_auc_mean_over_several_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(50, 3))
    scores = rng.random((50, 3))
    report = evaluation.compute_auc_report(labels, scores)

    # Independent Mann-Whitney computation of each class AUC.
    expected = []
    for k in range(3):
        positive = scores[labels[:, k] == 1, k]
        negative = scores[labels[:, k] == 0, k]
        greater = (positive[:, None] > negative[None, :]).mean()
        ties = (positive[:, None] == negative[None, :]).mean()
        expected.append(greater + 0.5 * ties)
    assert report.mean_auc == pytest.approx(np.mean(expected), abs=1e-12)


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), "same shape"),
        (np.array([[2.0], [0.0]]), np.zeros((2, 1)), "only 1, 0 and -1"),
        (np.array([[1.0], [0.0]]), np.array([[np.nan], [0.0]]), "finite"),
    ],
)
def test_auc_rejects_bad_input(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        evaluation.compute_auc_report(labels, scores)


def test_auc_rejects_wrong_name_count():
    with pytest.raises(ValueError, match="class_names"):
        evaluation.compute_auc_report(np.zeros((2, 2)), np.zeros((2, 2)), ["a"])


def test_report_writers(tmp_path):
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.3], [0.2, 0.1], [0.4, 0.7], [0.6, 0.2]])
    report = evaluation.compute_auc_report(labels, scores, ["Nodule", "Mass"])

    json_path = evaluation.write_auc_json(report, tmp_path / "auc.json", {"split": "test"})
    data = json.loads(json_path.read_text())
    assert data["split"] == "test"
    assert data["num_classes_used"] == 1
    assert data["classes"][1]["status"] == "no positives"
    assert evaluation.AUCReport.from_dict(data) == report

    table = evaluation.auc_markdown_table(report, title="test")
    assert "| Nodule | 0.7500 | 2 | 2 |  |" in table
    assert "| Mass | - | 0 | 4 | no positives, not in mean |" in table
    assert "over 1 of 2 classes" in table

    png = evaluation.plot_roc_curves(labels, scores, report, tmp_path / "roc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
