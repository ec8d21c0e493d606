"""Tests of the Fashion-MNIST and COIL-100 support: loaders, folds, random-draw tasks, RGB runs and reports.

Everything runs on small synthetic files under tmp_path. The real-data tests at the end run
only when GPND_SHARED_DATASETS names a folder with fashion-mnist/ and coil-100-64px/coil-100/.
"""

import csv
import gzip
import json
import logging
import os
import shutil
import sys
import urllib.error

import numpy as np
import pytest
from PIL import Image

import report
from utils.config import ConfigError, REPO_ROOT, load_config
from utils.datasets import DatasetError, IDX_IMAGE_MAGIC, IDX_LABEL_MAGIC, load_coil100, load_idx_dataset
# The module, not its test_driver function, so that pytest does not collect the driver as a test.
from utils import drivers
from utils.drivers import TASK_RECORD_NAME, build_tasks, draw_inlier_classes, task_config
from utils.fileio import load_pickle, read_csv_rows
from utils.folds import split_into_folds, write_folds
from utils.plots import save_fold_summary
from utils.results import ResultsError, format_report, read_result_files
from utils.scoring import InlierStatistics, reconstruction_log_density

SHARED_DATASETS = os.environ.get("GPND_SHARED_DATASETS", "")
IDX_IMAGE_SIZE = 28
# One colour per synthetic COIL object, so that a test can check that RGB survives.
OBJECT_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 50, 210)]


def config_path(name):
    return os.path.join(REPO_ROOT, "configs", name)


# ---------------------------------------------------------------- Fashion-MNIST


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def make_idx_folder(folder, train_per_class, test_per_class, fill):
    """Write the four gzipped IDX files with ``fill`` as every pixel value; return the folder."""
    os.makedirs(folder, exist_ok=True)
    for prefix, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        labels = np.repeat(np.arange(10), per_class)
        images = np.full((len(labels), IDX_IMAGE_SIZE, IDX_IMAGE_SIZE), fill, dtype=np.uint8)
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), images, IDX_IMAGE_MAGIC)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels, IDX_LABEL_MAGIC)
    return str(folder)


class DownloadRecorder:
    """Stand-in for torchvision's download function: records each call and fails, or copies files."""

    def __init__(self, copy_from=None):
        self.copy_from = copy_from
        self.calls = []

    def __call__(self, url, download_root, filename=None, md5=None, **kwargs):
        self.calls.append(url)
        if self.copy_from is None:
            raise urllib.error.URLError("network access is disabled in this test")
        os.makedirs(download_root, exist_ok=True)
        source = os.path.join(self.copy_from, filename)
        shutil.copy(source, os.path.join(download_root, filename))
        with gzip.open(source, "rb") as compressed, open(os.path.join(download_root, filename[:-3]), "wb") as raw:
            raw.write(compressed.read())


@pytest.fixture
def download(monkeypatch):
    recorder = DownloadRecorder()
    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", recorder)
    return recorder


def use_package_folder(monkeypatch, folder):
    monkeypatch.setattr("utils.datasets.PACKAGE_IDX_FOLDERS",
                        {"fmnist": (str(folder), "dataset-fashion-mnist")})


def test_fmnist_explicit_source_wins(tmp_path, monkeypatch, download):
    source = make_idx_folder(tmp_path / "source", train_per_class=2, test_per_class=1, fill=200)
    package = make_idx_folder(tmp_path / "package", train_per_class=1, test_per_class=1, fill=50)
    use_package_folder(monkeypatch, package)

    images, labels = load_idx_dataset("fmnist", source, str(tmp_path / "cache"), 32)

    assert images.shape == (30, 1, 32, 32)
    assert images.dtype == np.uint8
    assert np.all(images == 200)
    assert np.bincount(labels).tolist() == [3] * 10
    assert download.calls == []


