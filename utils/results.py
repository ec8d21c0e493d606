"""Summaries of result rows: mean and standard deviation per outlier percentage, as Markdown."""

import math

import numpy as np

SUMMARY_METRICS = ["auc", "f1", "accuracy", "fpr_at_95_tpr", "aupr_in", "aupr_out"]


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
