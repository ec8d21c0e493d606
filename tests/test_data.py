"""IDX reading, fold splitting, fold files, safe unpickling and outlier-percentage sets."""

import gzip
import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from utils.datasets import DatasetError, load_idx_dataset, load_sklearn_digits, read_idx
from utils.fileio import UnsafePickleError, load_pickle
from utils.folds import (FoldError, fold_path, load_protocol, outlier_percentage_indices, read_fold,
                         split_into_folds, write_folds)

from conftest import REPO_ROOT, shared_dataset, synthetic_digits, tiny_overrides, write_idx
from utils.config import load_config


def test_idx_plain_and_gzip_agree(tmp_path):
    images, _ = synthetic_digits(2)
    write_idx(tmp_path / "a-idx3-ubyte", images, compress=False)
    write_idx(tmp_path / "b-idx3-ubyte.gz", images, compress=True)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a-idx3-ubyte")), images)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "b-idx3-ubyte.gz")), images)


def test_idx_truncated_file_rejected(tmp_path):
    images, _ = synthetic_digits(2)
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, images, compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(str(path))


def test_idx_bad_magic_rejected(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 20)
    with pytest.raises(DatasetError, match="magic number"):
        read_idx(str(path))


def test_dotted_spelling_accepted(idx_folder, tmp_path):
    folder = tmp_path / "dotted"
    folder.mkdir()
    for name in os.listdir(idx_folder):
        with gzip.open(idx_folder / name) as source:
            (folder / name.replace("-idx", ".idx").replace(".gz", "")).write_bytes(source.read())
    images, labels = load_idx_dataset("mnist", str(folder), str(tmp_path / "cache"), 32)
    assert images.shape == (300, 1, 32, 32)
    assert labels.shape == (300,)


def test_label_file_must_match_image_file(idx_folder, tmp_path):
    _, labels = synthetic_digits(3)
    write_idx(idx_folder / "t10k-labels-idx1-ubyte.gz", labels, compress=True)
    with pytest.raises(DatasetError, match="does not match the image file"):
        load_idx_dataset("mnist", str(idx_folder), str(tmp_path / "cache"), 32)


def test_missing_source_folder_explains_fix(tmp_path):
    with pytest.raises(DatasetError, match="pass the folder"):
        load_idx_dataset("mnist", str(tmp_path / "nothing"), str(tmp_path / "cache"), 32)


def test_failed_download_explains_fix(tmp_path, monkeypatch):
    import torchvision

    def fail_download(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", fail_download)
    with pytest.raises(DatasetError, match="--source FOLDER"):
        load_idx_dataset("mnist", "", str(tmp_path / "cache"), 32)


def test_split_is_equal_per_class_and_disjoint():
    labels = np.repeat(np.arange(4), [11, 10, 12, 13])
    folds = split_into_folds(labels, 5, seed=0)
    assert len(np.unique(np.concatenate(folds))) == sum(len(fold) for fold in folds)
    for fold in folds:
        np.testing.assert_array_equal(np.bincount(labels[fold]), [2, 2, 2, 2])


def test_split_depends_on_seed_only():
    labels = np.repeat(np.arange(3), 20)
    first = split_into_folds(labels, 5, seed=7)
    again = split_into_folds(labels, 5, seed=7)
    other = split_into_folds(labels, 5, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_class_smaller_than_fold_count_rejected():
    with pytest.raises(FoldError, match="fewer than the 5 folds"):
        split_into_folds(np.array([0] * 10 + [1] * 3), 5, seed=0)


def partition(tmp_path, idx_folder, seed=0):
    cfg = load_config(os.path.join(REPO_ROOT, "configs", "mnist.yaml"),
                      [tiny_overrides(tmp_path, DATASET={"SEED": seed})])
    images, labels = load_idx_dataset("mnist", str(idx_folder), cfg.DATASET.CACHE, 32)
    write_folds(cfg.DATASET.PATH, "mnist", images, labels, 5, seed)
    return cfg


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_fold_files_byte_identical_for_same_seed(tmp_path, idx_folder):
    cfg = partition(tmp_path, idx_folder)
    first = [digest(fold_path(cfg.DATASET.PATH, k)) for k in range(5)]
    partition(tmp_path, idx_folder)
    assert [digest(fold_path(cfg.DATASET.PATH, k)) for k in range(5)] == first
    partition(tmp_path, idx_folder, seed=1)
    assert [digest(fold_path(cfg.DATASET.PATH, k)) for k in range(5)] != first


def test_protocol_uses_next_fold_for_validation(tmp_path, idx_folder):
    cfg = partition(tmp_path, idx_folder)
    train, validation, test = load_protocol(cfg, 4)
    np.testing.assert_array_equal(validation.images, read_fold(cfg.DATASET.PATH, 0, cfg)["images"])
    np.testing.assert_array_equal(test.images, read_fold(cfg.DATASET.PATH, 4, cfg)["images"])
    assert len(train) == 3 * len(test)
    # 30 images per class split into 5 folds of 6.
    np.testing.assert_array_equal(np.bincount(test.labels), [6] * 10)


def test_fold_of_other_dataset_rejected(tmp_path, idx_folder):
    cfg = partition(tmp_path, idx_folder)
    other = load_config(os.path.join(REPO_ROOT, "configs", "mnist.yaml"),
                        [tiny_overrides(tmp_path, DATASET={"NAME": "fmnist"})])
    with pytest.raises(FoldError, match="data set 'mnist', expected 'fmnist'"):
        read_fold(cfg.DATASET.PATH, 0, other)


def test_fold_of_other_image_size_rejected(tmp_path, idx_folder):
    cfg = partition(tmp_path, idx_folder)
    other = load_config(os.path.join(REPO_ROOT, "configs", "mnist.yaml"),
                        [tiny_overrides(tmp_path, MODEL={"INPUT_IMAGE_SIZE": 64})])
    with pytest.raises(FoldError, match=r"expected \(1, 64, 64\)"):
        read_fold(cfg.DATASET.PATH, 0, other)


def test_missing_fold_file_names_partition_script(tmp_path, tiny_cfg):
    with pytest.raises(FoldError, match="run the partition script"):
        load_protocol(tiny_cfg(), 0)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + os.environ.get("EXPLOIT_MARKER", "/tmp/never"),))


