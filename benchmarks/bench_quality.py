"""Detection quality and its cost: the ablation on MNIST fold 0, all 10 digits.

Each variant trains (or reuses) one model per digit at a fixed epoch count and scores fold 0;
variants that change only the score reuse the models of the variant they derive from. The
script prints one row per variant (mean AUC over digits and percentages, mean F1 at 10 % and
50 % outliers, seconds per epoch, scoring seconds per digit) and the per-digit table of the
last variant.

    python partition_mnist.py --source /path/to/mnist     # once
    python benchmarks/bench_quality.py --epochs 5 [--variants light noisy ...]

Every variant spells out its settings (``benchmarks/common.py``), so the table does not
change when the configured defaults do. docs/BENCHMARKS.md records the table.
"""

import os
import shutil
import time

import numpy as np

from common import LIGHT_SETTINGS, PUBLISHED_SETTINGS, base_parser, configure, machine_description, mnist_config, print_table
from novelty_detector import main as evaluate
from train_AAE import train
from utils.fileio import read_csv_rows
from utils.results import format_per_class_table
from utils.runtime import model_paths

# name: (overrides, name of the variant whose models are reused, or None to train)
VARIANTS = {
    "gpnd": (PUBLISHED_SETTINGS, None),
    "light": (LIGHT_SETTINGS, None),
    "noisy": (LIGHT_SETTINGS + ["TRAIN.NOISY_FAKES=true"], None),
    # These rows train the light network at other widths: the later MODEL.WIDTH overrides the 32
    # of LIGHT_SETTINGS.
    "light 8": (LIGHT_SETTINGS + ["MODEL.WIDTH=8"], None),
    "light 16": (LIGHT_SETTINGS + ["MODEL.WIDTH=16"], None),
    "light 64": (LIGHT_SETTINGS + ["MODEL.WIDTH=64"], None),
    # Depthwise separable inner convolutions (net.py) at width 32.
    "separable": (LIGHT_SETTINGS + ["MODEL.SEPARABLE=true"], None),
    "latent only": (["TEST.USE_RECONSTRUCTION_TERM=false", "TEST.USE_JACOBIAN_TERM=false"], "light"),
    "latent + reconstruction": (["TEST.USE_JACOBIAN_TERM=false"], "light"),
    "mul 0.1": (["TEST.MUL=0.1"], "light"),
    "mul 0.5": (["TEST.MUL=0.5"], "light"),
    "mul 1.0": (["TEST.MUL=1.0"], "light"),
    # Combinations of single changes above.
    "latent + reconstruction, mul 1.0": (["TEST.USE_JACOBIAN_TERM=false", "TEST.MUL=1.0"], "light"),
    "noisy without Jacobian": (["TEST.USE_JACOBIAN_TERM=false"], "noisy"),
}
DIGITS = list(range(10))


def variant_config(args, name):
    overrides, base = VARIANTS[name]
    if base is not None:
        overrides = VARIANTS[base][0] + overrides
    folder = "results/benchmarks/quality/" + name.replace(" ", "_").replace("+", "plus")
    return mnist_config(args, overrides + [f"TRAIN.EPOCH_COUNT={args.epochs}", "RUN.FOLDS=[0]",
                                           f"RUN.OUTPUT_DIR={folder}"])


def run_variant(args, name):
    """Train (or reuse) and score every digit; return (rows, seconds per epoch, scoring seconds per digit)."""
    cfg = variant_config(args, name)
    base = VARIANTS[name][1]
    epoch_seconds = []
    scoring_seconds = []
    rows = []
    for digit in DIGITS:
        if base is None:
            train(0, [digit], digit, cfg)
            log = read_csv_rows(os.path.join(os.path.dirname(model_paths(cfg, 0, digit)[0]), "train_log.csv"))
            epoch_seconds += [float(row["seconds"]) for row in log]
        else:
            base_cfg = variant_config(args, base)
            for source, target in zip(model_paths(base_cfg, 0, digit), model_paths(cfg, 0, digit)):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(source, target)
        start = time.perf_counter()
        rows += evaluate(0, [digit], digit, 10, cfg.TEST.MUL, cfg.DATASET.FOLDS_COUNT, cfg)
        scoring_seconds.append(time.perf_counter() - start)
    return rows, (np.mean(epoch_seconds) if epoch_seconds else float("nan")), np.mean(scoring_seconds)


def main():
    parser = base_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of every variant (default 5)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to run, in order (a derived variant needs its base first)")
    args = parser.parse_args()
    device = configure(args)

    table = []
    rows = []
    for name in args.variants:
        rows, epoch_seconds, scoring_seconds = run_variant(args, name)
        auc = np.mean([float(row["auc"]) for row in rows])
        f1 = {p: np.mean([float(row["f1"]) for row in rows if float(row["percentage"]) == p]) for p in (10, 50)}
        table.append([name, f"{auc:.4f}", f"{f1[10]:.4f}", f"{f1[50]:.4f}", f"{epoch_seconds:.1f}",
                      f"{scoring_seconds:.1f}"])
        print_table(f"MNIST fold 0, digits 0-9, {args.epochs} epochs ({machine_description(device)})",
                    ["variant", "mean AUC", "F1 10 %", "F1 50 %", "s / epoch", "scoring s / digit"], table)
    print("\nPer-digit F1 of the last variant:\n")
    print(format_per_class_table(rows, "f1"))


if __name__ == "__main__":
    main()
