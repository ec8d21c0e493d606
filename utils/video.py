"""Train and evaluate GPND on a video data set with a fixed split (UCSD Ped2), frame by frame.

Training fits the adversarial autoencoder of ``utils/training.py`` to every record of fold 0,
the normal training frames (or their patches). Evaluation first fits the inlier densities on
fold 0 (``fit_statistics``) and scores every record of fold 1 once with GPND's score
(``score_images``). It then takes each frame's minimum patch score as the frame score and
computes the frame-level metrics of ``utils/video_metrics.py`` for the four score variants.
The fold layout is described in ``utils/ucsd.py``.

Outputs in the run folder ``<RUN.OUTPUT_DIR>/<dataset>/fold_1/set_0/``, next to the model:

    video_scores_mul<m>.npz     per record: score terms, distance, clip, frame, patch, label
    frame_scores_mul<m>.csv     per test frame, in time order: clip, frame, label, the four variants
    video_metrics_mul<m>.json   per variant: metrics and per-clip AUCs; the config and densities
    plots/clips/TestNNN.png     score over time of each test clip
    plots/TestNNN.gif           animation of the test clip VIDEO.ANIMATION_CLIP

and one row per variant in ``<RUN.OUTPUT_DIR>/<dataset>/results.csv``.
"""

import argparse
import csv
import io
import logging
import math
import os
import sys

import numpy as np
import torch

from evaluation import MetricError
from utils.config import ConfigError, load_config, resolve_path
from utils.datasets import DatasetError
from utils.fileio import append_csv_rows, atomic_write, write_json, write_text
from utils.folds import FoldError, Split, fold_path, read_fold
from utils.results import TRAINING_SETTING_FIELDS, training_settings_row
from utils.runtime import model_paths, prepare_device, results_csv_path, run_dir, setup_logging, task_seed
from utils.scoring import fit_statistics, score_images
from utils.training import check_trained_with, load_generator_and_encoder, train_model
from utils.ucsd import (ANOMALOUS_LABEL, EXTRAS_NAMES, INLIER_SET_INDEX, NORMAL_LABEL, TEST_FOLD, TRAIN_FOLD,
                        preprocessing_settings, recorded_preprocessing, test_clip_name)
from utils.video_metrics import METRIC_NAMES, SCORE_VARIANTS, evaluate_variants, frame_scores_from_patches
from utils.video_plots import patch_mosaic, save_clip_animation, save_clip_score_plot

logger = logging.getLogger(__name__)

RESULT_KEY_FIELDS = ["dataset", "fold", "variant", "mul"]
RESULT_FIELDS = RESULT_KEY_FIELDS + METRIC_NAMES + [
    "test_frames", "anomalous_frames", "smoothing_sigma", "input", "difference_blur", "difference_gain",
    "difference_threshold", "pair_step", "patch_grid", "input_size", "channels",
] + TRAINING_SETTING_FIELDS