def test_fmnist_package_folder_before_download(tmp_path, monkeypatch, download):
    package = make_idx_folder(tmp_path / "package", train_per_class=1, test_per_class=1, fill=50)
    use_package_folder(monkeypatch, package)

    images, labels = load_idx_dataset("fmnist", "", str(tmp_path / "cache"), 32)

    assert images.shape == (20, 1, 32, 32)
    assert np.all(images == 50)
    assert download.calls == []


def test_fmnist_download_without_package(tmp_path, monkeypatch):
    served = make_idx_folder(tmp_path / "served", train_per_class=2, test_per_class=2, fill=90)
    use_package_folder(monkeypatch, tmp_path / "not-installed")
    recorder = DownloadRecorder(copy_from=served)
    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", recorder)

    images, labels = load_idx_dataset("fmnist", "", str(tmp_path / "cache"), 32)

    assert images.shape == (40, 1, 32, 32)
    assert np.all(images == 90)
    assert len(recorder.calls) == 4
    assert os.path.isdir(tmp_path / "cache" / "fmnist" / "FashionMNIST" / "raw")


def test_fmnist_no_source_names_three_options(tmp_path, monkeypatch, download):
    missing_package = tmp_path / "not-installed"
    use_package_folder(monkeypatch, missing_package)

    with pytest.raises(DatasetError) as error:
        load_idx_dataset("fmnist", "", str(tmp_path / "cache"), 32)

    message = str(error.value)
    assert "--source" in message
    assert "DATASET.SOURCE" in message
    assert "dataset-fashion-mnist" in message
    assert str(missing_package) in message
    assert "torchvision" in message
    assert "network access is disabled" in message
    assert len(download.calls) > 0


def test_fmnist_missing_explicit_source(tmp_path, download):
    with pytest.raises(DatasetError, match="not found"):
        load_idx_dataset("fmnist", str(tmp_path / "absent"), str(tmp_path / "cache"), 32)
    assert download.calls == []


def test_fmnist_config_loads():
    cfg = load_config(config_path("fmnist.yaml"))

    assert cfg.DATASET.NAME == "fmnist"
    assert cfg.MODEL.INPUT_IMAGE_CHANNELS == 1
    assert len(build_tasks(cfg)) == 50


# ---------------------------------------------------------------- COIL-100


