"""Partition Fashion-MNIST into class-stratified folds (data_fold_<k>.pkl in DATASET.PATH).

The IDX files come from the first source that applies: --source (or DATASET.SOURCE), the
Debian package dataset-fashion-mnist in /usr/share/datasets/fashion-mnist, a torchvision
download into DATASET.CACHE.

    python partition_fmnist.py --source ../shared/datasets/fashion-mnist
    python partition_fmnist.py            # package folder, else a download
"""

from utils.config import resolve_path
from utils.datasets import load_idx_dataset
from utils.partition import partition_main


def load_fmnist(cfg):
    return load_idx_dataset("fmnist", cfg.DATASET.SOURCE, resolve_path(cfg.DATASET.CACHE),
                            cfg.MODEL.INPUT_IMAGE_SIZE, cfg.DATASET.TOTAL_CLASS_COUNT)


if __name__ == "__main__":
    partition_main(__doc__, "configs/fmnist.yaml", load_fmnist)
