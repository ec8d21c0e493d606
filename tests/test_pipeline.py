"""End-to-end runs of tiny models: partition, train, score, resume, reproducibility, results file."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

import novelty_detector
import train_AAE
from utils.datasets import load_idx_dataset
from utils.fileio import append_csv_rows, load_torch, read_csv_rows, save_torch
from utils.folds import write_folds
from utils.runtime import model_paths, results_csv_path, run_dir
from utils.training import SettingsMismatchError, TrainingDivergedError, Trainer

from conftest import REPO_ROOT, tiny_overrides


def partition(cfg, idx_folder):
    images, labels = load_idx_dataset("mnist", str(idx_folder), cfg.DATASET.CACHE, 32)
    write_folds(cfg.DATASET.PATH, "mnist", images, labels, cfg.DATASET.FOLDS_COUNT, cfg.DATASET.SEED)


def evaluate(cfg, classes=(3,), ic=3):
    return novelty_detector.main(0, list(classes), ic, 10, cfg.TEST.MUL, 5, cfg)


def test_end_to_end_tiny_run(tiny_cfg, idx_folder):
    cfg = tiny_cfg()
    partition(cfg, idx_folder)
    output_dir = train_AAE.train(0, [3], 3, cfg)
    for path in model_paths(cfg, 0, 3):
        assert os.path.isfile(path)
    for name in ["config.yaml", "checkpoint.pt", "train_log.csv", "loss_curve.png",
                 "images/reconstruction_epoch_002.png", "images/samples_epoch_002.png"]:
        assert os.path.isfile(os.path.join(output_dir, name)), name

    rows = evaluate(cfg)
    assert [row["percentage"] for row in rows] == [10, 20, 30, 40, 50]
    for row in rows:
        assert 0.0 <= row["auc"] <= 1.0
        assert np.isfinite(row["threshold"])
    for name in ["plots/distance_pdf.png", "plots/latent_pdfs.png", "plots/score_distributions.png",
                 "scores_mul0.2.npz", "metrics_mul0.2.json", "evaluation_config.yaml"]:
        assert os.path.isfile(os.path.join(output_dir, name)), name

    csv_rows = read_csv_rows(results_csv_path(cfg))
    assert len(csv_rows) == 5
    assert csv_rows[0]["dataset"] == "mnist"
    assert float(csv_rows[0]["auc"]) == pytest.approx(rows[0]["auc"])


def test_each_image_scored_once_per_split(tiny_cfg, idx_folder, monkeypatch):
    cfg = tiny_cfg()
    partition(cfg, idx_folder)
    train_AAE.train(0, [3], 3, cfg)
    counts = []
    original = novelty_detector.score_images

    def counting(encoder, generator, images, *args, **kwargs):
        counts.append(len(images))
        return original(encoder, generator, images, *args, **kwargs)

    monkeypatch.setattr(novelty_detector, "score_images", counting)
    evaluate(cfg)
    # One validation fold and one test fold of 60 images each, whatever the percentages.
    assert counts == [60, 60]


def test_same_seed_same_weights_and_scores(tmp_path, idx_folder):
    from utils.config import load_config

    results = []
    for run in ("a", "b"):
        cfg = load_config(os.path.join(REPO_ROOT, "configs", "mnist.yaml"), [tiny_overrides(tmp_path / run)])
        partition(cfg, idx_folder)
        train_AAE.train(0, [3], 3, cfg)
        evaluate(cfg)
        weights = load_torch(model_paths(cfg, 0, 3)[0])
        scores = np.load(os.path.join(run_dir(cfg, 0, 3), "scores_mul0.2.npz"))["test_score"]
        history = load_torch(os.path.join(run_dir(cfg, 0, 3), "checkpoint.pt"))["trainer"]["history"]
        results.append((weights, scores, [row[:5] for row in history]))
    (weights_a, scores_a, losses_a), (weights_b, scores_b, losses_b) = results
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    np.testing.assert_array_equal(scores_a, scores_b)
    assert losses_a == losses_b


def test_finished_run_not_retrained(tiny_cfg, idx_folder, caplog):
    cfg = tiny_cfg()
    partition(cfg, idx_folder)
    train_AAE.train(0, [3], 3, cfg)
    encoder_path = model_paths(cfg, 0, 3)[0]
    stamp = os.path.getmtime(encoder_path)
    with caplog.at_level("INFO"):
        train_AAE.train(0, [3], 3, cfg)
    assert os.path.getmtime(encoder_path) == stamp
    assert "skipping" in caplog.text


def test_finished_run_of_other_settings_rejected(tiny_cfg, idx_folder):
    cfg = tiny_cfg()
    partition(cfg, idx_folder)
    train_AAE.train(0, [3], 3, cfg)
    # Another scoring setting reuses the model; another network or training does not.
    evaluate(tiny_cfg(TEST={"MUL": 0.5}))
    wider = tiny_cfg(MODEL={"WIDTH": 16})
    with pytest.raises(SettingsMismatchError, match="MODEL.WIDTH 8 there, 16 now"):
        train_AAE.train(0, [3], 3, wider)
    with pytest.raises(SettingsMismatchError, match="--force"):
        evaluate(tiny_cfg(TRAIN={"EPOCH_COUNT": 3}))


def test_nan_loss_stops_with_epoch_and_batch(tiny_cfg, idx_folder, monkeypatch):
    cfg = tiny_cfg(TRAIN={"EPOCH_COUNT": 3, "BATCH_SIZE": 4})
    partition(cfg, idx_folder)
    original = Trainer.train_step
    calls = {"count": 0}

    def poisoned(self, x):
        calls["count"] += 1
        losses = original(self, x)
        # 18 training images of class 3 / batch 4 = 4 batches per epoch: poison batch 2 of epoch 2.
        return losses * float("nan") if calls["count"] == 6 else losses

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(TrainingDivergedError, match="epoch 2, batch 2"):
        train_AAE.train(0, [3], 3, cfg)
    checkpoint = load_torch(os.path.join(run_dir(cfg, 0, 3), "checkpoint.pt"))
    assert checkpoint["trainer"]["next_epoch"] == 1
    assert not os.path.exists(model_paths(cfg, 0, 3)[0])


def test_resume_after_checkpoint_config_change_rejected(tiny_cfg, idx_folder):
    cfg = tiny_cfg()
    partition(cfg, idx_folder)
    train_AAE.train(0, [3], 3, cfg)
    os.remove(model_paths(cfg, 0, 3)[0])
    changed = tiny_cfg(TRAIN={"BASE_LEARNING_RATE": 0.001})
    with pytest.raises(SettingsMismatchError, match="TRAIN.BASE_LEARNING_RATE 0.002 there, 0.001 now"):
        train_AAE.train(0, [3], 3, changed)


def test_resume_checkpoint_without_newer_keys(tiny_cfg, idx_folder, caplog):
    cfg = tiny_cfg()
    partition(cfg, idx_folder)
    train_AAE.train(0, [3], 3, cfg)

    # Turn the checkpoint into one written after epoch 1 by a version without two newer keys.
    encoder_path = model_paths(cfg, 0, 3)[0]
    checkpoint_path = os.path.join(os.path.dirname(encoder_path), "checkpoint.pt")
    state = load_torch(checkpoint_path)
    settings = yaml.safe_load(state["config"])
    del settings["MODEL.SEPARABLE"]
    del settings["TRAIN.IMAGE_ADVERSARIAL"]
    state["config"] = yaml.safe_dump(settings, sort_keys=True)
    state["trainer"]["next_epoch"] = 1
    state["trainer"]["history"] = state["trainer"]["history"][:1]
    save_torch(checkpoint_path, state)
    os.remove(encoder_path)

    caplog.set_level("INFO")
    train_AAE.train(0, [3], 3, cfg)
    assert "from epoch 2" in caplog.text
    assert os.path.exists(encoder_path)

    # A newer key set to other than its default still differs.
    os.remove(encoder_path)
    save_torch(checkpoint_path, state)
    with pytest.raises(SettingsMismatchError, match="MODEL.SEPARABLE .* there, True now"):
        train_AAE.train(0, [3], 3, tiny_cfg(MODEL={"SEPARABLE": True}))


# Each batch is slowed down by a sleep (which changes no number), so that the kill lands mid-epoch.
TRAIN_SCRIPT = """
import sys, time
sys.path.insert(0, {repo!r})
import train_AAE
from utils.config import load_config
from utils.runtime import setup_logging
from utils.training import Trainer
original_step = Trainer.train_step
def slow_step(self, x):
    time.sleep(0.05)
    return original_step(self, x)
