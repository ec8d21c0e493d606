"""Scoring memory: peak resident memory when scoring 10,000 and 50,000 MNIST images.

Each size runs in its own process (peak RSS never goes down inside a process). The images are
the 70,000 MNIST images of all five folds, so the 50,000-image run keeps five times as much input in memory.

    python benchmarks/bench_memory.py
"""

import json
import os
import subprocess
import sys

import numpy as np

from common import base_parser, configure, mnist_config, peak_rss_mb, print_table, quick_model

SIZES = [10000, 50000]


def score_once(args, count):
    """Score ``count`` MNIST images with a 1-epoch default model and return the peak RSS in MiB."""
    from utils.config import resolve_path
    from utils.folds import read_fold
    from utils.scoring import fit_statistics, score_images

    device = configure(args)
    cfg = mnist_config(args, ["TRAIN.EPOCH_COUNT=1"])
    records = [read_fold(resolve_path(cfg.DATASET.PATH), fold, cfg) for fold in range(cfg.DATASET.FOLDS_COUNT)]
    # A copy of the first `count` images, so that the full 70,000-image array can be freed.
    images = np.concatenate([record["images"] for record in records])[:count].copy()
    train_images = records[1]["images"][records[1]["labels"] == 0]
    encoder, generator = quick_model(cfg, train_images, device)
    stats, _, _ = fit_statistics(encoder, generator, train_images, cfg.TEST.HISTOGRAM_BINS, cfg.TEST.BATCH_SIZE, device)
    del records
    score_images(encoder, generator, images, stats, cfg, device)
    return peak_rss_mb()


def main():
    parser = base_parser(__doc__)
    parser.add_argument("--count", type=int, help="score this many images in this process (internal)")
    args = parser.parse_args()
    if args.count:
        print(json.dumps({"count": args.count, "peak_rss_mb": score_once(args, args.count)}))
        return

    results = {}
    for count in SIZES:
        command = [sys.executable, os.path.abspath(__file__), "--count", str(count),
                   "--threads", str(args.threads), "--device", args.device]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[count] = json.loads(output.strip().splitlines()[-1])["peak_rss_mb"]
    rows = [[count, f"{results[count]:.0f}"] for count in SIZES]
    rows.append(["difference", f"{results[SIZES[1]] - results[SIZES[0]]:.0f}"])
    print_table("Peak resident memory while scoring (default network)", ["images scored", "peak RSS MiB"], rows)


if __name__ == "__main__":
    main()
