"""Command-line drivers behind the thin ``Testing_train_<dataset>.py`` / ``Testing_test_<dataset>.py`` scripts.

A driver expands the config's folds (RUN.FOLDS) and inlier sets into a list of tasks with stable
ids ``f<fold>-ic<inlier set index>``. It runs all of them, a chosen subset (``--task``) or one
shard (``--shard I/N``, or the SLURM array variables), and never prompts. A failed task is
reported with its id at the end while the others still run; the exit status is 1 if any task failed.

The inlier sets come from RUN.INLIER_SETS (each evaluated at every TEST.PERCENTAGES value) or,
when it is set, from RUN.RANDOM_INLIER_SETS: draw d of the k-th [inlier class count, outlier
percentage] pair gets the index ``k * MAX_RANDOM_DRAW_COUNT + d`` and is evaluated at that pair's
percentage only.
"""

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import os
import sys
import traceback

import numpy as np

from utils.config import MAX_RANDOM_DRAW_COUNT, ConfigError, derive_config, inlier_sets, load_config, resolve_path
from utils.fileio import read_csv_rows, write_json
from utils.results import (PUBLISHED_BY_PROTOCOL, format_per_class_table, format_protocol_table,
                           format_summary_table)
from utils.runtime import results_csv_path, run_dir, setup_logging

logger = logging.getLogger(__name__)


class Task:
    """One (fold, inlier set) pair of the experiment grid.

    ``percentage`` is the only outlier percentage to evaluate, or None for every value of
    TEST.PERCENTAGES.
    """

    def __init__(self, fold, ic, classes, percentage=None):
        self.fold = fold
        self.ic = ic
        self.classes = classes
        self.percentage = percentage

    @property
    def task_id(self):
        return f"f{self.fold}-ic{self.ic}"

    def __repr__(self):
        outliers = "" if self.percentage is None else f", {self.percentage:g} % outliers"
        return f"{self.task_id} (fold {self.fold}, inliers {self.classes}{outliers})"


def draw_inlier_classes(class_count, inlier_count, draw, seed):
    """Return draw number ``draw`` of ``inlier_count`` distinct classes out of ``class_count``, sorted.

    The generator is seeded with (seed, inlier_count, draw) only, so a draw does not change when
    other pairs or more draws are added.
    """
    rng = np.random.default_rng([seed, inlier_count, draw])
    return sorted(int(label) for label in rng.choice(class_count, size=inlier_count, replace=False))


def random_inlier_sets(cfg):
    """Return (ic, classes, percentage) for every draw of every pair of RUN.RANDOM_INLIER_SETS."""
    run = cfg.RUN
    sets = []
    for pair_index, (inlier_count, percentage) in enumerate(run.RANDOM_INLIER_SETS):
        for draw in range(run.RANDOM_DRAW_COUNT):
            classes = draw_inlier_classes(cfg.DATASET.TOTAL_CLASS_COUNT, inlier_count, draw, run.RANDOM_DRAW_SEED)
            sets.append((pair_index * MAX_RANDOM_DRAW_COUNT + draw, classes, percentage))
    return sets


def build_tasks(cfg):
    """Return the grid of tasks of ``cfg``: every fold of RUN.FOLDS times every inlier set."""
    if cfg.RUN.RANDOM_INLIER_SETS:
        return [Task(fold, ic, classes, percentage) for fold in cfg.RUN.FOLDS
                for ic, classes, percentage in random_inlier_sets(cfg)]
    sets = inlier_sets(cfg)
    return [Task(fold, ic, classes) for fold in cfg.RUN.FOLDS for ic, classes in enumerate(sets)]


class TaskFolderError(RuntimeError):
    """A run folder belongs to another inlier set than the task that is about to use it."""


TASK_RECORD_NAME = "task.json"


def claim_run_folder(cfg, task, training):
    """Record a random-draw task's inlier classes in its run folder, or raise if they differ.

    A draw's classes depend on RUN.RANDOM_DRAW_SEED and on the order of RUN.RANDOM_INLIER_SETS,
    so after either changes, a folder may contain a model of other classes under the same id.
    Training with RUN.FORCE replaces the record. Scoring never does, because the saved model
    would still belong to the old classes. Tasks of RUN.INLIER_SETS are not checked.
    """
    if task.percentage is None:
        return
    path = os.path.join(run_dir(cfg, task.fold, task.ic), TASK_RECORD_NAME)
    record = {"task_id": task.task_id, "inlier_classes": task.classes, "percentage": task.percentage}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            saved = json.load(stream)
        if saved.get("inlier_classes") == task.classes:
            return
        if not (training and cfg.RUN.FORCE):
            action = "Pass --force to retrain it" if training else "Retrain it with --force first"
            raise TaskFolderError(f"{path}: the folder contains the model of inlier classes "
                                  f"{saved.get('inlier_classes')}, but task {task.task_id} now draws "
                                  f"{task.classes} because RUN.RANDOM_DRAW_SEED or RUN.RANDOM_INLIER_SETS "
                                  f"changed. {action}, or choose another RUN.OUTPUT_DIR.")
    if training:
        write_json(path, record)