Trainer.train_step = slow_step
setup_logging()
cfg = load_config({config!r}, [{overrides!r}])
train_AAE.train(0, [3], 3, cfg)
"""


def run_training_process(tmp_path, name, overrides):
    script = tmp_path / f"{name}.py"
    script.write_text(TRAIN_SCRIPT.format(repo=REPO_ROOT, config=os.path.join(REPO_ROOT, "configs", "mnist.yaml"),
                                          overrides=overrides))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, idx_folder):
    from utils.config import load_config

    epochs = 4
    settings = {"TRAIN": {"EPOCH_COUNT": epochs, "BATCH_SIZE": 4}, "RUN": {"THREADS": 1}}
    runs = {}
    for name in ("uninterrupted", "killed"):
        overrides = tiny_overrides(tmp_path / name, **settings)
        cfg = load_config(os.path.join(REPO_ROOT, "configs", "mnist.yaml"), [overrides])
        partition(cfg, idx_folder)
        runs[name] = (cfg, overrides)

    cfg, overrides = runs["uninterrupted"]
    process = run_training_process(tmp_path, "uninterrupted", overrides)
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()

    cfg, overrides = runs["killed"]
    checkpoint = os.path.join(run_dir(cfg, 0, 3), "checkpoint.pt")
    process = run_training_process(tmp_path, "killed", overrides)
    deadline = time.time() + 300
    while time.time() < deadline and not os.path.exists(checkpoint):
        time.sleep(0.01)
    # The first epoch's checkpoint exists: kill the process during a later epoch.
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    state = load_torch(checkpoint)
    assert state["trainer"]["next_epoch"] < epochs
    assert not os.path.exists(model_paths(cfg, 0, 3)[0])

    process = run_training_process(tmp_path, "killed", overrides)
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    assert b"Resuming" in process.stderr.read()

    reference = load_torch(model_paths(runs["uninterrupted"][0], 0, 3)[0])
    resumed = load_torch(model_paths(cfg, 0, 3)[0])
    for name in reference:
        assert torch.equal(reference[name], resumed[name]), name


def _append_rows(path, worker):
    for index in range(25):
        append_csv_rows(path, [{"worker": worker, "index": index}], ["worker", "index"])


def test_concurrent_appends_lose_no_row(tmp_path):
    path = str(tmp_path / "results.csv")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_rows, args=(path, worker)) for worker in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    rows = read_csv_rows(path)
    assert len(rows) == 75
    assert {(row["worker"], row["index"]) for row in rows} == {(str(w), str(i)) for w in range(3) for i in range(25)}


def test_rescoring_replaces_rows(tiny_cfg, idx_folder):
    cfg = tiny_cfg()
    partition(cfg, idx_folder)
    train_AAE.train(0, [3], 3, cfg)
    evaluate(cfg)
    evaluate(tiny_cfg(RUN={"FORCE": True}))
    assert len(read_csv_rows(results_csv_path(cfg))) == 5
