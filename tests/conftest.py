"""Shared fixtures: small synthetic data sets in the real file formats and tiny configs."""

import gzip
import os
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from utils.config import load_config  # noqa: E402

SHARED_DATASETS_VARIABLE = "GPND_SHARED_DATASETS"


def shared_dataset(name):
    """Return the path of a real data set folder, or skip the test with the reason."""
    root = os.environ.get(SHARED_DATASETS_VARIABLE)
    if not root:
        pytest.skip(f"real-data test: set {SHARED_DATASETS_VARIABLE} to the shared datasets folder to run it")
    path = os.path.join(root, name)
    if not os.path.isdir(path):
        pytest.skip(f"real-data test: {path} not found")
    return path


def write_idx(path, array, compress):
    """Write a uint8 array as an IDX file (magic 0x0803 for 3 dimensions, 0x0801 for 1)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as stream:
        stream.write(data)


def synthetic_digits(per_class, class_count=10, size=28, seed=0):
    """Return (images, labels): each class is a bright bar at its own position, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(class_count):
        for _ in range(per_class):
            image = rng.integers(0, 40, size=(size, size))
            row = 2 + label * (size - 6) // class_count
            image[row:row + 4, 4:size - 4] = 220 + rng.integers(0, 30)
            images.append(image)
            labels.append(label)
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.uint8)


@pytest.fixture
def idx_folder(tmp_path):
    """A folder with the four MNIST-format IDX files (gzipped), 25 train + 5 test images per class."""
    folder = tmp_path / "idx"
    folder.mkdir()
    train_images, train_labels = synthetic_digits(25, seed=1)
    test_images, test_labels = synthetic_digits(5, seed=2)
    write_idx(folder / "train-images-idx3-ubyte.gz", train_images, True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_labels, True)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_images, True)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_labels, True)
    return folder


def tiny_overrides(tmp_path, **extra):
    """Overrides for a fast run in ``tmp_path``: width 8, 2 epochs, small batches, no progress bar."""
    overrides = {
        "DATASET": {"PATH": str(tmp_path / "data"), "CACHE": str(tmp_path / "cache")},
        "MODEL": {"WIDTH": 8, "LATENT_SIZE": 4},
        "TRAIN": {"EPOCH_COUNT": 2, "BATCH_SIZE": 16, "IMAGE_GRID_EVERY": 1},
        # GPND's full three-term score at its published mul, so the Jacobian path stays tested.
        "TEST": {"BATCH_SIZE": 64, "HISTOGRAM_BINS": 10, "USE_JACOBIAN_TERM": True, "MUL": 0.2},
        "RUN": {"OUTPUT_DIR": str(tmp_path / "results"), "PROGRESS_BAR": False, "DEVICE": "cpu", "FOLDS": [0]},
    }
    for section, values in extra.items():
        overrides.setdefault(section, {}).update(values)
    return overrides


@pytest.fixture
def tiny_cfg(tmp_path):
    """Factory of tiny MNIST-shaped configs rooted in tmp_path; keyword sections override."""
    def make(**extra):
        return load_config(os.path.join(REPO_ROOT, "configs", "mnist.yaml"), [tiny_overrides(tmp_path, **extra)])
    return make