def load_fixed_split(cfg):
    """Return the (train, test) splits of a fixed-split data set, checked against ``cfg``."""
    if cfg.DATASET.PROTOCOL != "fixed_split":
        raise ConfigError(f"DATASET.PROTOCOL is {cfg.DATASET.PROTOCOL!r}; the video pipeline needs "
                          f"'fixed_split' (start from configs/ucsd.yaml)")
    folder = resolve_path(cfg.DATASET.PATH)
    patch_count = cfg.VIDEO.PATCH_GRID[0] * cfg.VIDEO.PATCH_GRID[1]
    splits = []
    for fold in (TRAIN_FOLD, TEST_FOLD):
        record = read_fold(folder, fold, cfg)
        path = fold_path(folder, fold)
        missing = [name for name in EXTRAS_NAMES if name not in record["extras"]]
        if missing:
            raise FoldError(f"{path}: the record has no {', '.join(missing)} extras; re-run partition_ucsd.py")
        expected = preprocessing_settings(cfg)
        recorded = recorded_preprocessing(record)
        differing = [f"VIDEO.{key.upper()} {recorded.get(key, 'not recorded')!r} in the file, {value!r} in the config"
                     for key, value in expected.items() if recorded.get(key) != value]
        if differing:
            raise FoldError(f"{path}: the records were made with other settings ({'; '.join(differing)}); "
                            f"re-run partition_ucsd.py with this config, or give this config a DATASET.PATH "
                            f"of its own")
        if len(record["images"]) and record["extras"]["patch"].max() + 1 != patch_count:
            raise FoldError(f"{path}: {record['extras']['patch'].max() + 1} patches per frame, but "
                            f"VIDEO.PATCH_GRID {cfg.VIDEO.PATCH_GRID} has {patch_count}; re-run "
                            f"partition_ucsd.py with this config")
        splits.append(Split(record["images"], record["labels"], record["extras"]))
    train, test = splits
    if np.any(train.labels != NORMAL_LABEL):
        raise FoldError(f"{fold_path(folder, TRAIN_FOLD)}: {np.count_nonzero(train.labels != NORMAL_LABEL)} "
                        f"training records are not labelled normal; the training fold must be normal only")
    return train, test


def train_video_model(cfg):
    """Train the adversarial autoencoder on the training fold and return the run folder.

    An existing model is kept unless RUN.FORCE is set; an interrupted run resumes.
    """
    output_dir = run_dir(cfg, TEST_FOLD, INLIER_SET_INDEX)
    model_files = model_paths(cfg, TEST_FOLD, INLIER_SET_INDEX)
    if all(os.path.exists(path) for path in model_files) and not cfg.RUN.FORCE:
        check_trained_with(cfg, output_dir)
        logger.info("%s: model exists in %s, skipping (--force retrains)", cfg.DATASET.NAME, output_dir)
        return output_dir

    device = prepare_device(cfg)
    train, _ = load_fixed_split(cfg)
    logger.info("Training %s on %d normal training records, device %s", cfg.DATASET.NAME, len(train), device)
    seed = task_seed(cfg.TRAIN.SEED, TEST_FOLD, INLIER_SET_INDEX)
    train_model(cfg, train.images, output_dir, model_files, seed, device)
    return output_dir


def reconstruct_images(encoder, generator, images, batch_size, device):
    """Return G(E(x)) of uint8 images (N, C, S, S) as float32 in [0, 1]."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
            x = x.to(device=device, dtype=torch.float32).div_(255.0)
            outputs.append(generator(encoder(x)).float().cpu().numpy())
    return np.concatenate(outputs)


def _result_row(cfg, mul, variant, metrics, table):
    return {
        "dataset": cfg.DATASET.NAME, "fold": TEST_FOLD, "variant": variant, "mul": mul,
        **{name: metrics[name] for name in METRIC_NAMES},
        "test_frames": len(table["frame"]),
        "anomalous_frames": int(np.count_nonzero(table["label"] == ANOMALOUS_LABEL)),
        "smoothing_sigma": cfg.VIDEO.SMOOTHING_SIGMA, "input": cfg.VIDEO.INPUT,
        "difference_blur": cfg.VIDEO.DIFFERENCE_BLUR, "difference_gain": cfg.VIDEO.DIFFERENCE_GAIN,
        "difference_threshold": cfg.VIDEO.DIFFERENCE_THRESHOLD, "pair_step": cfg.VIDEO.PAIR_STEP,
        "patch_grid": "x".join(str(count) for count in cfg.VIDEO.PATCH_GRID),
        "input_size": cfg.MODEL.INPUT_IMAGE_SIZE, "channels": cfg.MODEL.INPUT_IMAGE_CHANNELS,
        **training_settings_row(cfg, cfg.TRAIN.EPOCH_COUNT),
    }


def _json_number(value):
    """Return ``value`` with NaN replaced by None, since JSON has no NaN."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _frame_scores_csv(table, variants):
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["clip", "frame", "label"] + SCORE_VARIANTS)
    for index in range(len(table["frame"])):
        writer.writerow([int(table["clip"][index]), int(table["frame"][index]), int(table["label"][index])] +
                        [f"{variants[name][index]:.6f}" for name in SCORE_VARIANTS])
    return stream.getvalue()


