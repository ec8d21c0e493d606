"""Score the validation and test folds with GPND's probabilistic novelty score and report metrics.

For one trained model (fold, inlier set): fit the inlier densities on the training inliers, score
every validation and test image exactly once, then for each outlier percentage build the
percentage sets as index arrays into those scores, choose the F1-maximising threshold on the
validation set and report the metrics of ``evaluation.py`` on the test set.

Usage (one model; the Testing_test_* drivers loop over folds and inlier sets):

    python novelty_detector.py --config configs/mnist.yaml --fold 0 --classes 3
"""

import json
import logging
import os

import numpy as np
import yaml

from evaluation import METRIC_NAMES, best_f1_threshold, compute_metrics
from utils.config import config_to_yaml
from utils.fileio import append_csv_rows, atomic_write, write_json, write_text
from utils.folds import inlier_mask, load_protocol, outlier_percentage_indices, training_inliers
from utils.plots import save_distance_pdf, save_latent_pdfs, save_score_distributions
from utils.results import RESULT_KEY_FIELDS, TRAINING_SETTING_FIELDS, training_settings_row
from utils.runtime import model_paths, prepare_device, results_csv_path, run_dir
from utils.scoring import fit_statistics, score_images
from utils.training import check_trained_with, load_generator_and_encoder

logger = logging.getLogger(__name__)

RESULT_FIELDS = RESULT_KEY_FIELDS + ["inlier_classes", "threshold", "validation_f1"] + METRIC_NAMES + [
    "validation_size", "test_size"] + TRAINING_SETTING_FIELDS


def _evaluation_signature(cfg, mul):
    """Return the settings that determine a run's scores, to tell whether saved results still apply."""
    tree = cfg.to_dict()
    tree.pop("RUN")
    tree["TEST"]["MUL"] = mul
    return yaml.safe_dump(tree, sort_keys=True)


def _classes_text(inliner_classes):
    return " ".join(str(label) for label in inliner_classes)


def _trained_epoch_count(output_dir, cfg):
    """Return the epochs the model was trained for, from its training log (else the config's)."""
    log_path = os.path.join(output_dir, "train_log.csv")
    if not os.path.exists(log_path):
        return cfg.TRAIN.EPOCH_COUNT
    with open(log_path, encoding="utf-8") as stream:
        return max(sum(1 for _ in stream) - 1, 0)


def _percentage_rows(cfg, folding_id, ic, inliner_classes, mul, validation, test, epochs):
    """Evaluate every outlier percentage on the scored validation and test sets."""
    rows = []
    for percentage in cfg.TEST.PERCENTAGES:
        validation_indices = outlier_percentage_indices(validation["is_inlier"], percentage, cfg.TEST.SEED)
        threshold, validation_f1 = best_f1_threshold(validation["is_inlier"][validation_indices],
                                                     validation["score"][validation_indices])
        test_indices = outlier_percentage_indices(test["is_inlier"], percentage, cfg.TEST.SEED + 1)
        metrics = compute_metrics(test["is_inlier"][test_indices], test["score"][test_indices], threshold)
        logger.info("fold %d set %d %s, %s%% outliers: AUC %.4f  F1 %.4f  (threshold %.3f)",
                    folding_id, ic, inliner_classes, percentage, metrics["auc"], metrics["f1"], threshold)
        rows.append({
            "dataset": cfg.DATASET.NAME, "fold": folding_id, "inlier_set": ic,
            "inlier_classes": _classes_text(inliner_classes),
            "percentage": percentage, "mul": mul, "threshold": threshold, "validation_f1": validation_f1,
            **metrics,
            "validation_size": len(validation_indices), "test_size": len(test_indices),
            **training_settings_row(cfg, epochs),
        })
    return rows


def _save_plots(output_dir, stats, train_latents, test):
    plots_dir = os.path.join(output_dir, "plots")
    save_distance_pdf(stats, test["distance"], os.path.join(plots_dir, "distance_pdf.png"))
    save_latent_pdfs(stats, train_latents, os.path.join(plots_dir, "latent_pdfs.png"))
    save_score_distributions(test["score"], test["is_inlier"], os.path.join(plots_dir, "score_distributions.png"))


