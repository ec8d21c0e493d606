"""Class-stratified folds, the GPND train/validation/test protocol and outlier-percentage sets.

A fold file ``data_fold_<k>.pkl`` holds one dictionary (a "fold record"):

    format       FOLD_FORMAT, so that other pickles are recognised and rejected
    dataset      data set name, e.g. "mnist"
    fold, folds_count, seed
    images       uint8 array (N, C, H, W)
    labels       int64 array (N,)
    extras       dictionary of per-image int64 arrays (N,), e.g. clip id and frame number

Protocol, as in GPND: for fold k the test set is fold k, the validation set is fold k+1 (mod the
fold count, all classes) and the training set is the remaining folds filtered to the inliers.
Data sets with DATASET.PROTOCOL "fixed_split" (UCSD Ped2) instead have exactly two fold files,
fold 0 the training set and fold 1 the test set, and are read by ``utils/video.py``.
"""

import logging
import os

import numpy as np

from utils.config import resolve_path
from utils.fileio import load_pickle, save_pickle

logger = logging.getLogger(__name__)

FOLD_FORMAT = "gpnd-fold-v1"


class FoldError(ValueError):
    """Fold files that are missing or do not match the configuration."""


def split_into_folds(labels, folds_count, seed):
    """Return, per fold, the indices of its images: a seeded shuffle, then an equal split per class.

    Each class contributes ``count // folds_count`` images to every fold; the remaining
    ``count % folds_count`` images of a class are left out, so that folds are equal per class.
    """
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    folds = [[] for _ in range(folds_count)]
    for label in np.unique(labels):
        members = order[labels[order] == label]
        per_fold = len(members) // folds_count
        if per_fold == 0:
            raise FoldError(f"class {label} has {len(members)} images, fewer than the "
                            f"{folds_count} folds; lower DATASET.FOLDS_COUNT")
        for fold in range(folds_count):
            folds[fold].append(members[fold * per_fold:(fold + 1) * per_fold])
    return [np.sort(np.concatenate(parts)) for parts in folds]


def fold_path(folder, fold):
    return os.path.join(folder, f"data_fold_{fold}.pkl")


def write_folds(folder, dataset, images, labels, folds_count, seed, extras=None):
    """Split ``images``/``labels`` into folds and write one fold file each, atomically."""
    extras = extras or {}
    paths = []
    for fold, indices in enumerate(split_into_folds(labels, folds_count, seed)):
        record = {
            "format": FOLD_FORMAT,
            "dataset": dataset,
            "fold": fold,
            "folds_count": folds_count,
            "seed": seed,
            "images": np.ascontiguousarray(images[indices]),
            "labels": np.asarray(labels[indices], dtype=np.int64),
            "extras": {name: np.asarray(values[indices], dtype=np.int64) for name, values in extras.items()},
        }
        path = fold_path(folder, fold)
        save_pickle(path, record)
        counts = np.bincount(record["labels"])
        logger.info("Wrote %s: %d images, per class %s", path, len(indices), counts.tolist())
        paths.append(path)
    return paths


def write_single_fold(folder, dataset, fold, folds_count, seed, images, labels, extras=None, preprocessing=None):
    """Write one fold record as given, for data sets whose split is fixed (UCSD Ped2).

    ``preprocessing`` (plain strings, numbers and lists) records the settings that made the
    records, so that reading the fold with a config of other settings can raise an error.
    """
    record = {
        "format": FOLD_FORMAT, "dataset": dataset, "fold": fold, "folds_count": folds_count,
        "seed": seed, "images": np.ascontiguousarray(images),
        "labels": np.asarray(labels, dtype=np.int64),
        "extras": {name: np.asarray(values, dtype=np.int64) for name, values in (extras or {}).items()},
        "preprocessing": dict(preprocessing or {}),
    }
    path = fold_path(folder, fold)
    save_pickle(path, record)
    return path


