"""Summaries of result rows as Markdown: mean and standard deviation per outlier percentage or protocol.

``format_report`` builds the tables of ``report.py``: F1 and AUC next to GPND's published numbers,
per outlier percentage (MNIST, Fashion-MNIST and every other data set) or per
(inlier class count, outlier percentage) protocol (COIL-100).
"""

import logging
import math
import os

import numpy as np

from utils.fileio import read_csv_rows

logger = logging.getLogger(__name__)

SUMMARY_METRICS = ["auc", "f1", "accuracy", "fpr_at_95_tpr", "aupr_in", "aupr_out"]
# Columns that identify a result row. novelty_detector.py replaces a row of results.csv with the same key.
RESULT_KEY_FIELDS = ["dataset", "fold", "inlier_set", "percentage", "mul"]
# Columns that report.py needs in every results CSV.
REPORT_FIELDS = RESULT_KEY_FIELDS + ["inlier_classes", "auc", "f1"]
# Training settings recorded in every results row (see training_settings_row).
TRAINING_SETTING_FIELDS = ["arch", "width", "separable", "latent_size", "noisy_fakes", "image_adversarial", "epochs"]
# Settings that must agree between rows averaged in one report table; each combination gets its own table.
REPORT_SETTING_FIELDS = ["mul"] + TRAINING_SETTING_FIELDS
# Values of settings that older results files lack: these switches did not exist then, so those
# runs had the behaviour of the default. noisy_fakes existed before it was recorded, so a row
# without it stays unknown ("?").
SETTINGS_ABSENT_FROM_OLDER_FILES = {"separable": "False", "image_adversarial": "True"}

# GPND's published results (Pidhorskyi et al., "Generative Probabilistic Novelty Detection with
# Adversarial Autoencoders", NeurIPS 2018, arXiv:1807.02588v1): mean over the inlier classes,
# per outlier percentage. No MNIST AUC is recorded here, so its column shows NOT_PUBLISHED.
# NOTE: these numbers have not been re-checked against the paper's PDF.
PUBLISHED_BY_PERCENTAGE = {
    "mnist": {"f1": {10: 0.967, 20: 0.951, 30: 0.941, 40: 0.935, 50: 0.932}},
    "fmnist": {"f1": {10: 0.961, 20: 0.929, 30: 0.891, 40: 0.841, 50: 0.809},
               "auc": {10: 0.915, 20: 0.910, 30: 0.907, 40: 0.902, 50: 0.901}},
}
# The same paper's COIL-100 results, keyed by (inlier class count, outlier percentage).
PUBLISHED_BY_PROTOCOL = {
    "coil100": {(1, 50): {"auc": 0.968, "f1": 0.979},
                (4, 25): {"auc": 0.945, "f1": 0.960},
                (7, 15): {"auc": 0.919, "f1": 0.941}},
}
# Cell of a published column that has no value recorded here.
NOT_PUBLISHED = "–"


class ResultsError(ValueError):
    """A results CSV that is missing, empty or lacks required columns."""


def summarize(rows, metrics=SUMMARY_METRICS):
    """Return {percentage: {metric: (mean, std, count)}} over result rows (std with ddof 0)."""
    by_percentage = {}
    for row in rows:
        by_percentage.setdefault(float(row["percentage"]), []).append(row)
    summary = {}
    for percentage in sorted(by_percentage):
        group = by_percentage[percentage]
        summary[percentage] = {}
        for metric in metrics:
            values = np.array([float(row[metric]) for row in group], dtype=np.float64)
            summary[percentage][metric] = (float(np.mean(values)), float(np.std(values)), len(values))
    return summary


def _format_number(value):
    return "nan" if math.isnan(value) else f"{value:.4f}"


