"""Partition MNIST into class-stratified folds (data_fold_<k>.pkl in DATASET.PATH).

    python partition_mnist.py --source /path/to/mnist   # folder of the four IDX files
    python partition_mnist.py            # downloads MNIST with torchvision into DATASET.CACHE
"""

from utils.config import resolve_path
from utils.datasets import load_idx_dataset
from utils.partition import partition_main


def load_mnist(cfg):
    return load_idx_dataset("mnist", cfg.DATASET.SOURCE, resolve_path(cfg.DATASET.CACHE),
                            cfg.MODEL.INPUT_IMAGE_SIZE, cfg.DATASET.TOTAL_CLASS_COUNT)


if __name__ == "__main__":
    partition_main(__doc__, "configs/mnist.yaml", load_mnist)