def make_coil_folder(folder, objects=3, views=10, size=40, stray=("readme.txt",)):
    """Write objN__A.png files, one colour per object with some noise, plus stray files."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for number in range(1, objects + 1):
        colour = np.array(OBJECT_COLOURS[(number - 1) % len(OBJECT_COLOURS)])
        for view in range(views):
            noise = rng.integers(-20, 21, size=(size, size, 3))
            pixels = np.clip(colour + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, f"obj{number}__{5 * view}.png"))
    for name in stray:
        with open(os.path.join(folder, name), "w", encoding="utf-8") as stream:
            stream.write("not an image\n")
    return str(folder)


def test_coil_loader_keeps_rgb(tmp_path):
    folder = make_coil_folder(tmp_path / "coil")

    images, labels, extras = load_coil100(folder, 32, channels=3, class_count=3)

    assert images.shape == (30, 3, 32, 32)
    assert images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [10, 10, 10]
    assert sorted(set(extras["angle"].tolist())) == list(range(0, 50, 5))
    red_object = images[labels == 0].mean(axis=(0, 2, 3))
    blue_object = images[labels == 2].mean(axis=(0, 2, 3))
    assert red_object[0] > 150 > red_object[1]
    assert blue_object[2] > 150 > blue_object[0]


def test_coil_loader_reports_stray_files(tmp_path, caplog):
    folder = make_coil_folder(tmp_path / "coil", stray=("readme.txt", "obj1.png", "Thumbs.db"))

    with caplog.at_level(logging.WARNING, logger="utils.datasets"):
        images, _, _ = load_coil100(folder, 32, channels=3, class_count=3)

    assert len(images) == 30
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "Skipped 3 entries" in messages
    assert "readme.txt" in messages
    assert "obj1.png" in messages


def test_coil_loader_corrupt_image_names_file(tmp_path):
    folder = make_coil_folder(tmp_path / "coil")
    with open(os.path.join(folder, "obj1__5.png"), "wb") as stream:
        stream.write(b"\x89PNG\r\n\x1a\n truncated")

    with pytest.raises(DatasetError) as error:
        load_coil100(folder, 32, channels=3, class_count=3)

    assert "obj1__5.png" in str(error.value)


@pytest.mark.parametrize("class_count, expected", [(4, "obj4"), (2, "outside 1..2")])
def test_coil_loader_checks_object_numbers(tmp_path, class_count, expected):
    folder = make_coil_folder(tmp_path / "coil")

    with pytest.raises(DatasetError, match=expected):
        load_coil100(folder, 32, channels=3, class_count=class_count)


def test_coil_loader_needs_folder():
    with pytest.raises(DatasetError, match="--source"):
        load_coil100("", 32)


def test_coil_loader_grey_levels(tmp_path):
    folder = make_coil_folder(tmp_path / "coil", views=5)

    images, _, _ = load_coil100(folder, 32, channels=1, class_count=3)

    assert images.shape == (15, 1, 32, 32)


def test_coil_fold_files(tmp_path):
    folder = make_coil_folder(tmp_path / "coil")
    images, labels, extras = load_coil100(folder, 32, channels=3, class_count=3)

    paths = write_folds(str(tmp_path / "folds"), "coil100", images, labels, 5, 0, extras)

    assert len(paths) == 5
    for path in paths:
        record = load_pickle(path)
        assert record["images"].shape == (6, 3, 32, 32)
        assert np.bincount(record["labels"]).tolist() == [2, 2, 2]
        assert len(record["extras"]["angle"]) == 6


def test_coil_fold_counts_with_72_views():
    labels = np.repeat(np.arange(100), 72)

    folds = split_into_folds(labels, 5, 0)

    assert len(folds) == 5
    for indices in folds:
        assert np.bincount(labels[indices], minlength=100).tolist() == [14] * 100
    assert len(np.unique(np.concatenate(folds))) == 5 * 14 * 100


# ---------------------------------------------------------------- random-draw tasks


def test_coil_config_expands_protocols():
    cfg = load_config(config_path("coil100.yaml"))

    tasks = build_tasks(cfg)

    assert len(tasks) == 90
    assert len({task.task_id for task in tasks}) == 90
    expected_percentage = {1: 50, 4: 25, 7: 15}
    counts = {}
    for task in tasks:
        counts[len(task.classes)] = counts.get(len(task.classes), 0) + 1
        assert len(set(task.classes)) == len(task.classes)
        assert all(0 <= label < 100 for label in task.classes)
        assert task.percentage == expected_percentage[len(task.classes)]
        assert task.fold == 0
    assert counts == {1: 30, 4: 30, 7: 30}


def test_random_draws_are_seeded():
    first = build_tasks(load_config(config_path("coil100.yaml")))
    again = build_tasks(load_config(config_path("coil100.yaml")))
    other_seed = build_tasks(load_config(config_path("coil100.yaml"), ["RUN.RANDOM_DRAW_SEED=1"]))

    assert [task.classes for task in first] == [task.classes for task in again]
    assert [task.classes for task in first] != [task.classes for task in other_seed]


def test_random_draws_keep_ids_when_count_changes():
    full = {task.task_id: task.classes for task in build_tasks(load_config(config_path("coil100.yaml")))}
    few = build_tasks(load_config(config_path("coil100.yaml"), ["RUN.RANDOM_DRAW_COUNT=5"]))

    assert len(few) == 15
    for task in few:
        assert full[task.task_id] == task.classes


def test_random_draws_span_folds():
    cfg = load_config(config_path("coil100.yaml"), ["RUN.FOLDS=[0, 3]"])

    tasks = build_tasks(cfg)

    assert len(tasks) == 180
    by_id = {task.task_id: task for task in tasks}
    assert by_id["f0-ic1007"].classes == by_id["f3-ic1007"].classes


def test_draw_inlier_classes_distinct():
    for draw in range(50):
        classes = draw_inlier_classes(10, 7, draw, seed=3)
        assert len(set(classes)) == 7
        assert classes == sorted(classes)


def test_task_config_restricts_percentage():
    cfg = load_config(config_path("coil100.yaml"))
    task = build_tasks(cfg)[40]

    derived = task_config(cfg, task)

    assert derived.TEST.PERCENTAGES == [25]
    assert cfg.TEST.PERCENTAGES == [10, 20, 30, 40, 50]


def test_mnist_tasks_unchanged():
    cfg = load_config(config_path("mnist.yaml"))

    tasks = build_tasks(cfg)

    assert [task.task_id for task in tasks[:3]] == ["f0-ic0", "f0-ic1", "f0-ic2"]
    assert len(tasks) == 50
    assert all(task.percentage is None for task in tasks)
    assert all(task.classes == [task.ic] for task in tasks)
    assert task_config(cfg, tasks[0]) is cfg


@pytest.mark.parametrize("override", [
    "RUN.RANDOM_INLIER_SETS=[[0, 50]]",
    "RUN.RANDOM_INLIER_SETS=[[100, 50]]",
    "RUN.RANDOM_INLIER_SETS=[[1, 0]]",
    "RUN.RANDOM_INLIER_SETS=[[1, 100]]",
    "RUN.RANDOM_INLIER_SETS=[[1]]",
    "RUN.RANDOM_INLIER_SETS=[[true, 50]]",
    "RUN.RANDOM_INLIER_SETS=[[1, fifty]]",
    "RUN.RANDOM_INLIER_SETS=[[1, 50], [1, 50]]",
    "RUN.RANDOM_INLIER_SETS=[1, 50]",
    "RUN.RANDOM_DRAW_COUNT=0",
    "RUN.RANDOM_DRAW_COUNT=1001",
    "RUN.RANDOM_DRAW_SEED=-1",
    "RUN.INLIER_SETS=[[1]]",
])
def test_random_draw_config_rejected(override):
    with pytest.raises(ConfigError):
        load_config(config_path("coil100.yaml"), [override])


# ---------------------------------------------------------------- three-channel pipeline


def write_rgb_folds(folder, class_count=3, per_class=50, size=32):
    """Write 5 folds of synthetic RGB images: a coloured square on noise, one colour per class."""
    rng = np.random.default_rng(1)
    images, labels = [], []
    for label in range(class_count):
        colour = np.array(OBJECT_COLOURS[label], dtype=np.int64)[:, None, None]
        for _ in range(per_class):
            image = rng.integers(0, 60, size=(3, size, size))
            top, left = rng.integers(4, 12, size=2)
            image[:, top:top + 16, left:left + 16] = colour
            images.append(image.astype(np.uint8))
            labels.append(label)
    write_folds(folder, "rgbtest", np.stack(images), np.array(labels), 5, 0)


def write_rgb_config(tmp_path):
    path = tmp_path / "rgb.yaml"
    path.write_text(f"""