def main(folding_id, inliner_classes, ic, total_classes, mul, folds, cfg):
    """Evaluate the model of (fold ``folding_id``, inlier set ``ic``) and return its result rows.

    ``total_classes`` and ``folds`` must agree with the config (DATASET.TOTAL_CLASS_COUNT and
    DATASET.FOLDS_COUNT); ``mul`` scales the reconstruction term's dimension count. Rows are
    also appended to the data set's results.csv. Saved results with identical settings and
    inlier classes are reused unless RUN.FORCE is set.
    """
    if total_classes != cfg.DATASET.TOTAL_CLASS_COUNT or folds != cfg.DATASET.FOLDS_COUNT:
        raise ValueError(f"main() got total_classes={total_classes}, folds={folds} but the config has "
                         f"DATASET.TOTAL_CLASS_COUNT={cfg.DATASET.TOTAL_CLASS_COUNT}, "
                         f"DATASET.FOLDS_COUNT={cfg.DATASET.FOLDS_COUNT}")
    output_dir = run_dir(cfg, folding_id, ic)
    metrics_path = os.path.join(output_dir, f"metrics_mul{mul:g}.json")
    signature = _evaluation_signature(cfg, mul)
    if os.path.exists(metrics_path) and not cfg.RUN.FORCE:
        with open(metrics_path, encoding="utf-8") as stream:
            saved = json.load(stream)
        saved_classes = {row.get("inlier_classes") for row in saved["rows"]}
        if saved.get("signature") == signature and saved_classes == {_classes_text(inliner_classes)}:
            logger.info("Fold %d, inlier set %d: results exist in %s, skipping (--force or RUN.FORCE=true rescores)",
                        folding_id, ic, metrics_path)
            return [dict(row) for row in saved["rows"]]

    device = prepare_device(cfg)
    train_split, validation_split, test_split = load_protocol(cfg, folding_id)
    train_images = training_inliers(train_split, inliner_classes, f"{cfg.DATASET.NAME} fold {folding_id}")
    check_trained_with(cfg, output_dir)
    encoder, generator = load_generator_and_encoder(cfg, model_paths(cfg, folding_id, ic), device)

    # Densities of the training inliers.
    stats, train_latents, _ = fit_statistics(encoder, generator, train_images, cfg.TEST.HISTOGRAM_BINS,
                                             cfg.TEST.BATCH_SIZE, device)

    # Every validation and test image is scored exactly once, and the percentage sets index
    # into these scores.
    scored = {}
    for name, split in [("validation", validation_split), ("test", test_split)]:
        result = score_images(encoder, generator, split.images, stats, cfg, device, mul, description=f"scoring {name}")
        result["is_inlier"] = inlier_mask(split.labels, inliner_classes)
        result["labels"] = split.labels
        scored[name] = result

    rows = _percentage_rows(cfg, folding_id, ic, inliner_classes, mul, scored["validation"], scored["test"],
                            _trained_epoch_count(output_dir, cfg))

    with atomic_write(os.path.join(output_dir, f"scores_mul{mul:g}.npz")) as stream:
        np.savez_compressed(stream, **{f"{name}_{key}": value for name, result in scored.items()
                                       for key, value in result.items()})
    _save_plots(output_dir, stats, train_latents, scored["test"])
    write_text(os.path.join(output_dir, "evaluation_config.yaml"), config_to_yaml(cfg))
    write_json(metrics_path, {"signature": signature, "statistics": stats.to_dict(), "rows": rows})
    append_csv_rows(results_csv_path(cfg), rows, RESULT_FIELDS, key_fields=RESULT_KEY_FIELDS)
    return rows


def cli():
    from utils.drivers import parse_single_task

    cfg, fold, classes, ic = parse_single_task(__doc__)
    main(fold, classes, ic, cfg.DATASET.TOTAL_CLASS_COUNT, cfg.TEST.MUL, cfg.DATASET.FOLDS_COUNT, cfg)


if __name__ == "__main__":
    cli()
