"""Draw the class counts per fold and a grid of sample images per class to a PNG.

    python folds_visualization.py --config configs/mnist.yaml [--output folds.png]
"""

import argparse
import logging
import os

from utils.config import load_config, resolve_path
from utils.folds import read_fold
from utils.plots import save_fold_summary
from utils.runtime import dataset_dir, setup_logging

logger = logging.getLogger(__name__)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist.yaml", help="dataset YAML file")
    parser.add_argument("--output", help="PNG path (default <OUTPUT_DIR>/<dataset>/folds.png)")
    parser.add_argument("--samples", type=int, default=8, help="sample images per class")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (repeatable)")
    args = parser.parse_args()
    setup_logging()

    cfg = load_config(args.config if os.path.exists(args.config) else resolve_path(args.config), args.overrides)
    folder = resolve_path(cfg.DATASET.PATH)
    records = [read_fold(folder, fold, cfg) for fold in range(cfg.DATASET.FOLDS_COUNT)]
    class_names = [str(label) for label in range(cfg.DATASET.TOTAL_CLASS_COUNT)]
    output = args.output or os.path.join(dataset_dir(cfg), "folds.png")
    save_fold_summary(records, class_names, output, samples_per_class=args.samples, seed=cfg.DATASET.SEED)
    logger.info("Wrote %s", output)


if __name__ == "__main__":
    main()