def format_summary_table(rows, metrics=SUMMARY_METRICS, title=None):
    """Return a Markdown table: one row per percentage, "mean ± std" per metric."""
    if not rows:
        return "(no results)"
    summary = summarize(rows, metrics)
    runs = len({(row["fold"], row["inlier_set"]) for row in rows})
    lines = []
    if title:
        lines.append(f"{title} (mean ± std over {runs} runs)")
        lines.append("")
    lines.append("| outliers | " + " | ".join(metrics) + " |")
    lines.append("|---|" + "---|" * len(metrics))
    for percentage, values in summary.items():
        cells = [f"{_format_number(values[metric][0])} ± {_format_number(values[metric][1])}" for metric in metrics]
        lines.append(f"| {percentage:g} % | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_per_class_table(rows, metric):
    """Return a Markdown table of ``metric`` with one row per inlier set and one column per percentage."""
    percentages = sorted({float(row["percentage"]) for row in rows})
    sets = sorted({(int(row["fold"]), int(row["inlier_set"]), row["inlier_classes"]) for row in rows})
    lookup = {(int(row["fold"]), int(row["inlier_set"]), float(row["percentage"])): float(row[metric]) for row in rows}
    lines = [f"| fold | inliers | " + " | ".join(f"{metric} {p:g} %" for p in percentages) + " |",
             "|---|---|" + "---|" * len(percentages)]
    for fold, ic, classes in sets:
        cells = [_format_number(lookup.get((fold, ic, p), float("nan"))) for p in percentages]
        lines.append(f"| {fold} | {classes} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format_mean_std(values):
    mean, std, _ = values
    return f"{_format_number(mean)} ± {_format_number(std)}"


def _format_published(value):
    return NOT_PUBLISHED if value is None else f"{value:.3f}"


def format_percentage_table(rows, published=None):
    """Return a Markdown table of F1 and AUC (mean ± std over all rows) per outlier percentage.

    ``published`` maps "f1" and "auc" to {percentage: value}; missing values show as NOT_PUBLISHED.
    """
    published = published or {}
    summary = summarize(rows, ["f1", "auc"])
    lines = ["| outliers | F1 | GPND F1 | AUC | GPND AUC | runs |",
             "|---|---|---|---|---|---|"]
    for percentage, values in summary.items():
        gpnd_f1 = published.get("f1", {}).get(percentage)
        gpnd_auc = published.get("auc", {}).get(percentage)
        lines.append(f"| {percentage:g} % | {_format_mean_std(values['f1'])} | {_format_published(gpnd_f1)} | "
                     f"{_format_mean_std(values['auc'])} | {_format_published(gpnd_auc)} | {values['f1'][2]} |")
    return "\n".join(lines)


def protocol_of(row):
    """Return the (inlier class count, outlier percentage) protocol of a result row."""
    return len(str(row["inlier_classes"]).split()), float(row["percentage"])


def format_protocol_table(rows, published=None, title=None):
    """Return a Markdown table of AUC and F1 (mean ± std) per (inlier class count, outlier percentage).

    ``published`` maps (count, percentage) to {"auc": value, "f1": value}.
    """
    published = published or {}
    by_protocol = {}
    for row in rows:
        by_protocol.setdefault(protocol_of(row), []).append(row)
    lines = []
    if title:
        lines += [f"{title} (mean ± std over draws and folds)", ""]
    lines += ["| inlier classes | outliers | AUC | GPND AUC | F1 | GPND F1 | runs |",
              "|---|---|---|---|---|---|---|"]
    for (count, percentage), group in sorted(by_protocol.items()):
        values = summarize(group, ["auc", "f1"])[percentage]
        reference = published.get((count, percentage), {})
        lines.append(f"| {count} | {percentage:g} % | {_format_mean_std(values['auc'])} | "
                     f"{_format_published(reference.get('auc'))} | {_format_mean_std(values['f1'])} | "
                     f"{_format_published(reference.get('f1'))} | {len(group)} |")
    return "\n".join(lines)


def _row_key(row):
    return (row["dataset"], int(row["fold"]), int(row["inlier_set"]), float(row["percentage"]), float(row["mul"]))


def read_result_files(paths):
    """Read and merge results CSV files, for example the shards of one grid.

    A row whose key (RESULT_KEY_FIELDS) appears in several files is taken from the last file
    given. Raises ResultsError for a missing file, a file without rows or missing columns.
    """
    merged = {}
    replaced = 0
    for path in paths:
        if not os.path.isfile(path):
            raise ResultsError(f"results file {path} not found; pass the results.csv that "
                               f"Testing_test_<dataset>.py writes under RUN.OUTPUT_DIR")
        rows = read_csv_rows(path)
        if not rows:
            raise ResultsError(f"{path}: no result rows")
        missing = [name for name in REPORT_FIELDS if name not in rows[0]]
        if missing:
            raise ResultsError(f"{path}: missing columns {missing}; expected a results.csv written by "
                               f"novelty_detector.py")
        for line, row in enumerate(rows, start=2):
            try:
                key = _row_key(row)
            except ValueError as error:
                raise ResultsError(f"{path}, line {line}: invalid key value ({error})") from error
            if key in merged and merged[key] != row:
                replaced += 1
            merged[key] = row
    if replaced:
        logger.warning("%d result rows appear with different values in several files; the last file's "
                       "rows are used", replaced)
    return list(merged.values())


def training_settings_row(cfg, epochs):
    """Return the TRAINING_SETTING_FIELDS columns of a results row for a model trained with ``cfg``."""
    return {"arch": cfg.MODEL.ARCH, "width": cfg.MODEL.WIDTH, "separable": cfg.MODEL.SEPARABLE,
            "latent_size": cfg.MODEL.LATENT_SIZE, "noisy_fakes": cfg.TRAIN.NOISY_FAKES,
            "image_adversarial": cfg.TRAIN.IMAGE_ADVERSARIAL, "epochs": epochs}


def _setting(row, field):
    """Return a row's value of a report setting, filling settings that older files lack."""
    value = row.get(field, "")
    if value == "":
        return SETTINGS_ABSENT_FROM_OLDER_FILES.get(field, "?")
    return value


def _settings_text(row):
    return ", ".join(f"{field.replace('_', ' ')} {_setting(row, field)}" for field in REPORT_SETTING_FIELDS)


def format_report(rows):
    """Return the Markdown report of ``rows``: one table per data set and combination of settings.

    COIL-100 (and every data set in PUBLISHED_BY_PROTOCOL) gets a table per protocol, every other
    data set a table per outlier percentage. Means and standard deviations (ddof 0) run over
    all folds and inlier sets of a table.
    """
    if not rows:
        return "(no results)"
    groups = {}
    for row in rows:
        settings = tuple(_setting(row, field) for field in REPORT_SETTING_FIELDS)
        groups.setdefault((row["dataset"], settings), []).append(row)

    sections = []
    for (dataset, _), group in sorted(groups.items()):
        folds = sorted({int(row["fold"]) for row in group})
        inlier_sets = {int(row["inlier_set"]) for row in group}
        heading = (f"## {dataset} ({_settings_text(group[0])}; folds {', '.join(map(str, folds))}; "
                   f"{len(inlier_sets)} inlier sets)")
        if dataset in PUBLISHED_BY_PROTOCOL:
            table = format_protocol_table(group, PUBLISHED_BY_PROTOCOL[dataset])
        else:
            table = format_percentage_table(group, PUBLISHED_BY_PERCENTAGE.get(dataset))
        sections.append(heading + "\n\n" + table)
    return "\n\n".join(sections)
