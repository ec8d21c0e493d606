"""Training speed: images per second of one epoch (all four updates), batch 128.

Compares, in one run and on the same MNIST digit-0 training images of fold 0:

- a plain loop of GPND's four published updates (written here, as the authors' train_AAE.py
  does them: nn.BCELoss modules, torch.randn prior samples per update, a fresh permutation per
  epoch) at width 128;
- this project's ``Trainer`` at width 128 (``MODEL.ARCH=gpnd``) and with the default network.

It also profiles one epoch of the project's trainer with ``torch.profiler`` and reports the
share of wall time spent inside ATen operators (network passes and optimiser steps) and outside
them (Python and data handling), and the peak resident memory.

    python benchmarks/bench_training.py
"""

import torch
import torch.nn.functional as F
from torch import nn, optim

from common import (PUBLISHED_SETTINGS, Timer, base_parser, configure, machine_description, mnist_config,
                    peak_rss_mb, print_table)
from net import build_networks
from utils.folds import load_protocol, training_inliers
from utils.training import Trainer

BENCH_DIGIT = 0


def plain_published_epoch(cfg, images, device):
    """Run one epoch of the four published updates in their plainest form."""
    encoder, generator, discriminator, z_discriminator = [network.to(device) for network in build_networks(cfg)]
    lr, betas = cfg.TRAIN.BASE_LEARNING_RATE, (cfg.TRAIN.ADAM_BETA1, cfg.TRAIN.ADAM_BETA2)
    g_optimizer = optim.Adam(generator.parameters(), lr=lr, betas=betas)
    d_optimizer = optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    ge_optimizer = optim.Adam(list(encoder.parameters()) + list(generator.parameters()), lr=lr, betas=betas)
    zd_optimizer = optim.Adam(z_discriminator.parameters(), lr=lr, betas=betas)
    bce = nn.BCELoss()
    batch_size, latent = cfg.TRAIN.BATCH_SIZE, cfg.MODEL.LATENT_SIZE
    images = images[torch.randperm(len(images), device=device)]

    for start in range(0, len(images) // batch_size * batch_size, batch_size):
        x = images[start:start + batch_size]
        y_real = torch.ones(batch_size, device=device)
        y_fake = torch.zeros(batch_size, device=device)

        discriminator.zero_grad()
        x_fake = generator(torch.randn(batch_size, latent, device=device)).detach()
        d_loss = bce(discriminator(x), y_real) + bce(discriminator(x_fake), y_fake)
        d_loss.backward()
        d_optimizer.step()

        generator.zero_grad()
        g_loss = bce(discriminator(generator(torch.randn(batch_size, latent, device=device))), y_real)
        g_loss.backward()
        g_optimizer.step()

        z_discriminator.zero_grad()
        z_real = torch.randn(batch_size, latent, device=device)
        zd_loss = bce(z_discriminator(z_real), y_real) + bce(z_discriminator(encoder(x).detach()), y_fake)
        zd_loss.backward()
        zd_optimizer.step()

        encoder.zero_grad()
        generator.zero_grad()
        z = encoder(x)
        reconstruction = F.binary_cross_entropy(generator(z), x) * cfg.TRAIN.RECONSTRUCTION_WEIGHT
        latent_loss = bce(z_discriminator(z), y_real) * cfg.TRAIN.LATENT_ADVERSARIAL_WEIGHT
        (reconstruction + latent_loss).backward()
        ge_optimizer.step()

        # The published loop reads every loss with .item() after each batch.
        for loss in (d_loss, g_loss, zd_loss, reconstruction, latent_loss):
            loss.item()


def trainer_epoch(cfg, images, device):
    trainer = Trainer(cfg, device, seed=0)
    trainer.train_epoch(images, 0, show_progress=False)


def aten_share(cfg, images, device):
    """Profile one trainer epoch; return (wall seconds, seconds inside ATen operators)."""
    from torch.profiler import ProfilerActivity, profile

    with Timer(device) as timer, profile(activities=[ProfilerActivity.CPU]) as profiler:
        trainer_epoch(cfg, images, device)
    inside = sum(event.self_cpu_time_total for event in profiler.key_averages()) / 1e6
    return timer.seconds, inside


def main():
    parser = base_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="epochs timed per variant; the fastest counts")
    args = parser.parse_args()
    device = configure(args)

    published_cfg = mnist_config(args, PUBLISHED_SETTINGS)
    default_cfg = mnist_config(args)
    train_split, _, _ = load_protocol(default_cfg, 0)
    images_uint8 = training_inliers(train_split, [BENCH_DIGIT], "mnist fold 0")
    images = torch.from_numpy(images_uint8).to(device=device, dtype=torch.float32) / 255.0
    used = len(images) // default_cfg.TRAIN.BATCH_SIZE * default_cfg.TRAIN.BATCH_SIZE

    variants = [("plain published loop", "gpnd 128", plain_published_epoch, published_cfg),
                ("this project's Trainer", "gpnd 128", trainer_epoch, published_cfg),
                ("this project's Trainer", "light 32 (default)", trainer_epoch, default_cfg)]
    seconds = {}
    for name, network, run_epoch, cfg in variants:
        timings = []
        for _ in range(args.repeats):
            with Timer(device) as timer:
                run_epoch(cfg, images, device)
            timings.append(timer.seconds)
        seconds[(name, network)] = min(timings)

    plain = seconds[("plain published loop", "gpnd 128")]
    ours128 = seconds[("this project's Trainer", "gpnd 128")]
    rows = [[name, network, f"{value:.1f}", f"{used / value:.0f}", f"{plain / value:.2f}", f"{ours128 / value:.2f}"]
            for (name, network), value in seconds.items()]
    print_table(f"One training epoch of {used} MNIST images, batch {default_cfg.TRAIN.BATCH_SIZE} "
                f"({machine_description(device)}), fastest of {args.repeats}",
                ["loop", "network", "seconds", "images/s", "speed vs plain loop", "speed vs Trainer at 128"], rows)

    profile_rows = []
    for network, cfg in [("gpnd 128", published_cfg), ("light 32 (default)", default_cfg)]:
        wall, inside = aten_share(cfg, images, device)
        profile_rows.append([network, f"{wall:.1f}", f"{inside:.1f}", f"{100 * inside / wall:.1f} %",
                             f"{100 * (wall - inside) / wall:.1f} %"])
    print_table("Profile of one Trainer epoch (torch.profiler, CPU operators)",
                ["network", "wall s", "inside ATen operators s", "inside", "outside (Python, data handling)"],
                profile_rows)
    print(f"\nPeak resident memory of this process: {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
