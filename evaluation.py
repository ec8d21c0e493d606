"""Novelty-detection metrics. Inliers are the positive class everywhere in this project.

A higher score means "more likely an inlier"; an image is predicted an inlier when its score is
strictly greater than the threshold.

Metrics of ``compute_metrics``:

    auc              area under the ROC curve (sklearn ``roc_auc_score``)
    f1               F1 of the inlier class at the given threshold
    accuracy         fraction of correct predictions at the given threshold
    fpr_at_95_tpr    lowest false-positive rate among thresholds with a true-positive rate >= 0.95
    detection_error  min over thresholds of 0.5 (1 - TPR) + 0.5 FPR
    aupr_in          average precision with inliers positive
    aupr_out         average precision with outliers positive (scores negated)
"""

import logging

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRIC_NAMES = ["auc", "f1", "accuracy", "fpr_at_95_tpr", "detection_error", "aupr_in", "aupr_out"]
TARGET_TPR = 0.95

logger = logging.getLogger(__name__)


class MetricError(ValueError):
    """A metric is undefined for the given labels or scores."""


def _check_inputs(is_inlier, scores, what):
    is_inlier = np.asarray(is_inlier, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if is_inlier.shape != scores.shape or is_inlier.ndim != 1:
        raise MetricError(f"{what}: labels {is_inlier.shape} and scores {scores.shape} must be equal-length vectors")
    if not np.all(np.isfinite(scores)):
        raise MetricError(f"{what}: {np.count_nonzero(~np.isfinite(scores))} scores are NaN or infinite")
    positives = int(is_inlier.sum())
    if positives == 0 or positives == len(is_inlier):
        raise MetricError(f"{what}: the set has only {'inliers' if positives else 'outliers'} "
                          f"({len(is_inlier)} images); AUC and thresholds need both classes")
    return is_inlier, scores


def f1_score_from_counts(true_positive, false_positive, false_negative):
    """Return F1 = 2 TP / (2 TP + FP + FN); raise when there is no true positive."""
    if true_positive == 0:
        raise MetricError("F1 is undefined: no inlier is predicted correctly (no true positive)")
    return 2.0 * true_positive / (2.0 * true_positive + false_positive + false_negative)


def best_f1_threshold(is_inlier, scores):
    """Return (threshold, F1) maximising F1 exactly over every distinct score.

    Candidate rules are "score >= s" for each distinct score s. The returned threshold is the
    midpoint between the best s and the next lower distinct score (or s - 1 below the lowest), so
    that "score > threshold" reproduces the best rule on this set and generalises symmetrically.
    Ties in F1 go to the highest threshold.
    """
    is_inlier, scores = _check_inputs(is_inlier, scores, "threshold search")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_inliers = is_inlier[order]

    # Predict the top k images as inliers; only k at the end of a run of equal scores is valid.
    true_positive = np.cumsum(sorted_inliers)
    predicted = np.arange(1, len(scores) + 1)
    last_of_run = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    true_positive, predicted = true_positive[last_of_run], predicted[last_of_run]
    distinct_scores = sorted_scores[last_of_run]

    f1 = 2.0 * true_positive / (predicted + is_inlier.sum())
    if f1.max() <= 0:
        raise MetricError("threshold search: no threshold gives a true positive")
    best = int(np.argmax(f1))
    lower = distinct_scores[best + 1] if best + 1 < len(distinct_scores) else distinct_scores[best] - 1.0
    return 0.5 * (distinct_scores[best] + lower), float(f1[best])


def compute_metrics(is_inlier, scores, threshold):
    """Return the metrics of ``METRIC_NAMES`` for one evaluated set (inliers positive).

    Raises MetricError for a set with one class only. F1 is NaN (with a warning) when no inlier
    scores above the threshold.
    """
    is_inlier, scores = _check_inputs(is_inlier, scores, "metrics")
    predicted_inlier = scores > threshold
    true_positive = int(np.sum(predicted_inlier & is_inlier))
    false_positive = int(np.sum(predicted_inlier & ~is_inlier))
    false_negative = int(np.sum(~predicted_inlier & is_inlier))

    try:
        f1 = f1_score_from_counts(true_positive, false_positive, false_negative)
    except MetricError as error:
        # Reported as NaN, never as 0, so that means over runs show the gap.
        logger.warning("F1 reported as NaN at threshold %.6g: %s", threshold, error)
        f1 = float("nan")

    false_positive_rate, true_positive_rate, _ = roc_curve(is_inlier, scores)
    reaches_target = true_positive_rate >= TARGET_TPR
    return {
        "auc": float(roc_auc_score(is_inlier, scores)),
        "f1": f1,
        "accuracy": float(np.mean(predicted_inlier == is_inlier)),
        "fpr_at_95_tpr": float(false_positive_rate[reaches_target].min()),
        "detection_error": float(np.min(0.5 * (1.0 - true_positive_rate) + 0.5 * false_positive_rate)),
        "aupr_in": float(average_precision_score(is_inlier, scores)),
        "aupr_out": float(average_precision_score(~is_inlier, -scores)),
    }