def select_shard(tasks, shard):
    """Return the tasks of shard ``I/N`` (0-based I): every N-th task starting at I."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError as error:
        raise ConfigError(f"--shard {shard!r}: expected I/N with integers, e.g. 0/4") from error
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {shard!r}: expected 0 <= I < N")
    return tasks[index::count]


def parse_single_task(description):
    """Parse the command line of a one-model script; return (cfg, fold, inlier classes, ic).

    Used by train_AAE.py and novelty_detector.py, which run a single (fold, inlier set) task.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist.yaml", help="dataset YAML file")
    parser.add_argument("--fold", type=int, default=0, help="test fold index")
    parser.add_argument("--classes", type=int, nargs="+", required=True, help="inlier class labels")
    parser.add_argument("--ic", type=int, default=None,
                        help="inlier-set index used in file names (default: the first class)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set TRAIN.EPOCH_COUNT=20 (repeatable)")
    args = parser.parse_args()

    setup_logging()
    config_path = args.config if os.path.exists(args.config) else resolve_path(args.config)
    try:
        cfg = load_config(config_path, args.overrides + [f"RUN.FOLDS=[{args.fold}]",
                                                         f"RUN.INLIER_SETS=[{args.classes}]"])
    except ConfigError as error:
        logger.error("%s", error)
        sys.exit(2)
    ic = args.classes[0] if args.ic is None else args.ic
    return cfg, args.fold, args.classes, ic


def make_parser(description, default_config):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config, help=f"dataset YAML file (default {default_config})")
    parser.add_argument("--folds", type=int, nargs="+", help="folds to run (overrides RUN.FOLDS)")
    parser.add_argument("--classes", type=int, nargs="+",
                        help="run only the single-class inlier sets of these class labels")
    parser.add_argument("--task", nargs="+", metavar="ID", help="run only these task ids (see --list)")
    parser.add_argument("--shard", metavar="I/N",
                        help="run every N-th task starting at I (0-based); default from "
                             "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT when set")
    parser.add_argument("--list", action="store_true", help="print the task ids and exit")
    parser.add_argument("--force", action="store_true", help="redo tasks whose outputs already exist")
    parser.add_argument("--workers", type=int, default=1,
                        help="number of parallel worker processes: one GPU each when there are GPUs, "
                             "else the CPU threads split evenly (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set TRAIN.EPOCH_COUNT=20 (repeatable)")
    return parser


def resolve_tasks(args):
    """Load the config with the command-line overrides and return (cfg, selected tasks)."""
    overrides = list(args.overrides)
    if args.folds is not None:
        overrides.append(f"RUN.FOLDS={args.folds}")
    if args.force:
        overrides.append("RUN.FORCE=true")
    cfg = load_config(args.config, overrides)
    tasks = build_tasks(cfg)

    if args.classes is not None:
        tasks = [task for task in tasks if len(task.classes) == 1 and task.classes[0] in args.classes]
        if not tasks:
            labels = " ".join(str(label) for label in args.classes)
            raise ConfigError(f"--classes {labels}: no single-class inlier set matches; class labels are "
                              f"0..{cfg.DATASET.TOTAL_CLASS_COUNT - 1}, and --list prints the tasks")
    if args.task:
        known = {task.task_id for task in tasks}
        unknown = [task_id for task_id in args.task if task_id not in known]
        if unknown:
            raise ConfigError(f"--task: unknown ids {unknown}; --list prints the valid ones")
        tasks = [task for task in tasks if task.task_id in args.task]

    shard = args.shard
    if shard is None and "SLURM_ARRAY_TASK_ID" in os.environ:
        count = os.environ.get("SLURM_ARRAY_TASK_COUNT")
        if count is None:
            raise ConfigError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; "
                              "submit with sbatch --array=0-N or pass --shard I/N")
        shard = f"{os.environ['SLURM_ARRAY_TASK_ID']}/{count}"
        logger.info("SLURM array task: running shard %s", shard)
    if shard is not None:
        tasks = select_shard(tasks, shard)
    return cfg, tasks


def _execute(kind, cfg, task):
    """Run one task in this process: "train" returns the run folder, "test" its result rows."""
    if kind == "train":
        from train_AAE import train

        claim_run_folder(cfg, task, training=True)
        return train(task.fold, task.classes, task.ic, cfg)
    from novelty_detector import main

    claim_run_folder(cfg, task, training=False)
    return main(task.fold, task.classes, task.ic, cfg.DATASET.TOTAL_CLASS_COUNT, cfg.TEST.MUL,
                cfg.DATASET.FOLDS_COUNT, task_config(cfg, task))


def _init_worker(gpu_queue, threads):
    """Pin a worker process to one GPU (taken from the queue) or to its share of CPU threads."""
    import torch

    setup_logging()
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    elif threads:
        torch.set_num_threads(threads)


