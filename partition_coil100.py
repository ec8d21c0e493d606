"""Partition COIL-100 into class-stratified folds (data_fold_<k>.pkl in DATASET.PATH).

Reads a folder of objN__A.png files (object N = 1..100, view angle A), keeps
MODEL.INPUT_IMAGE_CHANNELS channels (3: RGB), resizes to MODEL.INPUT_IMAGE_SIZE and labels
object N as class N - 1. Other files in the folder are skipped and logged. There is no
download, so --source (or DATASET.SOURCE) is required:

    python partition_coil100.py --source ../shared/datasets/coil-100-64px/coil-100
"""

from utils.datasets import load_coil100
from utils.partition import partition_main


def load_coil100_images(cfg):
    return load_coil100(cfg.DATASET.SOURCE, cfg.MODEL.INPUT_IMAGE_SIZE, cfg.MODEL.INPUT_IMAGE_CHANNELS,
                        cfg.DATASET.TOTAL_CLASS_COUNT)


if __name__ == "__main__":
    partition_main(__doc__, "configs/coil100.yaml", load_coil100_images)