def _save_clip_plots(plots_dir, table, variants, metrics):
    for clip in np.unique(table["clip"]):
        members = table["clip"] == clip
        clip_auc = metrics["raw"]["clip_auc"].get(int(clip))
        auc_text = f"AUC {clip_auc:.3f}" if clip_auc is not None else "one label only, no AUC"
        save_clip_score_plot(table["frame"][members], variants["raw"][members],
                             table["label"][members] == ANOMALOUS_LABEL,
                             os.path.join(plots_dir, "clips", f"{test_clip_name(clip)}.png"),
                             f"{test_clip_name(clip)}: frame score, {auc_text}",
                             smoothed=variants["smoothed"][members])


def _save_animation(cfg, plots_dir, encoder, generator, test, table, device):
    """Write the GIF of test clip VIDEO.ANIMATION_CLIP: input, reconstruction and score so far."""
    clip = cfg.VIDEO.ANIMATION_CLIP
    grid = cfg.VIDEO.PATCH_GRID
    members = np.flatnonzero(test.extras["clip"] == clip)
    members = members[np.lexsort((test.extras["patch"][members], test.extras["frame"][members]))]
    images = test.images[members]
    reconstructions = reconstruct_images(encoder, generator, images, cfg.TEST.BATCH_SIZE, device)

    patch_count = grid[0] * grid[1]
    frame_count = len(members) // patch_count
    inputs = [patch_mosaic(images[index * patch_count:(index + 1) * patch_count], grid)
              for index in range(frame_count)]
    outputs = [patch_mosaic(reconstructions[index * patch_count:(index + 1) * patch_count], grid)
               for index in range(frame_count)]
    in_clip = table["clip"] == clip
    path = os.path.join(plots_dir, f"{test_clip_name(clip)}.gif")
    gif_frames = save_clip_animation(inputs, outputs, table["frame"][in_clip], table["score"][in_clip],
                                     table["label"][in_clip] == ANOMALOUS_LABEL, path,
                                     cfg.VIDEO.ANIMATION_FRAME_STEP,
                                     f"{test_clip_name(clip)} (shaded: anomalous frames)")
    logger.info("Wrote %s (%d frames)", path, gif_frames)


