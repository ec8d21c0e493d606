"""Figures: image grids, loss curves, fitted densities, score distributions and fold summaries.

Every figure is written as a PNG through ``save_figure`` (atomic), with the Agg backend so that
plotting works on machines without a display.
"""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
import torch  # noqa: E402
import torchvision.utils  # noqa: E402
from PIL import Image  # noqa: E402

from utils.fileio import atomic_write, save_figure  # noqa: E402


# Width and grey level of the strip between the two channels of a two-channel image, so that
# the frame and its difference do not run into each other.
CHANNEL_GAP_PIXELS = 2
CHANNEL_GAP_VALUE = 0.5


def channels_side_by_side(images):
    """Lay two-channel images (B, 2, H, W) out as greyscale (B, 1, H, 2W + gap), channel 0 on the left.

    Two channels (VIDEO.INPUT frames_and_differences or difference_pairs) have no colour
    mapping, so figures show them next to each other, CHANNEL_GAP_PIXELS apart in mid grey.
    Other images are returned unchanged. Accepts float torch tensors in [0, 1].
    """
    if images.shape[1] != 2:
        return images
    batch, _, height, _ = images.shape
    gap = torch.full((batch, 1, height, CHANNEL_GAP_PIXELS), CHANNEL_GAP_VALUE, dtype=images.dtype)
    return torch.cat([images[:, :1], gap.to(images.device), images[:, 1:]], dim=3)


def save_image_grid(images, path, columns=8):
    """Save a batch of images in [0, 1] (B, C, H, W) as one PNG grid (two channels side by side)."""
    images = channels_side_by_side(images.detach().float().cpu().clamp(0, 1))
    grid = torchvision.utils.make_grid(images, nrow=columns, padding=2)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    if array.shape[2] == 1:
        array = array[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    with atomic_write(path) as stream:
        stream.write(buffer.getvalue())


def save_loss_curve(losses, names, path):
    """Plot per-epoch training losses (epochs x losses) on one figure."""
    figure, axis = plt.subplots(figsize=(7, 4))
    epochs = np.arange(1, len(losses) + 1)
    for column, name in enumerate(names):
        axis.plot(epochs, losses[:, column], label=name, linewidth=1.5)
    axis.set_xlabel("epoch")
    axis.set_ylabel("mean loss")
    axis.set_title("Training losses")
    axis.grid(True, alpha=0.3)
    axis.legend()
    save_figure(figure, path)
    plt.close(figure)


def save_distance_pdf(stats, distances, path):
    """Plot the fitted histogram PDF of the reconstruction distance ||x - G(E(x))||."""
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.stairs(stats.counts, stats.bin_edges, fill=True, alpha=0.4, label="fitted histogram (training inliers)")
    axis.set_xlabel(r"reconstruction distance $\|x - G(E(x))\|$")
    axis.set_ylabel("probability density")
    axis.set_title("Reconstruction-distance PDF")
    if distances is not None and len(distances):
        axis.axvline(np.median(distances), color="black", linestyle="--", linewidth=1, label="median, test set")
    axis.grid(True, alpha=0.3)
    axis.legend()
    save_figure(figure, path)
    plt.close(figure)


def save_latent_pdfs(stats, latents, path):
    """Plot, per latent dimension, the training histogram and its fitted generalised Gaussian."""
    dimensions = latents.shape[1]
    columns = min(dimensions, 4)
    rows = -(-dimensions // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 2.2 * rows), squeeze=False)
    for dimension, axis in enumerate(axes.flat):
        if dimension >= dimensions:
            axis.axis("off")
            continue
        values = latents[:, dimension]
        axis.hist(values, bins=40, density=True, alpha=0.4)
        beta, loc, scale = stats.gennorm[:, dimension]
        grid = np.linspace(values.min(), values.max(), 200)
        axis.plot(grid, scipy.stats.gennorm.pdf(grid, beta, loc, scale), linewidth=1.5)
        axis.set_title(f"z{dimension}: beta {beta:.2f}", fontsize=9)
        axis.tick_params(labelsize=7)
    figure.suptitle("Latent PDFs of the training inliers with fitted generalised Gaussians")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def save_score_distributions(scores, is_inlier, path, title="Scores on the test fold"):
    """Plot histograms of log p(x) for inliers and outliers."""
    figure, axis = plt.subplots(figsize=(7, 4))
    low, high = np.percentile(scores, [0.5, 99.5])
    bins = np.linspace(low, high, 60)
    axis.hist(scores[is_inlier], bins=bins, density=True, alpha=0.5, label=f"inliers ({is_inlier.sum()})")
    axis.hist(scores[~is_inlier], bins=bins, density=True, alpha=0.5, label=f"outliers ({(~is_inlier).sum()})")
    axis.set_xlabel(r"score $\log p(x)$ (higher is more likely an inlier)")
    axis.set_ylabel("density")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend()
    save_figure(figure, path)
    plt.close(figure)


def save_fold_summary(records, class_names, path, samples_per_class=8, seed=0):
    """Draw class counts per fold (bar chart) and a grid of sample images per class."""
    folds_count = len(records)
    class_count = len(class_names)
    counts = np.stack([np.bincount(record["labels"], minlength=class_count) for record in records])

    figure = plt.figure(figsize=(max(8, class_count * 0.6), 4 + 0.9 * class_count))
    grid_spec = figure.add_gridspec(2, 1, height_ratios=[3, 0.9 * class_count])
    axis = figure.add_subplot(grid_spec[0])
    width = 0.8 / folds_count
    for fold in range(folds_count):
        axis.bar(np.arange(class_count) + fold * width, counts[fold], width=width, label=f"fold {fold}")
    axis.set_xticks(np.arange(class_count) + 0.4 - width / 2)
    axis.set_xticklabels(class_names, rotation=45 if class_count > 12 else 0, fontsize=8)
    axis.set_ylabel("images")
    axis.set_title("Images per class and fold")
    # Head room above the bars keeps the legend off them.
    axis.set_ylim(0, counts.max() * 1.3)
    axis.legend(fontsize=8, ncol=min(folds_count, 5), loc="upper right")

    rng = np.random.default_rng(seed)
    images = np.concatenate([record["images"] for record in records])
    labels = np.concatenate([record["labels"] for record in records])
    tiles = []
    for label in range(class_count):
        members = np.flatnonzero(labels == label)
        chosen = rng.choice(members, size=min(samples_per_class, len(members)), replace=False) if len(members) else []
        row = [images[index] for index in chosen]
        row += [np.zeros_like(images[0])] * (samples_per_class - len(row))
        tiles += row
    tensor = channels_side_by_side(torch.from_numpy(np.stack(tiles)).float() / 255.0)
    grid = torchvision.utils.make_grid(tensor, nrow=samples_per_class, padding=2, pad_value=1.0)
    image_axis = figure.add_subplot(grid_spec[1])
    image_axis.imshow(grid.permute(1, 2, 0).numpy().squeeze(), cmap="gray", vmin=0, vmax=1)
    image_axis.set_yticks([(grid.shape[1] / class_count) * (row + 0.5) for row in range(class_count)])
    image_axis.set_yticklabels(class_names, fontsize=8)
    image_axis.set_xticks([])
    image_axis.set_title(f"{samples_per_class} random images per class")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