def test_code_executing_pickle_rejected(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    path = tmp_path / "data_fold_0.pkl"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        load_pickle(str(path))
    assert not marker.exists()


def test_truncated_pickle_reports_file(tmp_path, idx_folder):
    cfg = partition(tmp_path, idx_folder)
    path = fold_path(cfg.DATASET.PATH, 0)
    with open(path, "rb") as stream:
        data = stream.read()
    with open(path, "wb") as stream:
        stream.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or not a pickle"):
        read_fold(cfg.DATASET.PATH, 0, cfg)


def test_interrupted_write_keeps_old_file(tmp_path):
    from utils.fileio import atomic_write

    path = tmp_path / "file.txt"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(str(path), "w") as stream:
            stream.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["file.txt"]


@pytest.mark.parametrize("percentage", [10, 20, 30, 40, 50])
def test_percentage_set_reaches_target(percentage):
    is_inlier = np.array([True] * 100 + [False] * 900)
    indices = outlier_percentage_indices(is_inlier, percentage, seed=0)
    share = 100.0 * np.mean(~is_inlier[indices])
    assert abs(share - percentage) < 0.1
    # Nothing is dropped: every image appears at least once.
    assert len(np.unique(indices)) == len(is_inlier)


def test_percentage_set_seeded_and_private():
    is_inlier = np.array([True] * 30 + [False] * 70)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = outlier_percentage_indices(is_inlier, 20, seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.testing.assert_array_equal(outlier_percentage_indices(is_inlier, 20, seed=5), first)
    assert not np.array_equal(outlier_percentage_indices(is_inlier, 20, seed=6), first)


def test_digits_demo_partition(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "partition_digits.py"),
                             "--output", str(tmp_path / "digits")], capture_output=True, text=True, check=True)
    assert "Wrote 5 folds of digits" in result.stderr
    images, labels = load_sklearn_digits(32)
    assert images.shape == (1797, 1, 32, 32)
    record = load_pickle(str(tmp_path / "digits" / "data_fold_0.pkl"))
    # 1,797 digits: the smallest class (174 images of digit 8) gives 34 per fold.
    assert len(record["labels"]) == sum(np.bincount(labels) // 5)
    assert record["images"].shape[1:] == (1, 32, 32)


def test_real_mnist_fold_counts(tmp_path):
    source = shared_dataset("mnist")
    images, labels = load_idx_dataset("mnist", source, str(tmp_path / "cache"), 32)
    assert images.shape == (70000, 1, 32, 32)
    per_class = np.bincount(labels)
    np.testing.assert_array_equal(per_class, [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958])
    folds = split_into_folds(labels, 5, seed=0)
    for fold in folds:
        np.testing.assert_array_equal(np.bincount(labels[fold]), per_class // 5)


def test_code_executing_checkpoint_rejected(tmp_path, monkeypatch):
    import torch

    from utils.fileio import load_torch

    marker = tmp_path / "marker"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    path = tmp_path / "encoder.pt"
    torch.save({"weights": Exploit()}, path)
    with pytest.raises(UnsafePickleError, match="rejected"):
        load_torch(str(path))
    assert not marker.exists()


def test_empty_idx_file_rejected(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="too short"):
        read_idx(str(path))


def test_inlier_class_without_training_images_rejected(tmp_path, idx_folder):
    from utils.folds import training_inliers

    cfg = partition(tmp_path, idx_folder)
    train, _, _ = load_protocol(cfg, 0)
    train.labels[train.labels == 3] = 4
    with pytest.raises(FoldError, match="class 3 has no training images"):
        training_inliers(train, [3], "mnist fold 0")