def _execute_logged(kind, cfg, task):
    """Run a task and return (result, None), or (None, error message) when it fails.

    Input errors (missing or invalid files, settings, undefined metrics) are logged in one line;
    anything else is logged with its traceback.
    """
    from evaluation import MetricError
    from utils.datasets import DatasetError
    from utils.folds import FoldError
    from utils.training import TrainingDivergedError

    try:
        return _execute(kind, cfg, task), None
    except (FileNotFoundError, ConfigError, DatasetError, FoldError, MetricError, TaskFolderError,
            TrainingDivergedError) as error:
        logger.error("Task %s failed: %s", task.task_id, error)
        return None, f"{type(error).__name__}: {error}"
    except Exception as error:  # reported by the parent with the task id
        logger.error("Task %s failed: %s\n%s", task.task_id, error, traceback.format_exc())
        return None, f"{type(error).__name__}: {error}"


def run_tasks(kind, cfg, tasks, workers=1):
    """Run every task, in ``workers`` processes when more than 1; return (results, failures).

    A failed task does not stop the others; failures are (task, error message) pairs.
    """
    results, failures = [], []
    if workers <= 1:
        for number, task in enumerate(tasks, start=1):
            logger.info("Task %d/%d: %s", number, len(tasks), task)
            result, error = _execute_logged(kind, cfg, task)
            if error is None:
                results.append(result)
            else:
                failures.append((task, error))
    else:
        import torch

        context = multiprocessing.get_context("spawn")
        gpu_count = torch.cuda.device_count() if cfg.RUN.DEVICE != "cpu" else 0
        gpu_queue = None
        threads = cfg.RUN.THREADS or max(1, (os.cpu_count() or 1) // workers)
        if gpu_count:
            workers = min(workers, gpu_count)
            gpu_queue = context.Queue()
            for gpu in range(workers):
                gpu_queue.put(gpu)
        logger.info("Running %d tasks in %d worker processes (%s)", len(tasks), workers,
                    "one GPU each" if gpu_count else f"{threads} CPU threads each")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                    initargs=(gpu_queue, threads)) as pool:
            futures = [pool.submit(_execute_logged, kind, cfg, task) for task in tasks]
            for task, future in zip(tasks, futures):
                result, error = future.result()
                if error is None:
                    results.append(result)
                else:
                    failures.append((task, error))

    for task, error in failures:
        logger.error("FAILED %s: %s", task.task_id, error)
    if failures:
        logger.error("%d of %d tasks failed", len(failures), len(tasks))
    return results, failures


def _start(description, default_config):
    setup_logging()
    args = make_parser(description, default_config).parse_args()
    # Relative config paths work from the repository root and from the current folder.
    if not os.path.exists(args.config):
        args.config = resolve_path(args.config)
    try:
        cfg, tasks = resolve_tasks(args)
    except ConfigError as error:
        logger.error("%s", error)
        sys.exit(2)
    if args.list:
        for task in tasks:
            outliers = "" if task.percentage is None else f"\toutliers {task.percentage:g} %"
            print(f"{task.task_id}\tfold {task.fold}\tinliers {' '.join(map(str, task.classes))}{outliers}")
        sys.exit(0)
    return cfg, tasks, args


def train_driver(default_config):
    """Train one model per selected task (the body of Testing_train_<dataset>.py)."""
    cfg, tasks, args = _start("Train the adversarial autoencoder for every selected (fold, inlier set) task.",
                              default_config)
    _, failures = run_tasks("train", cfg, tasks, args.workers)
    sys.exit(1 if failures else 0)


def task_config(cfg, task):
    """Return ``cfg`` restricted to the task's own outlier percentage, if it has one."""
    if task.percentage is None:
        return cfg
    return derive_config(cfg, [{"TEST": {"PERCENTAGES": [task.percentage]}}], f"task {task.task_id}")


def test_driver(default_config):
    """Score every selected task and print the summary table (the body of Testing_test_<dataset>.py)."""
    cfg, tasks, args = _start("Score every selected (fold, inlier set) task and print mean and std per "
                              "percentage.", default_config)
    results, failures = run_tasks("test", cfg, tasks, args.workers)
    rows = [row for task_rows in results for row in task_rows]

    if rows and cfg.RUN.RANDOM_INLIER_SETS:
        print()
        print(format_protocol_table(rows, PUBLISHED_BY_PROTOCOL.get(cfg.DATASET.NAME),
                                    title=f"{cfg.DATASET.NAME}, this invocation"))
    elif rows:
        print()
        print(format_per_class_table(rows, "auc"))
        print()
        print(format_per_class_table(rows, "f1"))
        print()
        print(format_summary_table(rows, title=f"{cfg.DATASET.NAME}, this invocation"))
        print(f"\nAll rows: {results_csv_path(cfg)} ({len(read_csv_rows(results_csv_path(cfg)))} rows)")
    sys.exit(1 if failures else 0)
