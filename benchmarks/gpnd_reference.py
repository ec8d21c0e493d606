"""Reference implementation of the published GPND scoring approach, kept for comparison only.

It follows the structure of the authors' novelty_detector.py (podgorskiy/GPND, master branch).
Images go in batches of 1,024, and the encoder and decoder run on each batch. The encoder
Jacobian takes one ``backward()`` per latent dimension over the batch, with the networks'
parameters still requiring gradients. A Python loop per image then runs ``numpy.linalg.svd``,
``scipy.stats.gennorm.pdf`` followed by ``log``, and the histogram look-up ``r_pdf``.

The benchmarks time it against ``utils.scoring.score_images`` and the tests check that both give
the same scores. It is deliberately not optimised.
"""

import numpy as np
import scipy.special
import scipy.stats
import torch

REFERENCE_BATCH_SIZE = 1024
# The published code's density floor and the value it assigns when log p_Z is not finite.
PUBLISHED_DENSITY_FLOOR = 1e-308
PUBLISHED_NONFINITE_LOG_PZ = -1000.0


def r_pdf(x, bins, counts):
    """Histogram density look-up of the published code, with this project's edge convention.

    NOTE: the published code returns the floor for x exactly equal to the first or last edge.
    Here those values take the first or last bin, as ``utils.scoring`` does. Only training
    images can fall exactly on an edge.
    """
    if bins[0] <= x <= bins[-1]:
        index = min(np.digitize(x, bins) - 1, len(counts) - 1)
        return max(counts[index], PUBLISHED_DENSITY_FLOOR)
    if x < bins[0]:
        return max(counts[0] * x / bins[0], PUBLISHED_DENSITY_FLOOR)
    return PUBLISHED_DENSITY_FLOOR


def compute_jacobian(inputs, output):
    """Return (B, latent, D): one backward pass per latent dimension, parameter gradients included."""
    latent_size = output.shape[1]
    jacobian = torch.zeros(latent_size, *inputs.shape, device=inputs.device)
    grad_output = torch.zeros(*output.shape, device=inputs.device)
    for dimension in range(latent_size):
        if inputs.grad is not None:
            inputs.grad.zero_()
        grad_output.zero_()
        grad_output[:, dimension] = 1
        output.backward(grad_output, retain_graph=True)
        jacobian[dimension] = inputs.grad
    return torch.transpose(jacobian, dim0=0, dim1=1)


def reference_scores(encoder, generator, images, stats, mul, device, batch_size=REFERENCE_BATCH_SIZE):
    """Score uint8 images (N, C, H, W) the published way; returns float64 scores of length N."""
    channels, height, width = images.shape[1:]
    input_dimension = channels * height * width
    latent_size = stats.gennorm.shape[1]
    n = (input_dimension - latent_size) * mul
    log_c = scipy.special.gammaln(n / 2.0) - (n / 2.0) * np.log(2.0 * np.pi)
    beta, loc, scale = stats.gennorm

    results = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start:start + batch_size]).to(device).float() / 255.0
        x = x.view(-1, input_dimension).requires_grad_(True)
        z = encoder(x.view(-1, channels, height, width))
        recon_batch = generator(z)
        jacobian = compute_jacobian(x, z).cpu().numpy()
        z = z.detach().cpu().numpy()
        recon_batch = recon_batch.detach().cpu().numpy().reshape(len(z), -1)
        x = x.detach().cpu().numpy()
        encoder.zero_grad()
        generator.zero_grad()

        for i in range(x.shape[0]):
            _, singular_values, _ = np.linalg.svd(jacobian[i], full_matrices=False)
            log_d = -np.sum(np.log(np.abs(singular_values)))
            p = scipy.stats.gennorm.pdf(z[i], beta, loc, scale)
            log_pz = np.sum(np.log(p))
            if not np.isfinite(log_pz):
                log_pz = PUBLISHED_NONFINITE_LOG_PZ
            distance = np.linalg.norm(x[i] - recon_batch[i])
            log_pe = log_c - (n - 1) * np.log(distance) + np.log(r_pdf(distance, stats.bin_edges, stats.counts))
            results.append(log_d + log_pz + log_pe)
    return np.asarray(results, dtype=np.float64)
