"""Training options: noisy fakes, the image adversary switch, separable networks, the learning-rate schedule, determinism."""

import os

import pytest
import torch
from torch import nn

from net import build_networks, describe_networks
from utils.config import ConfigError
from utils.runtime import configure_determinism
from utils.training import Trainer


def make_trainer(tiny_cfg, **train):
    return Trainer(tiny_cfg(TRAIN=train), torch.device("cpu"), seed=0)


def test_discriminator_sees_only_decoder_outputs_by_default(tiny_cfg):
    trainer = make_trainer(tiny_cfg)
    x = torch.rand(6, 1, 32, 32)
    fakes = trainer.discriminator_fakes(x)
    assert len(fakes) == 1
    assert fakes[0].shape == (6, 1, 32, 32)


def test_noisy_fakes_added_when_enabled(tiny_cfg):
    trainer = make_trainer(tiny_cfg, NOISY_FAKES=True, NOISE_TYPE="gaussian", NOISE_LEVEL=0.1)
    x = torch.full((6, 1, 32, 32), 0.5)
    fakes = trainer.discriminator_fakes(x)
    # Decoder outputs and noisy images come as separate batches, each normalised on its own.
    assert len(fakes) == 2
    assert fakes[0].shape == (6, 1, 32, 32)
    noisy = fakes[1]
    assert noisy.shape == (6, 1, 32, 32)
    assert not torch.equal(noisy, x)
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.1)


def test_salt_pepper_noise_share(tiny_cfg):
    trainer = make_trainer(tiny_cfg, NOISY_FAKES=True, NOISE_TYPE="salt_pepper", NOISE_LEVEL=0.3)
    x = torch.full((20, 1, 32, 32), 0.5)
    noisy = trainer.noisy_copy(x)
    changed = noisy != 0.5
    assert changed.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert set(noisy[changed].unique().tolist()) == {0.0, 1.0}


def test_noisy_fakes_change_training(tiny_cfg):
    x = torch.rand(8, 1, 32, 32)
    plain = make_trainer(tiny_cfg).train_step(x)
    noisy = make_trainer(tiny_cfg, NOISY_FAKES=True).train_step(x)
    assert plain[0].item() != noisy[0].item()


def test_image_adversary_off_leaves_discriminator_untouched(tiny_cfg):
    x = torch.rand(8, 1, 32, 32)
    trainer = make_trainer(tiny_cfg, IMAGE_ADVERSARIAL=False)
    before = [parameter.clone() for parameter in trainer.discriminator.parameters()]
    losses = trainer.train_step(x)
    assert losses[0].item() == 0.0
    assert losses[1].item() == 0.0
    assert all(torch.equal(old, new) for old, new in zip(before, trainer.discriminator.parameters()))
    # Adam keeps per-parameter state only after a step, so empty states mean updates 1 and 2 never ran.
    assert not trainer.optimizers["D"].state
    assert not trainer.optimizers["G"].state
    # The encoder and decoder still learn from the reconstruction and the latent adversary.
    assert losses[3].item() > 0.0
    assert losses[4].item() > 0.0

    with_adversary = make_trainer(tiny_cfg)
    before = [parameter.clone() for parameter in with_adversary.discriminator.parameters()]
    with_adversary.train_step(x)
    assert with_adversary.optimizers["G"].state
    assert not all(torch.equal(old, new) for old, new in zip(before, with_adversary.discriminator.parameters()))


def test_noisy_fakes_need_the_image_adversary(tiny_cfg):
    with pytest.raises(ConfigError, match="TRAIN.NOISY_FAKES"):
        tiny_cfg(TRAIN={"IMAGE_ADVERSARIAL": False, "NOISY_FAKES": True})


def test_separable_networks(tiny_cfg):
    dense = tiny_cfg(MODEL={"WIDTH": 32})
    separable = tiny_cfg(MODEL={"WIDTH": 32, "SEPARABLE": True})

    def grouped(networks):
        return [layer for network in networks for layer in network.modules()
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) and layer.groups > 1]

    assert not grouped(build_networks(dense))
    encoder, generator, discriminator, _ = build_networks(separable)
    # At 32x32 the encoder, decoder and discriminator each have two inner stages. The first
    # encoder stage reads the image and stays dense.
    assert len(grouped([encoder])) == 2
    assert len(grouped([generator])) == 2
    assert len(grouped([discriminator])) == 2
    assert encoder.features.layers[0].groups == 1

    x = torch.rand(4, 1, 32, 32)
    assert generator(encoder(x)).shape == x.shape
    assert discriminator(x).shape == (4,)
    for (name, dense_parameters, dense_macs), (_, parameters, macs) in zip(describe_networks(dense)[:3],
                                                                           describe_networks(separable)[:3]):
        assert parameters < dense_parameters / 3, name
        assert macs < dense_macs / 5, name


def test_learning_rate_divided_every_decay_period(tiny_cfg):
    trainer = make_trainer(tiny_cfg, BASE_LEARNING_RATE=0.002, LR_DECAY_EPOCHS=30, LR_DECAY_FACTOR=4.0)
    assert trainer.learning_rate(0) == pytest.approx(0.002)
    assert trainer.learning_rate(28) == pytest.approx(0.002)
    # GPND divides at the start of epoch 30 (0-based 29), when (epoch + 1) % 30 == 0.
    assert trainer.learning_rate(29) == pytest.approx(0.0005)
    assert trainer.learning_rate(59) == pytest.approx(0.002 / 16)


@pytest.fixture
def restore_determinism(monkeypatch):
    """Put torch's global determinism flags back after a test that changes them."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_determinism_set_for_cuda_only(tiny_cfg, restore_determinism):
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = False
    torch.use_deterministic_algorithms(False)

    # The flags are global, so setting them needs no GPU; a CPU run and a disabled switch change nothing.
    configure_determinism(tiny_cfg(), torch.device("cpu"))
    configure_determinism(tiny_cfg(RUN={"DETERMINISTIC": False}), torch.device("cuda"))
    assert torch.backends.cudnn.benchmark
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ

    configure_determinism(tiny_cfg(), torch.device("cuda"))
    assert not torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.deterministic
    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
