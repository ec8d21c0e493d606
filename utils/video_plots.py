"""Figures of video anomaly detection: the score of each test clip over time and an animated GIF.

Scores are log p(x), high for normal frames. Ground-truth anomalous frames are shaded. Files are
written atomically, with the Agg backend so that plotting works without a display.
"""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from utils.fileio import atomic_write, save_figure  # noqa: E402

ANOMALY_COLOUR = "tab:red"
ANOMALY_ALPHA = 0.15
# Each GIF frame shows for this long: 5 GIF frames per second, slow enough to follow the curve.
GIF_FRAME_MILLISECONDS = 200
# Figure size and resolution of the animation, about 650x190 pixels, to keep the GIF small.
ANIMATION_SIZE_INCHES = (9.0, 2.6)
# Frames taller than wide get a figure this many times as tall, so that they are not shrunk to
# half the size. A two-channel mosaic is one: it stacks channel 0 above channel 1.
TALL_FRAME_HEIGHT_FACTOR = 2.0
ANIMATION_DPI = 72
# Margin above and below the score range in the animation, as a fraction of that range.
SCORE_AXIS_MARGIN = 0.05


def patch_mosaic(patches, grid):
    """Tile one frame's patches (P, C, S, S) back into a frame image, float in [0, 1].

    Returns (rows * S, columns * S) for one channel and (rows * S, columns * S, 3) for three.
    Two channels (a frame and its difference, or two differences) give (2 * rows * S,
    columns * S), channel 0 above channel 1. Patches are row-major, as cut by ``utils.ucsd.patch_boxes``.
    """
    patches = np.asarray(patches)
    if patches.dtype == np.uint8:
        patches = patches.astype(np.float32) / 255.0
    rows, columns = grid
    count, channels, size, _ = patches.shape
    if count != rows * columns:
        raise ValueError(f"{count} patches do not fill a {rows}x{columns} grid")
    # (rows, columns, C, S, S) -> (rows, S, columns, S, C) -> (rows * S, columns * S, C)
    mosaic = patches.reshape(rows, columns, channels, size, size).transpose(0, 3, 1, 4, 2)
    mosaic = mosaic.reshape(rows * size, columns * size, channels)
    if channels == 2:
        return np.concatenate([mosaic[:, :, 0], mosaic[:, :, 1]], axis=0)
    return mosaic[:, :, 0] if channels == 1 else mosaic


def _anomalous_runs(frames, is_anomalous):
    """Return (first frame, last frame) of each run of consecutive anomalous frames."""
    runs = []
    start = None
    for index, anomalous in enumerate(is_anomalous):
        if anomalous and start is None:
            start = index
        if start is not None and (not anomalous or index == len(is_anomalous) - 1):
            end = index if anomalous else index - 1
            runs.append((frames[start], frames[end]))
            start = None
    return runs


def _shade_anomalies(axis, frames, is_anomalous):
    for number, (first, last) in enumerate(_anomalous_runs(frames, is_anomalous)):
        axis.axvspan(first - 0.5, last + 0.5, color=ANOMALY_COLOUR, alpha=ANOMALY_ALPHA,
                     label="anomalous (ground truth)" if number == 0 else None)


def save_clip_score_plot(frames, scores, is_anomalous, path, title, smoothed=None):
    """Plot one clip's frame scores over time with the ground-truth anomalous frames shaded."""
    frames = np.asarray(frames)
    figure, axis = plt.subplots(figsize=(8, 3))
    _shade_anomalies(axis, frames, np.asarray(is_anomalous, dtype=bool))
    axis.plot(frames, scores, linewidth=1.0, color="tab:blue", label="score")
    if smoothed is not None:
        axis.plot(frames, smoothed, linewidth=1.5, color="black", label="smoothed score")
    axis.set_xlim(frames[0] - 0.5, frames[-1] + 0.5)
    axis.set_xlabel("frame")
    axis.set_ylabel(r"score $\log p(x)$ (high = normal)")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, loc="lower left")
    save_figure(figure, path)
    plt.close(figure)


def save_clip_animation(inputs, reconstructions, frames, scores, is_anomalous, path, step, title):
    """Write an animated GIF of one clip: input frame, reconstruction and the score curve so far.

    ``inputs`` and ``reconstructions`` are per-frame images in [0, 1], (F, H, W) or (F, H, W, 3),
    at the network's input resolution (see ``patch_mosaic``). Every ``step``-th frame becomes a GIF frame.
    """
    frames = np.asarray(frames)
    scores = np.asarray(scores, dtype=np.float64)
    width_inches, height_inches = ANIMATION_SIZE_INCHES
    if inputs[0].shape[0] > inputs[0].shape[1]:
        height_inches *= TALL_FRAME_HEIGHT_FACTOR
    figure, axes = plt.subplots(1, 3, figsize=(width_inches, height_inches), dpi=ANIMATION_DPI,
                                gridspec_kw={"width_ratios": [1, 1, 2]})
    input_artist = axes[0].imshow(inputs[0], cmap="gray", vmin=0, vmax=1)
    reconstruction_artist = axes[1].imshow(reconstructions[0], cmap="gray", vmin=0, vmax=1)
    for axis, name in [(axes[0], "input"), (axes[1], "reconstruction")]:
        axis.set_title(name, fontsize=9)
        axis.axis("off")

    curve_axis = axes[2]
    _shade_anomalies(curve_axis, frames, np.asarray(is_anomalous, dtype=bool))
    low, high = scores.min(), scores.max()
    margin = SCORE_AXIS_MARGIN * (high - low) if high > low else 1.0
    curve_axis.set_xlim(frames[0] - 0.5, frames[-1] + 0.5)
    curve_axis.set_ylim(low - margin, high + margin)
    curve_axis.set_xlabel("frame", fontsize=8)
    curve_axis.set_ylabel("log p(x)", fontsize=8)
    curve_axis.tick_params(labelsize=7)
    (curve,) = curve_axis.plot([], [], color="tab:blue", linewidth=1.0)
    marker = curve_axis.axvline(frames[0], color="black", linewidth=0.8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()

    gif_frames = []
    for index in range(0, len(frames), step):
        input_artist.set_data(inputs[index])
        reconstruction_artist.set_data(reconstructions[index])
        curve.set_data(frames[:index + 1], scores[:index + 1])
        marker.set_xdata([frames[index], frames[index]])
        figure.canvas.draw()
        rgb = np.asarray(figure.canvas.buffer_rgba())[:, :, :3]
        gif_frames.append(Image.fromarray(np.ascontiguousarray(rgb)).convert("P", palette=Image.ADAPTIVE))
    plt.close(figure)

    buffer = io.BytesIO()
    gif_frames[0].save(buffer, format="GIF", save_all=True, append_images=gif_frames[1:],
                       duration=GIF_FRAME_MILLISECONDS, loop=0)
    with atomic_write(path) as stream:
        stream.write(buffer.getvalue())
    return len(gif_frames)
