"""Partition scikit-learn's 8x8 handwritten digits (the embedded demo data set) into folds.

The 1,797 images ship inside scikit-learn, so this needs no download:

    python partition_digits.py
"""

from utils.datasets import load_sklearn_digits
from utils.partition import partition_main


def load_digits(cfg):
    return load_sklearn_digits(cfg.MODEL.INPUT_IMAGE_SIZE)


if __name__ == "__main__":
    partition_main(__doc__, "configs/digits.yaml", load_digits, takes_source=False)
