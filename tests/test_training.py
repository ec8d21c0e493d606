"""Training options: noisy fakes for the image discriminator, the learning-rate schedule, determinism."""

import os

import pytest
import torch

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
