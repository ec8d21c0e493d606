"""Training of the adversarial autoencoder: GPND's four updates per batch, with resumable checkpoints.

Per batch of real images x, in this order (as in GPND):

1. image discriminator D: real x against decoder outputs G(z), z ~ N(0, I), and, with
   TRAIN.NOISY_FAKES, against noisy copies of x as further fakes;
2. decoder G: make D call G(z) real;
3. latent discriminator ZD: prior samples against encoder outputs E(x);
4. encoder and decoder together: RECONSTRUCTION_WEIGHT * BCE(G(E(x)), x) plus
   LATENT_ADVERSARIAL_WEIGHT * BCE(ZD(E(x)), real).

TRAIN.IMAGE_ADVERSARIAL false skips updates 1 and 2 and logs their losses as 0. What remains
is an autoencoder whose codes alone are trained adversarially, towards the prior.

All randomness of a run (shuffles and prior samples) comes from one ``torch.Generator`` on the
CPU. Its state is saved in the checkpoint at the end of every epoch. A run killed mid-epoch and
restarted therefore ends with the same weights as one that was never interrupted (on the CPU).
"""

import csv
import io
import logging
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import optim
from tqdm import tqdm

from net import build_networks
from utils.config import DEFAULTS, ConfigError, config_to_yaml
from utils.fileio import load_torch, save_torch, write_text
from utils.plots import save_image_grid, save_loss_curve
from utils.runtime import seed_everything

logger = logging.getLogger(__name__)

LOSS_NAMES = ["D", "G", "ZD", "reconstruction", "latent_adversarial"]
# Fixed images and prior samples shown in the per-epoch grids.
GRID_IMAGE_COUNT = 32
GRID_SAMPLE_COUNT = 64
# Progress-bar loss figures are refreshed every this many batches (each refresh costs a sync).
PROGRESS_REFRESH_BATCHES = 10
# Settings that do not change what training produces; see _model_settings.
SETTINGS_FREE_TO_CHANGE = {"TRAIN.IMAGE_GRID_EVERY", "DATASET.SOURCE", "DATASET.CACHE",
                           "VIDEO.SMOOTHING_SIGMA", "VIDEO.ANIMATION_CLIP", "VIDEO.ANIMATION_FRAME_STEP"}


class SettingsMismatchError(ConfigError):
    """A model or checkpoint on disk was trained with other settings than the current config."""


class TrainingDivergedError(RuntimeError):
    """A training loss became NaN or infinite."""


