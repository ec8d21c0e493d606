"""The fast batched score against the published per-image approach and exact computations."""

import numpy as np
import pytest
import scipy.stats
import torch

from benchmarks.gpnd_reference import reference_scores
from net import build_networks
from utils.scoring import (LOG_DENSITY_FLOOR, InlierStatistics, encoder_jacobian, fit_statistics,
                           jacobian_log_term, latent_log_density, log_distance_density, score_images)

# Largest allowed difference between fast and reference scores, as a fraction of the score range.
SCORE_TOLERANCE = 1e-3


def untrained_model(cfg, seed=0):
    torch.manual_seed(seed)
    encoder, generator, _, _ = build_networks(cfg)
    return encoder.eval(), generator.eval()


def random_images(count, seed=0, channels=1, size=32):
    return np.random.default_rng(seed).integers(0, 256, size=(count, channels, size, size), dtype=np.uint8)


def test_jacobian_matches_autograd(tiny_cfg):
    encoder, _ = untrained_model(tiny_cfg())
    x = torch.rand(3, 1, 32, 32)
    jacobian, z = encoder_jacobian(encoder, x)
    for index in range(3):
        exact = torch.autograd.functional.jacobian(lambda image: encoder(image[None])[0], x[index])
        torch.testing.assert_close(jacobian[index], exact.flatten(1))
    torch.testing.assert_close(z, encoder(x).detach())


def test_log_det_equals_singular_value_sum():
    jacobian = torch.randn(5, 4, 100)
    singular_values = np.linalg.svd(jacobian.numpy().astype(np.float64), compute_uv=False)
    expected = -np.log(singular_values).sum(axis=1)
    np.testing.assert_allclose(jacobian_log_term(jacobian).numpy(), expected, rtol=1e-10)


def test_distance_density_edges():
    stats = InlierStatistics(counts=[0.5, 0.0, 1.5], bin_edges=[1.0, 2.0, 3.0, 4.0], gennorm=np.ones((3, 1)))
    distances = np.array([0.5, 1.0, 1.5, 2.5, 4.0, 5.0])
    expected = [np.log(0.5 * 0.5), np.log(0.5), np.log(0.5), LOG_DENSITY_FLOOR, np.log(1.5), LOG_DENSITY_FLOOR]
    np.testing.assert_allclose(log_distance_density(distances, stats), expected)


def test_latent_density_uses_logpdf_and_floor():
    stats = InlierStatistics([1.0], [0.0, 1.0], gennorm=np.array([[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]]))
    latents = np.array([[0.5, -1.0], [1e200, 0.0]])
    expected_first = scipy.stats.gennorm.logpdf([0.5, -1.0], 2.0, 0.0, 1.0).sum()
    result = latent_log_density(latents, stats)
    assert result[0] == pytest.approx(expected_first)
    assert np.isfinite(result[1])
    assert result[1] == pytest.approx(LOG_DENSITY_FLOOR + scipy.stats.gennorm.logpdf(0.0, 2.0))


def fitted(cfg, encoder, generator):
    train = random_images(200, seed=1)
    stats, _, _ = fit_statistics(encoder, generator, train, cfg.TEST.HISTOGRAM_BINS, 64, torch.device("cpu"))
    return stats


def test_fast_score_matches_reference(tiny_cfg):
    cfg = tiny_cfg()
    encoder, generator = untrained_model(cfg)
    stats = fitted(cfg, encoder, generator)
    images = random_images(150, seed=2)

    fast = score_images(encoder, generator, images, stats, cfg, torch.device("cpu"))["score"]
    reference = reference_scores(encoder, generator, images, stats, cfg.TEST.MUL, torch.device("cpu"), batch_size=64)
    score_range = reference.max() - reference.min()
    assert np.all(np.isfinite(fast))
    assert np.max(np.abs(fast - reference)) <= SCORE_TOLERANCE * score_range


def test_score_alone_equals_score_in_batch(tiny_cfg):
    cfg = tiny_cfg()
    encoder, generator = untrained_model(cfg)
    stats = fitted(cfg, encoder, generator)
    images = random_images(70, seed=3)
    in_batch = score_images(encoder, generator, images, stats, cfg, torch.device("cpu"))["score"]
    alone = score_images(encoder, generator, images[41:42], stats, cfg, torch.device("cpu"))["score"]
    reference_alone = reference_scores(encoder, generator, images[41:42], stats, cfg.TEST.MUL, torch.device("cpu"))
    assert alone[0] == pytest.approx(in_batch[41], rel=1e-9, abs=1e-6)
    assert alone[0] == pytest.approx(reference_alone[0], rel=1e-4)


def test_score_terms_switch_off(tiny_cfg):
    cfg = tiny_cfg(TEST={"USE_JACOBIAN_TERM": False, "USE_LATENT_TERM": False})
    encoder, generator = untrained_model(cfg)
    stats = fitted(cfg, encoder, generator)
    result = score_images(encoder, generator, random_images(20), stats, cfg, torch.device("cpu"))
    assert np.all(result["jacobian"] == 0)
    assert np.all(result["latent"] == 0)
    np.testing.assert_array_equal(result["score"], result["reconstruction"])


def test_mul_scales_reconstruction_term(tiny_cfg):
    cfg = tiny_cfg()
    encoder, generator = untrained_model(cfg)
    stats = fitted(cfg, encoder, generator)
    images = random_images(20)
    low = score_images(encoder, generator, images, stats, cfg, torch.device("cpu"), mul=0.1)
    high = score_images(encoder, generator, images, stats, cfg, torch.device("cpu"), mul=1.0)
    np.testing.assert_array_equal(low["latent"], high["latent"])
    assert not np.allclose(low["reconstruction"], high["reconstruction"])


def test_scoring_leaves_parameters_trainable(tiny_cfg):
    cfg = tiny_cfg()
    encoder, generator = untrained_model(cfg)
    stats = fitted(cfg, encoder, generator)
    score_images(encoder, generator, random_images(10), stats, cfg, torch.device("cpu"))
    assert all(parameter.requires_grad for parameter in encoder.parameters())
    assert all(parameter.grad is None for parameter in encoder.parameters())


def test_folded_encoder_computes_same_function(tiny_cfg):
    from utils.scoring import fold_batchnorm

    cfg = tiny_cfg()
    encoder, _ = untrained_model(cfg)
    # Non-trivial running statistics, as after training.
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    folded = fold_batchnorm(encoder)
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in folded.modules())
    x = torch.rand(5, 1, 32, 32)
    torch.testing.assert_close(folded(x), encoder(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(encoder_jacobian(folded, x)[0], encoder_jacobian(encoder, x)[0], rtol=1e-4, atol=1e-6)