DATASET:
  NAME: rgbtest
  PATH: {tmp_path / 'folds'}
  TOTAL_CLASS_COUNT: 3
  FOLDS_COUNT: 5
MODEL:
  WIDTH: 8
  LATENT_SIZE: 4
  INPUT_IMAGE_SIZE: 32
  INPUT_IMAGE_CHANNELS: 3
TRAIN:
  EPOCH_COUNT: 1
  BATCH_SIZE: 8
  IMAGE_GRID_EVERY: 1
TEST:
  BATCH_SIZE: 64
  HISTOGRAM_BINS: 5
  USE_JACOBIAN_TERM: true
  MUL: 0.2
RUN:
  DEVICE: cpu
  OUTPUT_DIR: {tmp_path / 'results'}
  FOLDS: [0]
  RANDOM_INLIER_SETS: [[1, 50]]
  RANDOM_DRAW_COUNT: 1
  PROGRESS_BAR: false
  # One thread: the tiny networks gain nothing from more, and the tests share the CPU.
  THREADS: 1
""", encoding="utf-8")
    return str(path)


def run_driver(monkeypatch, driver, arguments):
    monkeypatch.setattr(sys, "argv", ["driver"] + arguments)
    with pytest.raises(SystemExit) as exit_info:
        driver(default_config="unused.yaml")
    return exit_info.value.code


def test_rgb_pipeline_trains_and_scores(tmp_path, monkeypatch, capsys):
    write_rgb_folds(str(tmp_path / "folds"))
    config = write_rgb_config(tmp_path)
    cfg = load_config(config)
    (task,) = build_tasks(cfg)

    assert run_driver(monkeypatch, drivers.train_driver, ["--config", config]) == 0
    assert run_driver(monkeypatch, drivers.test_driver, ["--config", config]) == 0

    run_folder = tmp_path / "results" / "rgbtest" / "fold_0" / f"set_{task.ic}"
    rows = read_csv_rows(str(tmp_path / "results" / "rgbtest" / "results.csv"))
    assert len(rows) == 1
    assert float(rows[0]["percentage"]) == 50
    assert rows[0]["inlier_classes"] == " ".join(map(str, task.classes))
    assert 0.0 <= float(rows[0]["auc"]) <= 1.0
    assert "| 1 | 50 % |" in capsys.readouterr().out

    grid = np.asarray(Image.open(run_folder / "images" / "reconstruction_epoch_001.png"))
    assert grid.ndim == 3 and grid.shape[2] == 3
    assert np.any(grid[:, :, 0] != grid[:, :, 1])
    for name in ("distance_pdf.png", "latent_pdfs.png", "score_distributions.png"):
        assert (run_folder / "plots" / name).is_file()

    # The reconstruction term must use the full input dimension, channels x height x width.
    scores = np.load(run_folder / "scores_mul0.2.npz")
    with open(run_folder / "metrics_mul0.2.json", encoding="utf-8") as stream:
        stats = InlierStatistics.from_dict(json.load(stream)["statistics"])
    expected = reconstruction_log_density(scores["test_distance"], stats, 3 * 32 * 32, 4, 0.2)
    assert np.allclose(scores["test_reconstruction"], expected)
    assert np.all(np.isfinite(scores["test_jacobian"]))


def test_random_draw_folder_guard(tmp_path, monkeypatch, caplog):
    write_rgb_folds(str(tmp_path / "folds"))
    config = write_rgb_config(tmp_path)
    (task,) = build_tasks(load_config(config))
    other_seed = next(seed for seed in range(1, 50) if draw_inlier_classes(3, 1, 0, seed) != task.classes)
    assert run_driver(monkeypatch, drivers.train_driver, ["--config", config]) == 0
    record = tmp_path / "results" / "rgbtest" / "fold_0" / f"set_{task.ic}" / TASK_RECORD_NAME
    assert record.is_file()

    changed = ["--config", config, "--set", f"RUN.RANDOM_DRAW_SEED={other_seed}"]
    with caplog.at_level(logging.ERROR):
        assert run_driver(monkeypatch, drivers.train_driver, changed) == 1
        assert run_driver(monkeypatch, drivers.test_driver, changed) == 1

    assert "RUN.RANDOM_DRAW_SEED" in caplog.text
    assert str(task.classes) in caplog.text


def test_fold_summary_shows_rgb(tmp_path):
    images = np.zeros((6, 3, 32, 32), dtype=np.uint8)
    images[0:2, 0] = 255
    images[2:4, 1] = 255
    images[4:6, 2] = 255
    record = {"images": images, "labels": np.array([0, 0, 1, 1, 2, 2])}
    path = tmp_path / "summary.png"

    save_fold_summary([record], ["red", "green", "blue"], str(path), samples_per_class=2)

    pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
        matches = np.all(np.abs(pixels - np.array(colour)) < 30, axis=2)
        assert matches.sum() > 1000, f"no area of colour {colour} in the fold summary"


# ---------------------------------------------------------------- report

CSV_FIELDS = ["dataset", "fold", "inlier_set", "percentage", "mul", "inlier_classes", "auc", "f1",
              "arch", "width", "latent_size", "epochs"]


def result_row(dataset, fold, inlier_set, classes, percentage, auc, f1):
    return {"dataset": dataset, "fold": fold, "inlier_set": inlier_set, "percentage": percentage, "mul": 0.2,
            "inlier_classes": classes, "auc": auc, "f1": f1, "arch": "light", "width": 32,
            "latent_size": 16, "epochs": 80}


def write_results(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def percentage_rows(dataset):
    """Two folds x two classes x five percentages; F1 = 0.9 - 0.1 * run, AUC = 0.8 + 0.05 * run."""
    rows = []
    for run, (fold, label) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for percentage in (10, 20, 30, 40, 50):
            rows.append(result_row(dataset, fold, label, str(label), percentage, 0.8 + 0.05 * run, 0.9 - 0.1 * run))
    return rows


def report_section(report_text, dataset):
    """Return the part of a report from the heading of ``dataset`` to the next heading."""
    sections = [part for part in report_text.split("## ") if part.startswith(f"{dataset} (")]
    assert len(sections) == 1, f"expected one section for {dataset} in:\n{report_text}"
    return sections[0]


def table_line(report_text, start):
    lines = [line for line in report_text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, f"expected one line starting with {start!r} in:\n{report_text}"
    return lines[0]


def test_report_percentage_tables(tmp_path):
    path = write_results(tmp_path / "results.csv", percentage_rows("mnist") + percentage_rows("fmnist"))

    text = format_report(read_result_files([path]))

    f1_mean, f1_std = np.mean([0.9, 0.8, 0.7, 0.6]), np.std([0.9, 0.8, 0.7, 0.6])
    auc_mean, auc_std = np.mean([0.8, 0.85, 0.9, 0.95]), np.std([0.8, 0.85, 0.9, 0.95])
    mnist = report_section(text, "mnist")
    fmnist = report_section(text, "fmnist")
    assert table_line(mnist, "| 10 % |") == (
        f"| 10 % | {f1_mean:.4f} ± {f1_std:.4f} | 0.967 | {auc_mean:.4f} ± {auc_std:.4f} | – | 4 |")
    assert table_line(fmnist, "| 50 % |") == (
        f"| 50 % | {f1_mean:.4f} ± {f1_std:.4f} | 0.809 | {auc_mean:.4f} ± {auc_std:.4f} | 0.901 | 4 |")


def test_report_separates_new_settings(tmp_path):
    older = percentage_rows("mnist")
    separable = [dict(row, fold=row["fold"] + 2, separable=True, image_adversarial=True) for row in older]
    path = tmp_path / "results.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS + ["separable", "image_adversarial"])
        writer.writeheader()
        writer.writerows(older + separable)

    text = format_report(read_result_files([str(path)]))

    # Rows written before the separable switch existed count as dense, so each kind gets a table.
    headings = [line for line in text.splitlines() if line.startswith("## mnist")]
    assert len(headings) == 2
    assert sum("separable False" in heading for heading in headings) == 1
    assert sum("separable True" in heading for heading in headings) == 1
    assert all("image adversarial True" in heading for heading in headings)


def test_report_coil_protocol_table(tmp_path):
    rows = [
        result_row("coil100", 0, 0, "52", 50, 0.90, 0.95),
        result_row("coil100", 0, 1, "67", 50, 0.80, 0.85),
        result_row("coil100", 0, 1000, "22 43 45 86", 25, 0.70, 0.75),
        result_row("coil100", 0, 2000, "2 5 20 64 70 76 92", 15, 0.60, 0.65),
    ]
    path = write_results(tmp_path / "results.csv", rows)

    text = format_report(read_result_files([path]))

    assert table_line(text, "| 1 | 50 % |") == "| 1 | 50 % | 0.8500 ± 0.0500 | 0.968 | 0.9000 ± 0.0500 | 0.979 | 2 |"
    assert table_line(text, "| 4 | 25 % |") == "| 4 | 25 % | 0.7000 ± 0.0000 | 0.945 | 0.7500 ± 0.0000 | 0.960 | 1 |"
    assert table_line(text, "| 7 | 15 % |") == "| 7 | 15 % | 0.6000 ± 0.0000 | 0.919 | 0.6500 ± 0.0000 | 0.941 | 1 |"


def test_report_merges_shards(tmp_path, monkeypatch, capsys, caplog):
    rows = percentage_rows("mnist")
    first = write_results(tmp_path / "shard_0.csv", rows[:12])
    changed = dict(rows[11], f1=0.123)
    second = write_results(tmp_path / "shard_1.csv", [changed] + rows[12:])

    with caplog.at_level(logging.WARNING, logger="utils.results"):
        merged = read_result_files([first, second])

    assert len(merged) == 20
    replaced = [row for row in merged if row["fold"] == str(rows[11]["fold"])
                and row["inlier_set"] == str(rows[11]["inlier_set"])
                and row["percentage"] == str(rows[11]["percentage"])]
    assert [float(row["f1"]) for row in replaced] == [0.123]
    assert "1 result rows" in caplog.text

    monkeypatch.setattr(sys, "argv", ["report.py", first, second])
    report.main()
    assert "| 10 % |" in capsys.readouterr().out


def test_report_rejects_missing_columns(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("dataset,fold\nmnist,0\n", encoding="utf-8")

    with pytest.raises(ResultsError, match="missing columns"):
        read_result_files([str(path)])
    with pytest.raises(ResultsError, match="not found"):
        read_result_files([str(tmp_path / "absent.csv")])


# ---------------------------------------------------------------- real data

needs_shared_datasets = pytest.mark.skipif(
    not SHARED_DATASETS,
    reason="GPND_SHARED_DATASETS is not set; point it at the folder that contains fashion-mnist/ and "
           "coil-100-64px/coil-100/ to run the real-data tests")


@needs_shared_datasets
def test_real_fmnist_fold_counts(tmp_path):
    images, labels = load_idx_dataset("fmnist", os.path.join(SHARED_DATASETS, "fashion-mnist"),
                                      str(tmp_path / "cache"), 32)

    assert images.shape == (70000, 1, 32, 32)
    assert np.bincount(labels).tolist() == [7000] * 10
    folds = split_into_folds(labels, 5, 0)
    for indices in folds:
        assert np.bincount(labels[indices], minlength=10).tolist() == [1400] * 10


@needs_shared_datasets
def test_real_coil100_fold_counts(tmp_path):
    folder = os.path.join(SHARED_DATASETS, "coil-100-64px", "coil-100")

    images, labels, extras = load_coil100(folder, 32)

    assert images.shape == (7200, 3, 32, 32)
    assert np.bincount(labels).tolist() == [72] * 100
    assert sorted(set(extras["angle"].tolist())) == list(range(0, 360, 5))
    paths = write_folds(str(tmp_path / "folds"), "coil100", images, labels, 5, 0, extras)
    for path in paths:
        record = load_pickle(path)
        assert np.bincount(record["labels"], minlength=100).tolist() == [14] * 100
