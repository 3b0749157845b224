"""Evaluation of downstream tasks: ROC AUC reports and segmentation scores."""

from keras_dissect.evaluation.auc import AUCReport
from keras_dissect.evaluation.auc import ClassAUC
from keras_dissect.evaluation.auc import compute_auc_report
from keras_dissect.evaluation.report_writers import auc_markdown_table
from keras_dissect.evaluation.report_writers import plot_roc_curves
from keras_dissect.evaluation.report_writers import write_auc_json
from keras_dissect.evaluation.report_writers import write_auc_markdown
from keras_dissect.evaluation.segmentation_metrics import dice_per_image
from keras_dissect.evaluation.segmentation_metrics import iou_per_image
from keras_dissect.evaluation.segmentation_metrics import segmentation_scores
from keras_dissect.evaluation.validation_auc import ValidationAUC
from keras_dissect.evaluation.validation_auc import predict_with_labels
