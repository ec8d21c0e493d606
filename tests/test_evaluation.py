"""Metrics against scikit-learn and hand-worked cases; inliers are the positive class."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score, roc_curve

from evaluation import MetricError, best_f1_threshold, compute_metrics


def brute_force_best_f1(is_inlier, scores):
    best = 0.0
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        best = max(best, f1_score(is_inlier, predicted))
    return best


def random_case(seed, size=300, ties=False):
    rng = np.random.default_rng(seed)
    is_inlier = rng.random(size) < 0.4
    scores = rng.normal(size=size) + 1.2 * is_inlier
    if ties:
        scores = np.round(scores, 1)
    return is_inlier, scores


@pytest.mark.parametrize("seed, ties", [(0, False), (1, True), (2, False), (3, True)])
def test_best_threshold_matches_brute_force(seed, ties):
    is_inlier, scores = random_case(seed, ties=ties)
    threshold, best_f1 = best_f1_threshold(is_inlier, scores)
    assert best_f1 == pytest.approx(brute_force_best_f1(is_inlier, scores), abs=1e-12)
    assert f1_score(is_inlier, scores > threshold) == pytest.approx(best_f1, abs=1e-12)


def test_best_threshold_hand_worked():
    # Sorted: 0.9 (in), 0.8 (in), 0.7 (out), 0.6 (in), 0.1 (out). Top 4: TP 3, FP 1, FN 0 -> F1 6/7.
    is_inlier = np.array([True, True, False, True, False])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    threshold, best_f1 = best_f1_threshold(is_inlier, scores)
    assert best_f1 == pytest.approx(6 / 7)
    assert threshold == pytest.approx(0.35)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
    is_inlier, scores = random_case(seed, ties=seed == 1)
    threshold = 0.3
    metrics = compute_metrics(is_inlier, scores, threshold)
    predicted = scores > threshold
    fpr, tpr, _ = roc_curve(is_inlier, scores)

    assert metrics["auc"] == pytest.approx(roc_auc_score(is_inlier, scores))
    assert metrics["f1"] == pytest.approx(f1_score(is_inlier, predicted))
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == is_inlier))
    assert metrics["fpr_at_95_tpr"] == pytest.approx(fpr[tpr >= 0.95].min())
    assert metrics["detection_error"] == pytest.approx(np.min(0.5 * (1 - tpr) + 0.5 * fpr))
    assert metrics["aupr_in"] == pytest.approx(average_precision_score(is_inlier, scores))
    assert metrics["aupr_out"] == pytest.approx(average_precision_score(~is_inlier, -scores))


def test_fpr_at_95_hand_worked():
    # 20 inliers score 1..20, 4 outliers score 0.5, 10.5, 15.5, 19.5.
    # TPR >= 0.95 needs 19 inliers: threshold just below 2 -> outliers above: 10.5, 15.5, 19.5 -> FPR 3/4.
    scores = np.concatenate([np.arange(1, 21), [0.5, 10.5, 15.5, 19.5]]).astype(float)
    is_inlier = np.array([True] * 20 + [False] * 4)
    assert compute_metrics(is_inlier, scores, 5.0)["fpr_at_95_tpr"] == pytest.approx(0.75)


def test_perfect_separation():
    is_inlier = np.array([True, True, False, False])
    metrics = compute_metrics(is_inlier, np.array([3.0, 2.0, 1.0, 0.0]), 1.5)
    assert metrics["auc"] == 1.0
    assert metrics["f1"] == 1.0
    assert metrics["detection_error"] == 0.0


def test_one_class_set_raises():
    with pytest.raises(MetricError, match="only inliers"):
        compute_metrics(np.array([True, True]), np.array([1.0, 2.0]), 0.0)
    with pytest.raises(MetricError, match="only outliers"):
        best_f1_threshold(np.array([False, False]), np.array([1.0, 2.0]))


def test_no_true_positive_gives_nan_f1_not_zero():
    metrics = compute_metrics(np.array([True, False]), np.array([1.0, 2.0]), 5.0)
    assert np.isnan(metrics["f1"])


def test_nonfinite_scores_rejected():
    with pytest.raises(MetricError, match="NaN or infinite"):
        compute_metrics(np.array([True, False]), np.array([np.inf, 2.0]), 0.0)