def evaluate_video_model(cfg, mul=None):
    """Score the test fold with the trained model, compute the frame-level metrics and write the outputs.

    ``mul`` scales the reconstruction term's dimension count (TEST.MUL when None). Returns one
    result row per score variant; the rows are also appended to the data set's results.csv.
    Every call rescores, because scoring the test fold takes minutes at most.
    """
    mul = cfg.TEST.MUL if mul is None else mul
    output_dir = run_dir(cfg, TEST_FOLD, INLIER_SET_INDEX)
    device = prepare_device(cfg)
    train, test = load_fixed_split(cfg)
    clips = np.unique(test.extras["clip"])
    if cfg.VIDEO.ANIMATION_CLIP and cfg.VIDEO.ANIMATION_CLIP not in clips:
        raise ConfigError(f"VIDEO.ANIMATION_CLIP = {cfg.VIDEO.ANIMATION_CLIP} is not a test clip; choose one "
                          f"of {clips.tolist()}, or 0 for no animation")
    check_trained_with(cfg, output_dir)
    encoder, generator = load_generator_and_encoder(cfg, model_paths(cfg, TEST_FOLD, INLIER_SET_INDEX), device)

    stats, _, _ = fit_statistics(encoder, generator, train.images, cfg.TEST.HISTOGRAM_BINS,
                                 cfg.TEST.BATCH_SIZE, device)
    scored = score_images(encoder, generator, test.images, stats, cfg, device, mul, description="scoring test frames")
    table = frame_scores_from_patches(test.extras["clip"], test.extras["frame"], test.labels, scored["score"])
    metrics, variants = evaluate_variants(table["clip"], table["frame"], table["label"], table["score"],
                                          cfg.VIDEO.SMOOTHING_SIGMA, ANOMALOUS_LABEL)
    rows = [_result_row(cfg, mul, name, metrics[name], table) for name in SCORE_VARIANTS]
    for row in rows:
        logger.info("%s, %s scores: micro AUC %.4f  macro AUC %.4f  EER %.4f", cfg.DATASET.NAME, row["variant"],
                    row["micro_auc"], row["macro_auc"], row["eer"])

    with atomic_write(os.path.join(output_dir, f"video_scores_mul{mul:g}.npz")) as stream:
        np.savez_compressed(stream, label=test.labels, **test.extras,
                            **{key: value for key, value in scored.items() if key != "latents"})
    write_text(os.path.join(output_dir, f"frame_scores_mul{mul:g}.csv"), _frame_scores_csv(table, variants))
    write_json(os.path.join(output_dir, f"video_metrics_mul{mul:g}.json"), {
        "config": cfg.to_dict(), "mul": mul, "statistics": stats.to_dict(),
        "convention": "scores are log p(x), high = normal; AUC and EER use anomalous frames as the "
                      "positive class and the negated score as the anomaly score",
        "variants": {name: {key: _json_number(value) for key, value in metrics[name].items()}
                     for name in SCORE_VARIANTS},
    })

    plots_dir = os.path.join(output_dir, "plots")
    _save_clip_plots(plots_dir, table, variants, metrics)
    if cfg.VIDEO.ANIMATION_CLIP:
        _save_animation(cfg, plots_dir, encoder, generator, test, table, device)
    append_csv_rows(results_csv_path(cfg), rows, RESULT_FIELDS, key_fields=RESULT_KEY_FIELDS)
    return rows


def format_video_table(rows):
    """Return a Markdown table with one row per score variant: micro AUC, macro AUC and EER."""
    lines = ["| scores | micro AUC | macro AUC | EER |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['variant']} | {row['micro_auc']:.4f} | {row['macro_auc']:.4f} | {row['eer']:.4f} |")
    return "\n".join(lines)


# Errors that come from the data or the settings; the drivers log them without a traceback.
USER_ERRORS = (ConfigError, DatasetError, FoldError, MetricError, FileNotFoundError)


def _load_driver_config(description, default_config, argv, takes_force):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config, help=f"dataset YAML file (default {default_config})")
    if takes_force:
        parser.add_argument("--force", action="store_true", help="retrain even when the model exists")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set TRAIN.EPOCH_COUNT=20 (repeatable)")
    args = parser.parse_args(argv)
    # Relative config paths work from the repository root and from the current folder.
    config_path = args.config if os.path.exists(args.config) else resolve_path(args.config)
    overrides = list(args.overrides)
    if takes_force and args.force:
        overrides.append("RUN.FORCE=true")
    return load_config(config_path, overrides)


def train_driver(default_config, argv=None):
    """Train the model of a fixed-split video data set (the body of Testing_train_ucsd.py)."""
    setup_logging()
    try:
        cfg = _load_driver_config("Train the adversarial autoencoder on the normal training frames.",
                                  default_config, argv, takes_force=True)
        train_video_model(cfg)
    except USER_ERRORS as error:
        logger.error("%s", error)
        sys.exit(2)


def test_driver(default_config, argv=None):
    """Score the test frames, print the metrics table and write the outputs (Testing_test_ucsd.py)."""
    setup_logging()
    try:
        cfg = _load_driver_config("Score every test frame and report frame-level AUC and EER. Every run "
                                  "rescores.", default_config, argv, takes_force=False)
        rows = evaluate_video_model(cfg)
    except USER_ERRORS as error:
        logger.error("%s", error)
        sys.exit(2)
    print()
    print(format_video_table(rows))
    print(f"\nAll rows: {results_csv_path(cfg)}")
