"""Run-time plumbing shared by the scripts: logging, device choice, seeding and the results tree.

Results tree (``RUN.OUTPUT_DIR``, default ``results/`` in the repository)::

    <OUTPUT_DIR>/<dataset>/results.csv                 one row per (fold, inlier set, percentage)
    <OUTPUT_DIR>/<dataset>/fold_<k>/set_<ic>/          one trained model and its evaluation
        config.yaml                                    resolved config of the training run
        checkpoint.pt                                  last complete epoch (for resuming)
        encoder_<dataset>_f<k>_ic<ic>.pt               final encoder weights
        generator_<dataset>_f<k>_ic<ic>.pt             final decoder weights
        train_log.csv, loss_curve.png, images/         training history and image grids
        scores.npz, metrics.json, plots/               evaluation outputs
"""

import logging
import os
import random
import sys

import numpy as np
import torch

from utils.config import resolve_path

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# cuBLAS workspace that gives the same result on every call, from PyTorch's reproducibility notes.
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def setup_logging(level=logging.INFO):
    """Send log records to standard error with timestamps; called once by each script."""
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)


def select_device(name):
    """Return the torch device for RUN.DEVICE ("auto", "cpu" or "cuda")."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("RUN.DEVICE is 'cuda' but no CUDA device is available; "
                           "set RUN.DEVICE=auto or RUN.DEVICE=cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def apply_threads(cfg):
    if cfg.RUN.THREADS > 0:
        torch.set_num_threads(cfg.RUN.THREADS)


def configure_determinism(cfg, device):
    """Make CUDA runs repeatable when RUN.DETERMINISTIC is set; CPU runs need no change.

    Follows PyTorch's reproducibility notes: cuDNN picks deterministic convolution kernels
    and stops benchmarking, every op that has a deterministic implementation uses it (ops
    without one only warn), and cuBLAS gets a fixed workspace. The workspace setting works
    only if no cuBLAS call has been made yet in the process, so an existing value is kept.
    """
    if device.type != "cuda" or not cfg.RUN.DETERMINISTIC:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def prepare_device(cfg):
    """Apply RUN.THREADS, pick the RUN.DEVICE device and set its determinism; return the device."""
    apply_threads(cfg)
    device = select_device(cfg.RUN.DEVICE)
    configure_determinism(cfg, device)
    return device


def task_seed(base_seed, folding_id, ic):
    """Return a seed that differs per (fold, inlier set) but is fixed for a given config."""
    return int(np.random.SeedSequence([base_seed, folding_id, ic]).generate_state(1)[0])


def seed_everything(seed):
    """Seed Python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def dataset_dir(cfg):
    return os.path.join(resolve_path(cfg.RUN.OUTPUT_DIR), cfg.DATASET.NAME)


def run_dir(cfg, folding_id, ic):
    """Return the folder of the model trained on fold ``folding_id`` and inlier set ``ic``."""
    return os.path.join(dataset_dir(cfg), f"fold_{folding_id}", f"set_{ic}")


def model_paths(cfg, folding_id, ic):
    """Return the encoder and generator weight files of one run."""
    folder = run_dir(cfg, folding_id, ic)
    tag = f"{cfg.DATASET.NAME}_f{folding_id}_ic{ic}"
    return os.path.join(folder, f"encoder_{tag}.pt"), os.path.join(folder, f"generator_{tag}.pt")


def results_csv_path(cfg):
    return os.path.join(dataset_dir(cfg), "results.csv")
