"""The experiment grid: task ids, shards, SLURM arrays, parallel workers and failure reporting."""

import os
import subprocess
import sys

import pytest

from utils.config import load_config
from utils.drivers import build_tasks, select_shard
from utils.fileio import read_csv_rows

from conftest import REPO_ROOT

MNIST_YAML = os.path.join(REPO_ROOT, "configs", "mnist.yaml")
# Columns that depend only on the task and its seeds, not on how the grid was run.
COMPARED = ["fold", "inlier_set", "percentage", "threshold", "auc", "f1", "accuracy", "aupr_in"]


def test_task_ids_stable_and_complete():
    tasks = build_tasks(load_config(MNIST_YAML, ["RUN.FOLDS=[0, 1]"]))
    assert [task.task_id for task in tasks[:3]] == ["f0-ic0", "f0-ic1", "f0-ic2"]
    assert len(tasks) == 20
    assert tasks[13].task_id == "f1-ic3"
    assert tasks[13].classes == [3]


def test_shards_partition_the_grid():
    tasks = build_tasks(load_config(MNIST_YAML))
    shards = [select_shard(tasks, f"{index}/7") for index in range(7)]
    ids = sorted(task.task_id for shard in shards for task in shard)
    assert ids == sorted(task.task_id for task in tasks)


def grid_command(script, tmp_path, folder, *extra):
    return [sys.executable, os.path.join(REPO_ROOT, script), "--folds", "0", "--classes", "1", "2", "3", "4",
            "--set", f"DATASET.PATH={tmp_path / 'data'}", "--set", f"RUN.OUTPUT_DIR={folder}",
            "--set", "MODEL.WIDTH=8", "--set", "MODEL.LATENT_SIZE=4", "--set", "TRAIN.EPOCH_COUNT=1",
            "--set", "TRAIN.BATCH_SIZE=16", "--set", "TEST.HISTOGRAM_BINS=10", "--set", "RUN.THREADS=1",
            "--set", "RUN.PROGRESS_BAR=false", "--set", "RUN.DEVICE=cpu", *extra]


def run(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def partitioned(tmp_path, idx_folder):
    run([sys.executable, os.path.join(REPO_ROOT, "partition_mnist.py"), "--source", str(idx_folder),
         "--output", str(tmp_path / "data")])
    return tmp_path


def comparable(path):
    rows = read_csv_rows(os.path.join(path, "mnist", "results.csv"))
    return sorted(tuple(row[name] for name in COMPARED) for row in rows)


def test_workers_and_slurm_shards_give_same_rows(partitioned):
    tmp_path = partitioned
    pooled = tmp_path / "pooled"
    run(grid_command("Testing_train_mnist.py", tmp_path, pooled, "--workers", "2"))
    output = run(grid_command("Testing_test_mnist.py", tmp_path, pooled, "--workers", "2")).stdout
    assert "mean ± std over 4 runs" in output

    sharded = tmp_path / "sharded"
    for index in range(4):
        env = {"SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_TASK_COUNT": "4"}
        run(grid_command("Testing_train_mnist.py", tmp_path, sharded), env)
        run(grid_command("Testing_test_mnist.py", tmp_path, sharded), env)

    pooled_rows = comparable(pooled)
    assert len(pooled_rows) == 4 * 5
    assert comparable(sharded) == pooled_rows


def test_list_prints_task_ids(partitioned):
    output = run(grid_command("Testing_train_mnist.py", partitioned, partitioned / "r", "--list")).stdout
    assert output.split("\n")[0].startswith("f0-ic1\tfold 0\tinliers 1")
    assert len(output.strip().splitlines()) == 4


def test_failed_task_reported_others_run(partitioned):
    tmp_path = partitioned
    folder = tmp_path / "failing"
    # Train digits 1-3 only: scoring digit 4 fails for want of a model, the others succeed.
    run(grid_command("Testing_train_mnist.py", tmp_path, folder, "--task", "f0-ic1", "f0-ic2", "f0-ic3"))
    result = subprocess.run(grid_command("Testing_test_mnist.py", tmp_path, folder), capture_output=True, text=True)
    assert result.returncode == 1
    assert "FAILED f0-ic4" in result.stderr
    assert len(read_csv_rows(os.path.join(folder, "mnist", "results.csv"))) == 3 * 5


def test_finished_tasks_skipped_unless_forced(partitioned):
    tmp_path = partitioned
    folder = tmp_path / "skip"
    run(grid_command("Testing_train_mnist.py", tmp_path, folder, "--task", "f0-ic1"))
    again = run(grid_command("Testing_train_mnist.py", tmp_path, folder, "--task", "f0-ic1"))
    assert "skipping" in again.stderr
    forced = run(grid_command("Testing_train_mnist.py", tmp_path, folder, "--task", "f0-ic1", "--force"))
    assert "skipping" not in forced.stderr
    assert "epoch 1/1" in forced.stderr
