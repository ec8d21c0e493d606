"""Frame-level metrics of video anomaly detection, computed as in the UCSD Ped2 literature.

Scores follow the project's convention: a frame's score is log p(x), high for normal frames.
The video literature instead ranks frames by an anomaly score with the anomalous frames as the
positive class. This module computes every metric that way, with the negated score as the
anomaly score. The AUC is the same number either way, because swapping the positive class and
negating the score leaves the area under the ROC curve unchanged. The equal error rate is also
unchanged, because the swap exchanges the false-positive and false-negative rates.

Metrics over the test frames of all clips:

    micro_auc   AUC over the concatenated frames of all clips
    macro_auc   mean of the per-clip AUCs. A clip whose frames all have one label has no AUC
                and is left out. ``macro_auc_clips`` counts the clips used and
                ``skipped_clips`` lists the others.
    eer         equal error rate over the concatenated frames: the false-positive rate where it
                equals the false-negative rate, on the piecewise-linear ROC curve

Each is reported for four score variants (``SCORE_VARIANTS``):

    raw                  the frame scores as they are
    normalised           min-max normalised to [0, 1] within each clip
    smoothed             smoothed over time within each clip with a Gaussian of sigma frames
    smoothed_normalised  smoothed first, then normalised

Per-clip normalisation is monotone within a clip, so it leaves the macro AUC unchanged.
"""

import logging

import numpy as np
from scipy.ndimage import gaussian_filter1d
from sklearn.metrics import roc_auc_score, roc_curve

from evaluation import MetricError

logger = logging.getLogger(__name__)

SCORE_VARIANTS = ["raw", "normalised", "smoothed", "smoothed_normalised"]
METRIC_NAMES = ["micro_auc", "macro_auc", "eer", "macro_auc_clips", "skipped_clips"]
# A clip whose scores are all equal has no min-max range. Its normalised scores are set to the
# middle of [0, 1] instead of to either end, where they would rank as the most normal or the
# most anomalous frames of all clips.
CONSTANT_CLIP_SCORE = 0.5
# Edge handling of the temporal smoothing: the first and last frames are repeated, so that the
# clip ends are averaged with their own values only and never with a neighbouring clip.
SMOOTHING_MODE = "nearest"


def frame_scores_from_patches(clips, frames, labels, scores):
    """Reduce patch scores to frame scores, in time order: each frame gets its minimum patch score.

    The minimum is the least likely patch, so one anomalous patch makes the frame anomalous.
    Returns a dict of arrays ``clip``, ``frame``, ``label`` and ``score``, one entry per frame,
    sorted by clip and then frame number. Raises ValueError when the patches of a frame have
    different labels.
    """
    clips, frames = np.asarray(clips), np.asarray(frames)
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    order = np.lexsort((frames, clips))
    clips, frames, labels, scores = clips[order], frames[order], labels[order], scores[order]

    new_frame = np.ones(len(clips), dtype=bool)
    new_frame[1:] = (clips[1:] != clips[:-1]) | (frames[1:] != frames[:-1])
    starts = np.flatnonzero(new_frame)
    label_min = np.minimum.reduceat(labels, starts)
    label_max = np.maximum.reduceat(labels, starts)
    if np.any(label_min != label_max):
        bad = starts[np.flatnonzero(label_min != label_max)[0]]
        raise ValueError(f"clip {clips[bad]}, frame {frames[bad]}: its patches have different labels; "
                         f"every patch must carry its frame's label")
    return {"clip": clips[starts], "frame": frames[starts], "label": label_min,
            "score": np.minimum.reduceat(scores, starts)}


def _clip_slices(clips, frames):
    """Return one slice per clip of arrays sorted by clip and frame; raise unless frames are consecutive."""
    clips, frames = np.asarray(clips), np.asarray(frames)
    boundaries = np.flatnonzero(clips[1:] != clips[:-1]) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(clips)]])
    if len(np.unique(clips)) != len(starts):
        raise ValueError("frames are not grouped by clip; sort them with frame_scores_from_patches")
    slices = []
    for start, end in zip(starts, ends):
        if np.any(np.diff(frames[start:end]) != 1):
            raise ValueError(f"clip {clips[start]}: frames are not consecutive in time order, so the scores "
                             f"cannot be smoothed over time; sort them with frame_scores_from_patches")
        slices.append(slice(start, end))
    return slices


def normalise_per_clip(clips, frames, scores):
    """Return the scores min-max normalised to [0, 1] within each clip."""
    scores = np.asarray(scores, dtype=np.float64)
    normalised = np.empty_like(scores)
    for part in _clip_slices(clips, frames):
        low, high = scores[part].min(), scores[part].max()
        if high > low:
            normalised[part] = (scores[part] - low) / (high - low)
        else:
            logger.warning("clip %s: all %d scores are equal (%.6g); normalised scores set to %.1f",
                           clips[part.start], part.stop - part.start, low, CONSTANT_CLIP_SCORE)
            normalised[part] = CONSTANT_CLIP_SCORE
    return normalised


