"""Command-line body of the ``partition_<dataset>.py`` scripts: read raw data, write fold files."""

import argparse
import logging
import sys

from utils.config import ConfigError, load_config, resolve_path
from utils.datasets import DatasetError
from utils.folds import FoldError, write_folds
from utils.runtime import setup_logging

logger = logging.getLogger(__name__)


def write_stratified_folds(cfg, folder, loaded):
    """Split ``loaded`` = (images, labels[, extras]) into DATASET.FOLDS_COUNT class-stratified folds."""
    images, labels = loaded[0], loaded[1]
    extras = loaded[2] if len(loaded) > 2 else None
    write_folds(folder, cfg.DATASET.NAME, images, labels, cfg.DATASET.FOLDS_COUNT, cfg.DATASET.SEED, extras)


def partition_main(description, default_config, load_images, takes_source=True,
                   write_partition=write_stratified_folds):
    """Parse the command line, load the data with ``load_images(cfg)`` and write the folds.

    ``write_partition(cfg, folder, loaded)`` writes the fold files from the value of
    ``load_images``. The default takes (images, labels) or (images, labels, extras) and splits
    them into class-stratified folds. Data sets with a fixed split pass their own writer.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config, help=f"dataset YAML file (default {default_config})")
    if takes_source:
        parser.add_argument("--source", help="folder of the raw data set files (overrides DATASET.SOURCE)")
    parser.add_argument("--output", help="folder for the fold files (overrides DATASET.PATH)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set DATASET.SEED=1 (repeatable)")
    args = parser.parse_args()
    setup_logging()

    overrides = list(args.overrides)
    if takes_source and args.source:
        overrides.append({"DATASET": {"SOURCE": args.source}})
    if args.output:
        overrides.append({"DATASET": {"PATH": args.output}})
    try:
        cfg = load_config(resolve_path(args.config), overrides)
        loaded = load_images(cfg)
        folder = resolve_path(cfg.DATASET.PATH)
        write_partition(cfg, folder, loaded)
    except (ConfigError, DatasetError, FoldError) as error:
        logger.error("%s", error)
        sys.exit(2)
    logger.info("Wrote %d folds of %s to %s", cfg.DATASET.FOLDS_COUNT, cfg.DATASET.NAME, folder)