class Trainer:
    """Holds the four networks, their optimisers and the random state of one training run."""

    def __init__(self, cfg, device, seed):
        self.cfg = cfg
        self.device = device
        self.encoder, self.generator, self.discriminator, self.z_discriminator = [
            network.to(device) for network in build_networks(cfg)]

        betas = (cfg.TRAIN.ADAM_BETA1, cfg.TRAIN.ADAM_BETA2)
        lr = cfg.TRAIN.BASE_LEARNING_RATE
        self.optimizers = {
            "D": optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas),
            "G": optim.Adam(self.generator.parameters(), lr=lr, betas=betas),
            "ZD": optim.Adam(self.z_discriminator.parameters(), lr=lr, betas=betas),
            "GE": optim.Adam(list(self.encoder.parameters()) + list(self.generator.parameters()),
                             lr=lr, betas=betas),
        }
        self.random = torch.Generator().manual_seed(seed)
        self.grid_noise = torch.randn(GRID_SAMPLE_COUNT, cfg.MODEL.LATENT_SIZE, generator=self.random)
        self.next_epoch = 0
        self.history = []

    def networks(self):
        return {"encoder": self.encoder, "generator": self.generator,
                "discriminator": self.discriminator, "z_discriminator": self.z_discriminator}

    def learning_rate(self, epoch):
        """Return the learning rate of ``epoch``: divided by the decay factor every N epochs."""
        train = self.cfg.TRAIN
        return train.BASE_LEARNING_RATE / train.LR_DECAY_FACTOR ** ((epoch + 1) // train.LR_DECAY_EPOCHS)

    def state_dict(self):
        return {
            "networks": {name: network.state_dict() for name, network in self.networks().items()},
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "random_state": self.random.get_state(),
            "next_epoch": self.next_epoch,
            "history": [[float(value) for value in row] for row in self.history],
        }

    def load_state_dict(self, state):
        for name, network in self.networks().items():
            network.load_state_dict(state["networks"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.random.set_state(state["random_state"])
        self.next_epoch = int(state["next_epoch"])
        self.history = [list(row) for row in state["history"]]

    def _prior(self, count):
        return torch.randn(count, self.cfg.MODEL.LATENT_SIZE, generator=self.random).to(self.device)

    def noisy_copy(self, x):
        """Return ``x`` corrupted with TRAIN.NOISE_TYPE noise of TRAIN.NOISE_LEVEL, in [0, 1]."""
        level = self.cfg.TRAIN.NOISE_LEVEL
        if self.cfg.TRAIN.NOISE_TYPE == "gaussian":
            noise = torch.randn(x.shape, generator=self.random).to(self.device)
            return (x + level * noise).clamp_(0.0, 1.0)
        # Salt and pepper: a `level` share of pixels becomes 0 or 1 with equal chance.
        draws = torch.rand((2,) + tuple(x.shape), generator=self.random).to(self.device)
        hit = draws[0] < level
        return torch.where(hit, (draws[1] < 0.5).to(x.dtype), x)

    def discriminator_fakes(self, x):
        """Return the batches of fake images of the discriminator update: [G(z)], plus noisy x if enabled.

        Each kind is its own batch, as real and fake images are, because the discriminator's
        BatchNorm normalises each input batch with that batch's statistics. A batch mixing
        decoder outputs with noisy images has other statistics than one of decoder outputs
        alone, so the discriminator could call every unmixed batch real and leave the decoder
        without an adversarial signal.
        """
        with torch.no_grad():
            fakes = [self.generator(self._prior(x.shape[0]))]
        if self.cfg.TRAIN.NOISY_FAKES:
            fakes.append(self.noisy_copy(x))
        return fakes

    def image_adversarial_updates(self, x, real, fake):
        """Update the image discriminator, then the decoder against it; return both losses."""
        # 1. image discriminator: real images against decoded prior samples (and noisy images).
        # The fake term is the mean over the fake batches, so noisy fakes do not change its weight.
        self.discriminator.zero_grad(set_to_none=True)
        fake_batches = self.discriminator_fakes(x)
        fake_loss = sum(F.binary_cross_entropy(self.discriminator(batch_fakes), fake)
                        for batch_fakes in fake_batches) / len(fake_batches)
        d_loss = F.binary_cross_entropy(self.discriminator(x), real) + fake_loss
        d_loss.backward()
        self.optimizers["D"].step()

        # 2. decoder: fool the image discriminator
        self.generator.zero_grad(set_to_none=True)
        g_loss = F.binary_cross_entropy(self.discriminator(self.generator(self._prior(x.shape[0]))), real)
        g_loss.backward()
        self.optimizers["G"].step()
        return d_loss, g_loss

    def train_step(self, x):
        """Run GPND's four updates on one batch and return the five losses as a tensor."""
        batch = x.shape[0]
        real = torch.ones(batch, device=self.device)
        fake = torch.zeros(batch, device=self.device)

        # 1 and 2. image discriminator and decoder, unless the image adversary is off
        if self.cfg.TRAIN.IMAGE_ADVERSARIAL:
            d_loss, g_loss = self.image_adversarial_updates(x, real, fake)
        else:
            d_loss = g_loss = torch.zeros((), device=self.device)

        # 3. latent discriminator: prior samples against encoder outputs
        self.z_discriminator.zero_grad(set_to_none=True)
        with torch.no_grad():
            z_encoded = self.encoder(x)
        zd_loss = F.binary_cross_entropy(self.z_discriminator(self._prior(batch)), real) + \
            F.binary_cross_entropy(self.z_discriminator(z_encoded), fake)
        zd_loss.backward()
        self.optimizers["ZD"].step()

        # 4. encoder and decoder: reconstruct x and make codes look like prior samples
        self.encoder.zero_grad(set_to_none=True)
        self.generator.zero_grad(set_to_none=True)
        z = self.encoder(x)
        reconstruction_loss = F.binary_cross_entropy(self.generator(z), x)
        latent_loss = F.binary_cross_entropy(self.z_discriminator(z), real)
        (self.cfg.TRAIN.RECONSTRUCTION_WEIGHT * reconstruction_loss +
         self.cfg.TRAIN.LATENT_ADVERSARIAL_WEIGHT * latent_loss).backward()
        self.optimizers["GE"].step()

        return torch.stack([d_loss, g_loss, zd_loss, reconstruction_loss, latent_loss]).detach()

    def train_epoch(self, images, epoch, show_progress):
        """Train one epoch on ``images`` (float tensor on the device) and return mean losses."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = self.learning_rate(epoch)
        for network in self.networks().values():
            network.train()

        batch_size = self.cfg.TRAIN.BATCH_SIZE
        # Incomplete last batches are dropped, as in GPND: BatchNorm needs more than one image.
        batch_count = len(images) // batch_size
        order = torch.randperm(len(images), generator=self.random).to(self.device)
        totals = torch.zeros(len(LOSS_NAMES), device=self.device)

        progress = tqdm(range(batch_count), desc=f"epoch {epoch + 1}/{self.cfg.TRAIN.EPOCH_COUNT}",
                        disable=None if show_progress else True, leave=False, dynamic_ncols=True)
        for batch_index in progress:
            x = images[order[batch_index * batch_size:(batch_index + 1) * batch_size]]
            losses = self.train_step(x)
            if not torch.isfinite(losses).all():
                bad = {name: float(value) for name, value in zip(LOSS_NAMES, losses.cpu())}
                raise TrainingDivergedError(
                    f"loss became NaN or infinite at epoch {epoch + 1}, batch {batch_index + 1}: {bad}; "
                    f"the last good checkpoint is kept. Lower TRAIN.BASE_LEARNING_RATE or check the inputs")
            totals += losses
            if show_progress and batch_index % PROGRESS_REFRESH_BATCHES == 0:
                means = (totals / (batch_index + 1)).tolist()
                progress.set_postfix({name: f"{value:.3f}" for name, value in zip(LOSS_NAMES, means)})
        progress.close()
        return (totals / max(batch_count, 1)).tolist()


def _history_csv(history):
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["epoch"] + LOSS_NAMES + ["seconds", "images_per_second"])
    for epoch, row in enumerate(history, start=1):
        writer.writerow([epoch] + [f"{value:.6f}" for value in row])
    return stream.getvalue()


def _model_settings(tree):
    """Return the settings of a config tree (a plain dict) that decide what training produces.

    RUN (threads, device, output folder) and TEST (how a model is scored) may change between
    training and a later run, and so may TRAIN.IMAGE_GRID_EVERY, which only sets how often
    image grids are drawn, and the VIDEO settings that only shape the evaluation (smoothing
    and the animation).
    """
    return {f"{section}.{key}": value
            for section in ("DATASET", "MODEL", "TRAIN", "VIDEO") for key, value in tree.get(section, {}).items()
            if f"{section}.{key}" not in SETTINGS_FREE_TO_CHANGE}


def _resume_signature(cfg):
    """Return the model-deciding settings of ``cfg`` as YAML text, stored in every checkpoint."""
    return yaml.safe_dump(_model_settings(cfg.to_dict()), sort_keys=True)


def _differing_settings(saved, current):
    """List the settings that differ between two ``_model_settings`` dicts, as readable phrases.

    A key added to the schema after a model was trained is absent from its saved settings.
    New keys default to the behaviour from before they existed, so an absent key counts as
    its default and only other values differ.
    """
    defaults = _model_settings(DEFAULTS)
    return [f"{key} {saved.get(key, 'absent')!r} there, {value!r} now"
            for key, value in current.items()
            if saved.get(key, defaults[key]) != value]


def _format_differences(differing):
    return "; ".join(differing[:5]) + ("; ..." if len(differing) > 5 else "")


def check_trained_with(cfg, output_dir):
    """Raise SettingsMismatchError if the model in ``output_dir`` was trained with other settings.

    Compares ``cfg`` with the config.yaml that training wrote into the run folder; a folder
    without one (a model copied in by hand) is not checked.
    """
    path = os.path.join(output_dir, "config.yaml")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as stream:
        saved = _model_settings(yaml.safe_load(stream) or {})
    differing = _differing_settings(saved, _model_settings(cfg.to_dict()))
    if differing:
        listed = _format_differences(differing)
        raise SettingsMismatchError(f"{output_dir}: the model there was trained with other settings ({listed}); "
                                    f"pass --force (RUN.FORCE=true) to retrain, or set RUN.OUTPUT_DIR to a new "
                                    f"folder to keep both")


def train_model(cfg, train_images, output_dir, model_files, seed, device):
    """Train on ``train_images`` (uint8, N x C x H x W), resuming from a checkpoint if one exists.

    Writes a checkpoint after every epoch, then the encoder and generator weights to
    ``model_files``. Returns the per-epoch history rows (five losses, seconds, images/s).
    """
    if len(train_images) < cfg.TRAIN.BATCH_SIZE:
        raise ValueError(f"{output_dir}: {len(train_images)} training images, fewer than one batch of "
                         f"TRAIN.BATCH_SIZE = {cfg.TRAIN.BATCH_SIZE}; lower the batch size")
    os.makedirs(output_dir, exist_ok=True)
    checkpoint_path = os.path.join(output_dir, "checkpoint.pt")
    config_path = os.path.join(output_dir, "config.yaml")

    # The global generators are seeded too: network initialisation draws from torch's.
    seed_everything(seed)
    trainer = Trainer(cfg, device, seed)
    if os.path.exists(checkpoint_path) and not cfg.RUN.FORCE:
        state = load_torch(checkpoint_path)
        # The checkpoint stores the flat settings of _resume_signature as YAML text.
        saved = yaml.safe_load(state["config"]) if isinstance(state.get("config"), str) else None
        if isinstance(saved, dict):
            differing = _differing_settings(saved, _model_settings(cfg.to_dict()))
        else:
            differing = ["no settings stored in it"]
        if differing:
            raise SettingsMismatchError(f"{checkpoint_path} was written with other settings "
                                        f"({_format_differences(differing)}); pass --force (RUN.FORCE=true) "
                                        f"to start over, or restore the old settings")
        trainer.load_state_dict(state["trainer"])
        logger.info("Resuming %s from epoch %d", output_dir, trainer.next_epoch + 1)
    write_text(config_path, config_to_yaml(cfg))

    images = torch.from_numpy(train_images).to(device=device, dtype=torch.float32).div_(255.0)
    grid_images = images[:GRID_IMAGE_COUNT]
    epoch_count = cfg.TRAIN.EPOCH_COUNT
    show_progress = cfg.RUN.PROGRESS_BAR

    for epoch in range(trainer.next_epoch, epoch_count):
        start = time.perf_counter()
        losses = trainer.train_epoch(images, epoch, show_progress)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        images_per_second = (len(images) // cfg.TRAIN.BATCH_SIZE) * cfg.TRAIN.BATCH_SIZE / seconds

        trainer.history.append(losses + [seconds, images_per_second])
        trainer.next_epoch = epoch + 1
        save_torch(checkpoint_path, {"trainer": trainer.state_dict(), "config": _resume_signature(cfg)})
        logger.info("epoch %d/%d  %s  %.1fs  %.0f images/s", epoch + 1, epoch_count,
                    "  ".join(f"{name} {value:.4f}" for name, value in zip(LOSS_NAMES, losses)),
                    seconds, images_per_second)

        if (epoch + 1) % cfg.TRAIN.IMAGE_GRID_EVERY == 0 or epoch + 1 == epoch_count:
            _save_grids(trainer, grid_images, output_dir, epoch)

    history = trainer.history
    write_text(os.path.join(output_dir, "train_log.csv"), _history_csv(history))
    save_loss_curve(np.asarray(history)[:, :len(LOSS_NAMES)], LOSS_NAMES, os.path.join(output_dir, "loss_curve.png"))
    encoder_path, generator_path = model_files
    save_torch(encoder_path, trainer.encoder.state_dict())
    save_torch(generator_path, trainer.generator.state_dict())
    logger.info("Saved %s and %s", encoder_path, generator_path)
    return history


def _save_grids(trainer, grid_images, output_dir, epoch):
    """Save the reconstructions of the fixed images and the decoded fixed prior samples."""
    trainer.encoder.eval()
    trainer.generator.eval()
    with torch.no_grad():
        reconstructions = trainer.generator(trainer.encoder(grid_images))
        samples = trainer.generator(trainer.grid_noise.to(trainer.device))
    images_dir = os.path.join(output_dir, "images")
    # Each original is followed by its reconstruction: columns alternate original, reconstruction.
    pairs = torch.stack([grid_images, reconstructions], dim=1).flatten(0, 1)
    save_image_grid(pairs, os.path.join(images_dir, f"reconstruction_epoch_{epoch + 1:03d}.png"), columns=16)
    save_image_grid(samples, os.path.join(images_dir, f"samples_epoch_{epoch + 1:03d}.png"), columns=8)


def load_generator_and_encoder(cfg, model_files, device):
    """Load the final encoder and generator weights of a run, in evaluation mode."""
    encoder, generator, _, _ = build_networks(cfg)
    for network, path in zip((encoder, generator), model_files):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found; train the model first (the data set's Testing_train_*.py "
                                    f"driver or train_AAE.py) with the same config")
        try:
            network.load_state_dict(load_torch(path))
        except RuntimeError as error:
            raise ValueError(f"{path} does not fit the network of this config (MODEL section): {error}") from error
        network.to(device).eval()
    return encoder, generator
