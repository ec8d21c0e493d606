"""Helpers shared by the benchmark scripts: settings, models, memory and table output."""

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from utils.config import load_config  # noqa: E402
from utils.runtime import dataset_dir, seed_everything  # noqa: E402
from utils.training import load_generator_and_encoder, train_model  # noqa: E402

MNIST_CONFIG = os.path.join(REPO_ROOT, "configs", "mnist.yaml")
# GPND's published settings: arch "gpnd" at width 128, no noisy fakes, every score term, mul 0.2.
# Spelled out in full so that a change of the defaults cannot change this reference.
PUBLISHED_SETTINGS = ["MODEL.ARCH=gpnd", "MODEL.WIDTH=128", "TRAIN.NOISY_FAKES=false", "TEST.MUL=0.2",
                      "TEST.USE_LATENT_TERM=true", "TEST.USE_RECONSTRUCTION_TERM=true",
                      "TEST.USE_JACOBIAN_TERM=true", "MODEL.SEPARABLE=false", "TRAIN.IMAGE_ADVERSARIAL=true"]
# The light network under the same training and score, so that a row differs from the
# published one in the network only, whatever the configured defaults are.
LIGHT_SETTINGS = ["MODEL.ARCH=light", "MODEL.WIDTH=32"] + PUBLISHED_SETTINGS[2:]


def base_parser(description):
    # The raw formatter keeps the usage lines of the scripts' docstrings on lines of their own.
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device to benchmark")
    return parser


def configure(args):
    torch.set_num_threads(args.threads)
    seed_everything(0)
    return torch.device(args.device)


def machine_description(device):
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")


def peak_rss_mb():
    """Return this process's peak resident set size in MiB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mnist_config(args, extra=()):
    """Return an MNIST config that keeps benchmark outputs under results/benchmarks."""
    overrides = ["RUN.PROGRESS_BAR=false", f"RUN.DEVICE={args.device}",
                 "RUN.OUTPUT_DIR=results/benchmarks"] + list(extra)
    return load_config(MNIST_CONFIG, overrides)


def quick_model(cfg, train_images, device):
    """Train (or reuse) a benchmark model for TRAIN.EPOCH_COUNT epochs; returns (encoder, generator)."""
    separable = "_separable" if cfg.MODEL.SEPARABLE else ""
    name = f"bench_{cfg.MODEL.ARCH}{cfg.MODEL.WIDTH}{separable}_e{cfg.TRAIN.EPOCH_COUNT}"
    output_dir = os.path.join(dataset_dir(cfg), name)
    files = (os.path.join(output_dir, "encoder.pt"), os.path.join(output_dir, "generator.pt"))
    if not all(os.path.exists(path) for path in files):
        train_model(cfg, train_images, output_dir, files, seed=0, device=device)
    return load_generator_and_encoder(cfg, files, device)


def mixed_sample(images, labels, count, seed=0):
    """Return ``count`` images drawn without replacement across all classes."""
    indices = np.random.default_rng(seed).choice(len(images), size=count, replace=False)
    return images[indices], labels[indices]


class Timer:
    """Context manager measuring wall time, synchronising CUDA first when needed."""

    def __init__(self, device):
        self.device = device
        self.seconds = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self.start


def print_table(title, header, rows):
    """Print a Markdown table."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