def read_fold(folder, fold, cfg):
    """Read one fold file and check it against the config (data set, fold count, image shape)."""
    path = fold_path(folder, fold)
    if not os.path.isfile(path):
        raise FoldError(f"{path} not found; run the partition script for {cfg.DATASET.NAME} first "
                        f"(it writes the fold files into DATASET.PATH)")
    record = load_pickle(path)
    if not isinstance(record, dict) or record.get("format") != FOLD_FORMAT:
        raise FoldError(f"{path}: not a fold file of this project (no '{FOLD_FORMAT}' record); "
                        f"re-run the partition script")

    expected_shape = (cfg.MODEL.INPUT_IMAGE_CHANNELS, cfg.MODEL.INPUT_IMAGE_SIZE, cfg.MODEL.INPUT_IMAGE_SIZE)
    images, labels = record["images"], record["labels"]
    problems = []
    if record["dataset"] != cfg.DATASET.NAME:
        problems.append(f"data set {record['dataset']!r}, expected {cfg.DATASET.NAME!r}")
    if record["folds_count"] != cfg.DATASET.FOLDS_COUNT:
        problems.append(f"{record['folds_count']} folds, expected DATASET.FOLDS_COUNT = {cfg.DATASET.FOLDS_COUNT}")
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected_shape:
        problems.append(f"images of shape {images.shape[1:]} ({images.dtype}), expected {expected_shape} uint8 "
                        f"from MODEL.INPUT_IMAGE_CHANNELS/INPUT_IMAGE_SIZE")
    if len(labels) != len(images):
        problems.append(f"{len(labels)} labels for {len(images)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= cfg.DATASET.TOTAL_CLASS_COUNT):
        problems.append(f"labels in {labels.min()}..{labels.max()}, expected 0..{cfg.DATASET.TOTAL_CLASS_COUNT - 1}")
    if problems:
        raise FoldError(f"{path}: " + "; ".join(problems) + ". Re-run the partition script with this config.")
    return record


class Split:
    """Images and labels of one part of the protocol (train, validation or test)."""

    def __init__(self, images, labels, extras=None):
        self.images = images
        self.labels = labels
        self.extras = extras or {}

    def __len__(self):
        return len(self.labels)


def load_protocol(cfg, fold):
    """Return the (train, validation, test) splits of ``fold``, train still holding all classes."""
    if cfg.DATASET.PROTOCOL != "folds":
        raise FoldError(f"{cfg.DATASET.NAME}: DATASET.PROTOCOL is {cfg.DATASET.PROTOCOL!r}, which has a fixed "
                        f"training fold and test fold and no validation fold, so the rotating fold protocol "
                        f"does not apply; use the video drivers (Testing_train_ucsd.py, Testing_test_ucsd.py)")
    folder = resolve_path(cfg.DATASET.PATH)
    folds_count = cfg.DATASET.FOLDS_COUNT
    validation_fold = (fold + 1) % folds_count
    records = {index: read_fold(folder, index, cfg) for index in range(folds_count)}

    def merge(indices):
        parts = [records[index] for index in indices]
        extras_names = parts[0]["extras"].keys()
        return Split(np.concatenate([part["images"] for part in parts]),
                     np.concatenate([part["labels"] for part in parts]),
                     {name: np.concatenate([part["extras"][name] for part in parts]) for name in extras_names})

    train_folds = [index for index in range(folds_count) if index not in (fold, validation_fold)]
    return merge(train_folds), merge([validation_fold]), merge([fold])


def inlier_mask(labels, inlier_classes):
    return np.isin(labels, np.asarray(inlier_classes))


def training_inliers(train, inlier_classes, fold_description):
    """Return the training images of the inlier classes; raise if a class has none."""
    mask = inlier_mask(train.labels, inlier_classes)
    for label in inlier_classes:
        if not np.any(train.labels == label):
            raise FoldError(f"{fold_description}: class {label} has no training images; check "
                            f"RUN.INLIER_SETS and DATASET.TOTAL_CLASS_COUNT against the fold files")
    return train.images[mask]


def _repeat_to_length(indices, length):
    """Repeat ``indices`` whole as often as needed and cut to ``length`` (GPND's increase_length)."""
    repeats = -(-length // len(indices))
    return np.tile(indices, repeats)[:length]


def outlier_percentage_indices(is_inlier, percentage, seed):
    """Return indices into a split that form a set with ``percentage`` % outliers.

    As in GPND's conservative mode, nothing is dropped: the minority side is repeated until the
    target share is reached. The seeded generator is private to this call, so the global numpy
    state is never touched and each percentage gets the same set on every run.
    """
    is_inlier = np.asarray(is_inlier, dtype=bool)
    rng = np.random.default_rng([seed, int(round(percentage * 1000))])
    inliers = rng.permutation(np.flatnonzero(is_inlier))
    outliers = rng.permutation(np.flatnonzero(~is_inlier))
    if len(inliers) == 0 or len(outliers) == 0:
        raise FoldError(f"cannot build a {percentage} % outlier set from {len(inliers)} inliers and "
                        f"{len(outliers)} outliers; both classes must be present")

    current_percentage = 100.0 * len(outliers) / (len(outliers) + len(inliers))
    if current_percentage < percentage:
        outlier_count = max(1, int(len(inliers) * percentage / (100.0 - percentage)))
        outliers = _repeat_to_length(outliers, outlier_count)
    else:
        inlier_count = max(1, int(len(outliers) * (100.0 - percentage) / percentage))
        inliers = _repeat_to_length(inliers, inlier_count)
    return rng.permutation(np.concatenate([outliers, inliers]))