def smooth_per_clip(clips, frames, scores, sigma):
    """Return the scores smoothed over time within each clip by a Gaussian of ``sigma`` frames."""
    scores = np.asarray(scores, dtype=np.float64)
    smoothed = np.empty_like(scores)
    for part in _clip_slices(clips, frames):
        smoothed[part] = gaussian_filter1d(scores[part], sigma, mode=SMOOTHING_MODE)
    return smoothed


def score_variants(clips, frames, scores, sigma):
    """Return {variant: frame scores} for every name of SCORE_VARIANTS (arrays in time order)."""
    smoothed = smooth_per_clip(clips, frames, scores, sigma)
    return {
        "raw": np.asarray(scores, dtype=np.float64),
        "normalised": normalise_per_clip(clips, frames, scores),
        "smoothed": smoothed,
        "smoothed_normalised": normalise_per_clip(clips, frames, smoothed),
    }


def _check_both_labels(is_anomalous, metric_name):
    anomalous = int(np.count_nonzero(is_anomalous))
    if anomalous == 0 or anomalous == len(is_anomalous):
        raise MetricError(f"{metric_name}: all {len(is_anomalous)} frames are {'anomalous' if anomalous else 'normal'}; "
                          f"AUC and EER need both normal and anomalous frames")


def equal_error_rate(is_anomalous, anomaly_scores):
    """Return the equal error rate, with anomalous frames positive and high anomaly scores anomalous.

    The ROC curve is taken as piecewise linear between sklearn's ``roc_curve`` points, and the
    EER is the false-positive rate where the curve meets the line FPR = FNR = 1 - TPR.
    """
    is_anomalous = np.asarray(is_anomalous, dtype=bool)
    _check_both_labels(is_anomalous, "equal error rate")
    false_positive_rate, true_positive_rate, _ = roc_curve(is_anomalous, anomaly_scores)
    # FNR - FPR falls from 1 at the first ROC point to -1 at the last one.
    difference = (1.0 - true_positive_rate) - false_positive_rate
    crossing = int(np.flatnonzero(difference <= 0)[0])
    if difference[crossing] == 0:
        return float(false_positive_rate[crossing])
    before = crossing - 1
    fraction = difference[before] / (difference[before] - difference[crossing])
    return float(false_positive_rate[before] + fraction * (false_positive_rate[crossing] - false_positive_rate[before]))


def clip_aucs(clips, is_anomalous, anomaly_scores):
    """Return ({clip: AUC} for clips with both labels, [clips with one label only])."""
    clips = np.asarray(clips)
    is_anomalous = np.asarray(is_anomalous, dtype=bool)
    anomaly_scores = np.asarray(anomaly_scores, dtype=np.float64)
    aucs, skipped = {}, []
    for clip in np.unique(clips):
        members = clips == clip
        if is_anomalous[members].all() or not is_anomalous[members].any():
            skipped.append(int(clip))
            continue
        aucs[int(clip)] = float(roc_auc_score(is_anomalous[members], anomaly_scores[members]))
    return aucs, skipped


def frame_level_metrics(clips, is_anomalous, scores):
    """Return micro AUC, macro AUC, EER and the per-clip AUCs of one score variant.

    ``scores`` follow the project's convention (high = normal); the metrics use the negated
    scores with anomalous frames positive. Returns a dict with the keys of METRIC_NAMES plus
    ``clip_auc`` ({clip: AUC}). The macro AUC is NaN, with a warning, when no clip has both labels.
    """
    is_anomalous = np.asarray(is_anomalous, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise MetricError(f"{np.count_nonzero(~np.isfinite(scores))} frame scores are NaN or infinite")
    _check_both_labels(is_anomalous, "micro AUC")
    anomaly_scores = -scores

    aucs, skipped = clip_aucs(clips, is_anomalous, anomaly_scores)
    if aucs:
        macro_auc = float(np.mean(list(aucs.values())))
    else:
        logger.warning("macro AUC is NaN: none of the %d clips has both normal and anomalous frames", len(skipped))
        macro_auc = float("nan")
    return {
        "micro_auc": float(roc_auc_score(is_anomalous, anomaly_scores)),
        "macro_auc": macro_auc,
        "eer": equal_error_rate(is_anomalous, anomaly_scores),
        "macro_auc_clips": len(aucs),
        "skipped_clips": " ".join(str(clip) for clip in skipped),
        "clip_auc": aucs,
    }


def evaluate_variants(clips, frames, labels, scores, sigma, anomalous_label=1):
    """Return {variant: metrics of ``frame_level_metrics``} and the variant scores, for frames in time order."""
    is_anomalous = np.asarray(labels) == anomalous_label
    variants = score_variants(clips, frames, scores, sigma)
    metrics = {name: frame_level_metrics(clips, is_anomalous, values) for name, values in variants.items()}
    skipped = metrics["raw"]["skipped_clips"]
    if skipped:
        logger.info("macro AUC leaves out the clips with one label only: %s", skipped)
    return metrics, variants
