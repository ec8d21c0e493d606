"""Tests of the UCSD Ped2 reader, the frame-level video metrics and the video pipeline.

Every file is written under pytest's tmp_path. The real-data test runs only when the
environment variable GPND_SHARED_DATASETS names a folder that contains ucsd-ped2/UCSDped2.
"""

import csv
import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from evaluation import MetricError
from utils.config import ConfigError, load_config
from utils.plots import CHANNEL_GAP_PIXELS, channels_side_by_side, save_fold_summary
from utils.folds import FoldError, load_protocol, read_fold, write_single_fold
from utils.partition import partition_main
from utils.training import SettingsMismatchError
from utils.ucsd import (TEST_FOLD, TRAIN_FOLD, UcsdError, check_frame_numbers, frame_differences,
                        cut_patches, list_numbered_images, load_ucsd, load_ucsd_for_config, parse_ground_truth,
                        patch_boxes, preprocessing_settings, soften_differences, write_ucsd_folds)
from utils import video
from utils.video_metrics import (equal_error_rate, evaluate_variants, frame_level_metrics,
                                 frame_scores_from_patches, normalise_per_clip, smooth_per_clip)
from utils.video_plots import patch_mosaic

UCSD_CONFIG = "configs/ucsd.yaml"
FRAME_SIZE = 32
FRAMES_PER_CLIP = 12
# Pixel value of the synthetic anomaly; the synthetic background stays below NORMAL_MAX.
ANOMALY_VALUE = 255
NORMAL_MAX = 150
ANOMALY_BOX = (4, 12, 20, 28)  # top, bottom, left, right
# Ground truth of the synthetic test clips: one range in clip 1, two ranges in clip 2.
SYNTHETIC_GROUND_TRUTH = {1: [(5, 9)], 2: [(2, 3), (8, 12)]}


# ---------------------------------------------------------------------------------------------
# Synthetic data in the official layout


def synthetic_frame(number, anomalous):
    """Return a 32x32 frame: a grey gradient, a dark walker moving right and, if anomalous, a bright square."""
    _, columns = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE]
    frame = 60 + 80 * columns / FRAME_SIZE
    walker = (2 * number) % (FRAME_SIZE - 4)
    frame[18:28, walker:walker + 3] = 30
    if anomalous:
        top, bottom, left, right = ANOMALY_BOX
        frame[top:bottom, left:right] = ANOMALY_VALUE
    return frame.astype(np.uint8)


def ground_truth_text(entries):
    lines = ["TestVideoFile = {};"]
    for clip in sorted(entries):
        ranges = ", ".join(f"{first}:{last}" for first, last in entries[clip])
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{ranges}];")
    return "\n".join(lines) + "\n"


def write_layout(root, train_clips=2, ground_truth=None, test_clips=2, masks=True):
    """Write UCSDped2/Train and UCSDped2/Test as unpadded .tif frames (1.tif ... 12.tif).

    Unpadded names sort as 1, 10, 11, 12, 2 by string, so a reader that ignores the numeric
    order puts the anomalous frames in the wrong place. Returns the UCSDped2 folder.
    """
    ground_truth = SYNTHETIC_GROUND_TRUTH if ground_truth is None else ground_truth
    source = root / "UCSDped2"
    for clip in range(1, train_clips + 1):
        folder = source / "Train" / f"Train{clip:03d}"
        folder.mkdir(parents=True)
        for number in range(1, FRAMES_PER_CLIP + 1):
            Image.fromarray(synthetic_frame(number, False)).save(folder / f"{number}.tif")
        (folder / "Thumbs.db").write_bytes(b"not an image")

    for clip in range(1, test_clips + 1):
        folder = source / "Test" / f"Test{clip:03d}"
        folder.mkdir(parents=True)
        anomalous = np.zeros(FRAMES_PER_CLIP + 1, dtype=bool)
        for first, last in SYNTHETIC_GROUND_TRUTH.get(clip, []):
            anomalous[first:last + 1] = True
        for number in range(1, FRAMES_PER_CLIP + 1):
            Image.fromarray(synthetic_frame(number, anomalous[number])).save(folder / f"{number}.tif")
        (folder / "._1.tif").write_bytes(b"AppleDouble metadata")
        if masks:
            mask_folder = source / "Test" / f"Test{clip:03d}_gt"
            mask_folder.mkdir()
            for number in range(1, FRAMES_PER_CLIP + 1):
                mask = np.zeros((FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
                if anomalous[number]:
                    top, bottom, left, right = ANOMALY_BOX
                    mask[top:bottom, left:right] = 255
                # Clip 1 names its masks like Test006_gt of the real data, clip 2 like the others.
                name = f"frame{number:03d}.png" if clip == 1 else f"{number:03d}.bmp"
                Image.fromarray(mask).save(mask_folder / name)
    (source / "Test" / "UCSDped2.m").write_text(ground_truth_text(ground_truth))
    return source


# Frame records instead of the differences of configs/ucsd.yaml, whose threshold, blur and gain
# apply to differences only.
FRAME_INPUT = ["VIDEO.INPUT=frames", "VIDEO.DIFFERENCE_THRESHOLD=0", "VIDEO.DIFFERENCE_BLUR=0",
               "VIDEO.DIFFERENCE_GAIN=1"]
# Differences without the threshold, blur and gain of configs/ucsd.yaml, as folds were made
# before those settings.
SHARP_DIFFERENCES = ["VIDEO.DIFFERENCE_THRESHOLD=0", "VIDEO.DIFFERENCE_BLUR=0", "VIDEO.DIFFERENCE_GAIN=1"]


def tiny_overrides(tmp_path, source, grid=(1, 1)):
    """Return config overrides for a seconds-long run on the synthetic data, all paths in tmp_path."""
    return [f"DATASET.SOURCE={source}", f"DATASET.PATH={tmp_path / 'folds'}",
            f"RUN.OUTPUT_DIR={tmp_path / 'results'}", f"VIDEO.PATCH_GRID=[{grid[0]}, {grid[1]}]",
            "MODEL.INPUT_IMAGE_SIZE=32", "MODEL.WIDTH=8", "TRAIN.EPOCH_COUNT=1", "TRAIN.BATCH_SIZE=8",
            "TRAIN.IMAGE_GRID_EVERY=1", "TEST.BATCH_SIZE=64", "TEST.HISTOGRAM_BINS=5",
            "TEST.USE_JACOBIAN_TERM=true", "TEST.MUL=0.2",
            "VIDEO.SMOOTHING_SIGMA=1.0", "VIDEO.ANIMATION_CLIP=2", "VIDEO.ANIMATION_FRAME_STEP=2",
            "RUN.DEVICE=cpu", "RUN.PROGRESS_BAR=false", "RUN.THREADS=1"]


# ---------------------------------------------------------------------------------------------
# Ground-truth parser


def test_ground_truth_single_range():
    text = "TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [61:180];\n"
    assert parse_ground_truth(text) == {1: [(61, 180)]}


def test_ground_truth_multiple_ranges():
    text = ("TestVideoFile{end+1}.gt_frame = [1:10, 50:60];\n"
            "TestVideoFile{end+1}.gt_frame = [1:10 50 : 60];\n"
            "TestVideoFile{end+1}.gt_frame = [7];\n"
            "\n"
            "% a comment line\n"
            "TestVideoFile{5}.gt_frame = [3:4]; % explicit index\n"
            "TestVideoFile{end+1}.gt_frame = [];\n")
    entries = parse_ground_truth(text)
    assert entries[1] == [(1, 10), (50, 60)]
    assert entries[2] == [(1, 10), (50, 60)]
    assert entries[3] == [(7, 7)]
    assert entries[5] == [(3, 4)]
    # `end+1` after {5} appends clip 6, as MATLAB does.
    assert entries[6] == []
    assert sorted(entries) == [1, 2, 3, 5, 6]


def test_ground_truth_explicit_indices():
    text = "TestVideoFile{1}.gt_frame = [61:180];\nTestVideoFile{2}.gt_frame = [95:180];\n"
    assert parse_ground_truth(text) == {1: [(61, 180)], 2: [(95, 180)]}


def test_ground_truth_real_ped2_lines():
    ranges = [(61, 180), (95, 180), (1, 146), (31, 180), (1, 129), (1, 159),
              (46, 180), (1, 180), (1, 120), (1, 150), (1, 180), (88, 180)]
    text = "TestVideoFile = {};\n" + "".join(f"TestVideoFile{{end+1}}.gt_frame = [{first}:{last}];\n"
                                             for first, last in ranges)
    entries = parse_ground_truth(text)
    assert sorted(entries) == list(range(1, 13))
    assert [entries[clip][0] for clip in range(1, 13)] == ranges


@pytest.mark.parametrize("line, message", [
    ("TestVideoFile{end+1}.gt_frame = [61-180];", "invalid frame range '61-180'"),
    ("TestVideoFile{end+1}.gt_frame = [1:2:10];", "invalid frame range '1:2:10'"),
    ("TestVideoFile{end+1}.gt_frame = [0:5];", "frames are numbered from 1"),
    ("TestVideoFile{end+1}.gt_frame = [10:5];", "must not come after the last"),
    ("TestVideoFile{end+1}.gt_frame = 61:180;", "cannot parse"),
    ("TestVideoFile{end+1}.gt_frames = [61:180];", "cannot parse"),
    ("TestVideoFile{0}.gt_frame = [1:5];", "indices start at 1"),
    ("TestVideoFile{1}.gt_frame = [1:5];", "clip 1 already has"),
    ("gt = [1:5];", "cannot parse"),
])
def test_ground_truth_malformed_line(line, message):
    text = "TestVideoFile{end+1}.gt_frame = [1:3];\n" + line + "\n"
    with pytest.raises(UcsdError, match="line 2") as raised:
        parse_ground_truth(text, "UCSDped2.m")
    assert message in str(raised.value)
    assert "UCSDped2.m" in str(raised.value)


def test_ground_truth_empty_file():
    with pytest.raises(UcsdError, match="no ground-truth entries"):
        parse_ground_truth("TestVideoFile = {};\n")


# ---------------------------------------------------------------------------------------------
# Frame files and clip consistency


def test_frames_numeric_order(tmp_path):
    for name in ["10.tif", "2.tif", "1.tif", "Thumbs.db", "._3.tif", "notes.txt", "3.TIF"]:
        (tmp_path / name).write_bytes(b"")
    numbers = [number for number, _ in list_numbered_images(tmp_path)]
    assert numbers == [1, 2, 3, 10]


def test_frames_prefixed_names(tmp_path):
    for number in [1, 2, 10]:
        (tmp_path / f"frame{number:03d}.png").write_bytes(b"")
    paths = [os.path.basename(path) for _, path in list_numbered_images(tmp_path)]
    assert paths == ["frame001.png", "frame002.png", "frame010.png"]


def test_frames_duplicate_number(tmp_path):
    (tmp_path / "001.jpg").write_bytes(b"")
    (tmp_path / "1.tif").write_bytes(b"")
    with pytest.raises(UcsdError, match="both have frame number 1"):
        list_numbered_images(tmp_path)


def test_frames_gap_in_numbers():
    with pytest.raises(UcsdError, match="without gaps"):
        check_frame_numbers([1, 2, 4], "Test001")
    with pytest.raises(UcsdError, match="without gaps"):
        check_frame_numbers([0, 1, 2], "Test001")
    check_frame_numbers([1, 2, 3], "Test001")


def test_clip_without_ground_truth(tmp_path):
    source = write_layout(tmp_path, ground_truth={1: [(5, 9)]})
    with pytest.raises(UcsdError, match="Test002: no ground-truth entry"):
        load_ucsd(str(source), 1, FRAME_SIZE, [1, 1])


def test_ground_truth_without_clip(tmp_path):
    entries = dict(SYNTHETIC_GROUND_TRUTH)
    entries[3] = [(1, 4)]
    source = write_layout(tmp_path, ground_truth=entries)
    with pytest.raises(UcsdError, match=r"entries for clips \[3\] have no Test folder"):
        load_ucsd(str(source), 1, FRAME_SIZE, [1, 1])


def test_ground_truth_range_outside_clip(tmp_path):
    source = write_layout(tmp_path, ground_truth={1: [(5, 9)], 2: [(8, 13)]})
    with pytest.raises(UcsdError, match="Test002: ground-truth range 8:13") as raised:
        load_ucsd(str(source), 1, FRAME_SIZE, [1, 1])
    assert "12 frames" in str(raised.value)


def test_mask_count_mismatch(tmp_path):
    source = write_layout(tmp_path)
    os.remove(source / "Test" / "Test002_gt" / "012.bmp")
    with pytest.raises(UcsdError, match="11 masks for a clip of 12 frames"):
        load_ucsd(str(source), 1, FRAME_SIZE, [1, 1])


def test_missing_source_folder(tmp_path):
    with pytest.raises(UcsdError, match="Train not found"):
        load_ucsd(str(tmp_path), 1, FRAME_SIZE, [1, 1])
    with pytest.raises(UcsdError, match="DATASET.SOURCE is empty"):
        load_ucsd("", 1, FRAME_SIZE, [1, 1])


def test_load_ucsd_labels_follow_frame_numbers(tmp_path):
    source = write_layout(tmp_path)
    loaded = load_ucsd(str(source), 1, FRAME_SIZE, [1, 1])
    images, labels, extras = loaded["test"]
    assert len(images) == 2 * FRAMES_PER_CLIP
    assert extras["clip"].tolist() == [1] * 12 + [2] * 12
    assert extras["frame"].tolist() == list(range(1, 13)) * 2
    expected = np.zeros(24, dtype=np.int64)
    expected[4:9] = 1            # clip 1, frames 5..9
    expected[12 + 1:12 + 3] = 1  # clip 2, frames 2..3
    expected[12 + 7:24] = 1      # clip 2, frames 8..12
    assert labels.tolist() == expected.tolist()
    # The bright square is in exactly the frames labelled anomalous, so frames are in numeric order.
    brightest = images.reshape(len(images), -1).max(axis=1)
    assert np.all(brightest[labels == 1] == ANOMALY_VALUE)
    assert np.all(brightest[labels == 0] < NORMAL_MAX)
    assert np.array_equal(extras["mask_pixels"] > 0, labels == 1)

    train_images, train_labels, train_extras = loaded["train"]
    assert len(train_images) == 2 * FRAMES_PER_CLIP
    assert not train_labels.any()
    assert np.all(train_extras["mask_pixels"] == -1)


def test_load_ucsd_patch_grid(tmp_path):
    source = write_layout(tmp_path)
    images, labels, extras = load_ucsd(str(source), 1, FRAME_SIZE, [2, 2])["test"]
    assert images.shape == (2 * FRAMES_PER_CLIP * 4, 1, FRAME_SIZE, FRAME_SIZE)
    assert extras["patch"][:8].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert extras["frame"][:8].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    # The square (rows 4..11, columns 20..27) lies in the top-right patch (index 1) only.
    anomalous_frame = np.flatnonzero((extras["clip"] == 1) & (extras["frame"] == 5))
    assert extras["mask_pixels"][anomalous_frame].tolist() == [0, 64, 0, 0]
    assert labels[anomalous_frame].tolist() == [1, 1, 1, 1]


def test_frame_differences_hand_case():
    frames = [Image.fromarray(np.array([[10, 200]], dtype=np.uint8)),
              Image.fromarray(np.array([[30, 150]], dtype=np.uint8)),
              Image.fromarray(np.array([[30, 255]], dtype=np.uint8))]
    differences = [np.asarray(frame).tolist() for frame in frame_differences(frames)]
    # Frame 1 takes frame 2's difference; the rest differ from their predecessor, without wrapping.
    assert differences == [[[20, 50]], [[20, 50]], [[0, 105]]]
    assert np.asarray(frame_differences(frames[:1])[0]).tolist() == [[0, 0]]


def test_frame_differences_threshold():
    frames = [Image.fromarray(np.array([[10, 200, 0]], dtype=np.uint8)),
              Image.fromarray(np.array([[30, 150, 40]], dtype=np.uint8)),
              Image.fromarray(np.array([[30, 255, 81]], dtype=np.uint8))]
    # Differences [20, 50, 40] and [0, 105, 41]: above 40 a pixel moves (255), at 40 it does not.
    masks = [np.asarray(frame).tolist() for frame in frame_differences(frames, threshold=40)]
    assert masks == [[[0, 255, 0]], [[0, 255, 0]], [[0, 255, 255]]]
    assert all(frame.mode == "L" for frame in frame_differences(frames, threshold=40))


def test_load_ucsd_differences(tmp_path):
    source = write_layout(tmp_path)
    frames = load_ucsd(str(source), 1, FRAME_SIZE, [1, 1])["test"]
    differences = load_ucsd(str(source), 1, FRAME_SIZE, [1, 1], "differences")["test"]
    images = frames[0].astype(np.int16)
    expected = np.abs(images[1:12] - images[0:11])
    assert np.array_equal(differences[0][1:12], expected)
    assert np.array_equal(differences[0][0], expected[0])
    # The second clip's first frame differs from that clip's frame 2, not from clip 1's last frame.
    assert np.array_equal(differences[0][12], np.abs(images[13] - images[12]))
    assert np.array_equal(differences[1], frames[1])
    assert all(np.array_equal(differences[2][name], frames[2][name]) for name in frames[2])


def test_load_ucsd_frames_and_differences(tmp_path):
    source = write_layout(tmp_path)
    frames = load_ucsd(str(source), 1, FRAME_SIZE, [2, 2])["test"]
    differences = load_ucsd(str(source), 1, FRAME_SIZE, [2, 2], "differences")["test"]
    both = load_ucsd(str(source), 2, FRAME_SIZE, [2, 2], "frames_and_differences")["test"]
    # Channel 0 is the frame patch and channel 1 its difference patch. Labels and extras agree.
    assert both[0].shape == (len(frames[0]), 2, FRAME_SIZE, FRAME_SIZE)
    assert np.array_equal(both[0][:, :1], frames[0])
    assert np.array_equal(both[0][:, 1:], differences[0])
    assert np.array_equal(both[1], frames[1])
    assert all(np.array_equal(both[2][name], frames[2][name]) for name in frames[2])


@pytest.mark.parametrize("step", [1, 2])
def test_load_ucsd_difference_pairs(tmp_path, step):
    source = write_layout(tmp_path)
    differences = load_ucsd(str(source), 1, FRAME_SIZE, [2, 2], "differences", 1.5, 2.0)["test"]
    pairs = load_ucsd(str(source), 2, FRAME_SIZE, [2, 2], "difference_pairs", 1.5, 2.0, step)["test"]
    # Channel 0 is frame t's blurred difference and channel 1 that of frame t - step, with the
    # first frames of each clip repeating its frame 1. Records are 4 patches per frame.
    per_frame = differences[0].reshape(-1, 4, 1, FRAME_SIZE, FRAME_SIZE)
    paired = pairs[0].reshape(-1, 4, 2, FRAME_SIZE, FRAME_SIZE)
    assert np.array_equal(paired[:, :, :1], per_frame)
    for clip_start in (0, FRAMES_PER_CLIP):
        for offset in range(FRAMES_PER_CLIP):
            earlier = clip_start + max(offset - step, 0)
            assert np.array_equal(paired[clip_start + offset, :, 1], per_frame[earlier, :, 0])
    assert not np.array_equal(paired[:, :, 0], paired[:, :, 1])
    assert np.array_equal(pairs[1], differences[1])
    assert all(np.array_equal(pairs[2][name], differences[2][name]) for name in differences[2])


def test_pair_step_needs_difference_pairs():
    with pytest.raises(ConfigError, match="VIDEO.PAIR_STEP = 2.*only 'difference_pairs'"):
        load_config(UCSD_CONFIG, ["VIDEO.PAIR_STEP=2"])
    with pytest.raises(ConfigError, match="VIDEO.PAIR_STEP = 0.*at least 1"):
        load_config(UCSD_CONFIG, ["VIDEO.PAIR_STEP=0", "VIDEO.INPUT=difference_pairs", "MODEL.INPUT_IMAGE_CHANNELS=2"])
    with pytest.raises(ConfigError, match="MODEL.INPUT_IMAGE_CHANNELS = 1.*difference_pairs"):
        load_config(UCSD_CONFIG, ["VIDEO.INPUT=difference_pairs"])
    cfg = load_config(UCSD_CONFIG, ["VIDEO.INPUT=difference_pairs", "MODEL.INPUT_IMAGE_CHANNELS=2",
                                    "VIDEO.PAIR_STEP=3"])
    assert preprocessing_settings(cfg)["pair_step"] == 3


def test_read_clip_rejects_bad_difference_settings(tmp_path):
    source = write_layout(tmp_path)
    with pytest.raises(UcsdError, match="VIDEO.PAIR_STEP 12 is not below the clip's 12 frames"):
        load_ucsd(str(source), 2, FRAME_SIZE, [1, 1], "difference_pairs", pair_step=FRAMES_PER_CLIP)
    with pytest.raises(UcsdError, match="VIDEO.PAIR_STEP 0 is below 1"):
        load_ucsd(str(source), 2, FRAME_SIZE, [1, 1], "difference_pairs", pair_step=0)
    with pytest.raises(UcsdError, match="VIDEO.DIFFERENCE_THRESHOLD 255 is outside 0..254"):
        load_ucsd(str(source), 1, FRAME_SIZE, [1, 1], "differences", difference_threshold=255)


def gaussian_weights(sigma, radius):
    """Return the normalised 1-D Gaussian weights at offsets -radius..radius."""
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


def test_soften_differences_hand_case():
    # One bright pixel in the middle of a 9x9 patch, far enough from the border (4 pixels, the
    # blur's reach at sigma 1) that the edge mode does not matter.
    patches = np.zeros((2, 1, 9, 9), dtype=np.uint8)
    patches[1, 0, 4, 4] = 100
    blurred = soften_differences(patches, 1.0, 1.0)
    weights = gaussian_weights(1.0, 4)
    # The 2-D Gaussian is the outer product of two 1-D ones, so pixel (4 + i, 4 + j) gets
    # 100 * w_i * w_j before rounding.
    expected = np.rint(100 * np.outer(weights, weights))
    assert blurred.dtype == np.uint8
    assert blurred.shape == patches.shape
    assert np.array_equal(blurred[1, 0], expected)
    assert expected[4, 4] == 16
    assert expected[4, 5] == 10
    # Each patch is blurred on its own: the empty patch stays empty.
    assert not blurred[0].any()


def test_soften_differences_keeps_borders():
    # The blur repeats the border pixels beyond the edge, so a uniform patch stays uniform
    # instead of darkening towards its border.
    uniform = np.full((1, 1, 8, 8), 40, dtype=np.uint8)
    assert np.array_equal(soften_differences(uniform, 2.0, 1.0), uniform)


def test_soften_differences_gain_clips():
    patches = np.array([[[[10, 100], [0, 85]]]], dtype=np.uint8)
    assert soften_differences(patches, 0.0, 3.0).tolist() == [[[[30, 255], [0, 255]]]]
    # The defaults leave the records untouched.
    assert soften_differences(patches, 0.0, 1.0) is patches


def test_load_ucsd_thresholded_differences(tmp_path):
    source = write_layout(tmp_path)
    sharp = load_ucsd(str(source), 1, FRAME_SIZE, [1, 1], "differences")["test"]
    masks = load_ucsd(str(source), 1, FRAME_SIZE, [1, 1], "differences", difference_threshold=10)["test"]
    # With one patch per frame at frame size, no resize mixes pixels, so the records are the
    # masks of the sharp differences.
    assert np.array_equal(masks[0], np.where(sharp[0] > 10, 255, 0))
    assert set(np.unique(masks[0])) == {0, 255}
    assert np.array_equal(masks[1], sharp[1])


def threshold_then_cut(clip_folder, threshold, grid, blur):
    """Build difference records by hand: mask at frame resolution, then cut, resize and blur."""
    frames = [np.asarray(Image.open(clip_folder / f"{number}.tif"), dtype=np.int16)
              for number in range(1, FRAMES_PER_CLIP + 1)]
    masks = [np.where(np.abs(later - earlier) > threshold, 255, 0).astype(np.uint8)
             for earlier, later in zip(frames[:-1], frames[1:])]
    masks = masks[:1] + masks
    boxes = patch_boxes(FRAME_SIZE, FRAME_SIZE, grid)
    return np.concatenate([soften_differences(cut_patches(Image.fromarray(mask), boxes, FRAME_SIZE), blur, 1.0)
                           for mask in masks])


@pytest.mark.parametrize("input_mode, channels, difference_channel", [
    ("differences", 1, 0),
    ("frames_and_differences", 2, 1),
    ("difference_pairs", 2, 0),
])
def test_threshold_before_patches(tmp_path, input_mode, channels, difference_channel):
    # The threshold applies to the full-resolution difference, before the 16x16 patches are cut,
    # resized to 32x32 and blurred, for every input with differences.
    source = write_layout(tmp_path)
    records = load_ucsd(str(source), channels, FRAME_SIZE, [2, 2], input_mode, 1.5, 1.0,
                        difference_threshold=10)["test"][0]
    expected = threshold_then_cut(source / "Test" / "Test001", 10, [2, 2], 1.5)
    clip_1 = records[:len(expected), difference_channel:difference_channel + 1]
    assert np.array_equal(clip_1, expected)
    # Blurred masks have levels between 0 and 255, which a threshold after the blur would not leave.
    assert len(np.unique(clip_1)) > 2


def test_load_ucsd_blurred_differences(tmp_path):
    source = write_layout(tmp_path)
    frames = load_ucsd(str(source), 1, FRAME_SIZE, [2, 2])["test"]
    differences = load_ucsd(str(source), 1, FRAME_SIZE, [2, 2], "differences")["test"]
    blurred = load_ucsd(str(source), 1, FRAME_SIZE, [2, 2], "differences", 1.5, 2.0)["test"]
    both = load_ucsd(str(source), 2, FRAME_SIZE, [2, 2], "frames_and_differences", 1.5, 2.0)["test"]
    # The blur and the gain apply to the difference patches only, never to the frame channel.
    assert np.array_equal(blurred[0], soften_differences(differences[0], 1.5, 2.0))
    assert not np.array_equal(blurred[0], differences[0])
    assert np.array_equal(both[0][:, :1], frames[0])
    assert np.array_equal(both[0][:, 1:], blurred[0])
    assert np.array_equal(blurred[1], frames[1])


@pytest.mark.parametrize("overrides, key", [
    (["VIDEO.DIFFERENCE_BLUR=-1"], "VIDEO.DIFFERENCE_BLUR"),
    (["VIDEO.DIFFERENCE_BLUR=33"], "VIDEO.DIFFERENCE_BLUR = 33.0.*INPUT_IMAGE_SIZE \\(32\\)"),
    (["VIDEO.DIFFERENCE_BLUR=.inf"], "VIDEO.DIFFERENCE_BLUR"),
    (["VIDEO.DIFFERENCE_GAIN=0"], "VIDEO.DIFFERENCE_GAIN"),
    (["VIDEO.DIFFERENCE_GAIN=.inf"], "VIDEO.DIFFERENCE_GAIN = inf"),
    (["VIDEO.INPUT=frames"],
     "VIDEO.DIFFERENCE_THRESHOLD = 40.*VIDEO.INPUT 'frames'.*--set VIDEO.DIFFERENCE_THRESHOLD=0"),
    (["VIDEO.INPUT=frames", "VIDEO.DIFFERENCE_THRESHOLD=0"],
     "VIDEO.DIFFERENCE_BLUR = 2.0.*VIDEO.INPUT 'frames'.*--set VIDEO.DIFFERENCE_BLUR=0"),
    (["VIDEO.INPUT=frames", "VIDEO.DIFFERENCE_THRESHOLD=0", "VIDEO.DIFFERENCE_BLUR=0", "VIDEO.DIFFERENCE_GAIN=3"],
     "VIDEO.DIFFERENCE_GAIN = 3.0.*VIDEO.INPUT 'frames'"),
    (["VIDEO.DIFFERENCE_THRESHOLD=-1"], "VIDEO.DIFFERENCE_THRESHOLD = -1.*from 0"),
    (["VIDEO.DIFFERENCE_THRESHOLD=255"], "VIDEO.DIFFERENCE_THRESHOLD = 255.*to 254"),
    (["VIDEO.DIFFERENCE_THRESHOLD=2.5"], "VIDEO.DIFFERENCE_THRESHOLD"),
])
def test_config_invalid_difference_settings(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config(UCSD_CONFIG, overrides)


def import_ped2_checks():
    """Import benchmarks/bench_ped2_checks.py, which imports its neighbour common.py."""
    benchmarks_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
    sys.path.insert(0, benchmarks_dir)
    try:
        import bench_ped2_checks
    finally:
        sys.path.remove(benchmarks_dir)
    return bench_ped2_checks


def motion_records():
    """Return records of two clips of 6 frames with 2 patches each, where anomalous frames move most."""
    anomalous_frames = {1: {3, 4}, 2: {2, 3, 4, 5}}
    clips, frames, patches, labels, norms = [], [], [], [], []
    for clip, anomalous in anomalous_frames.items():
        for frame in range(1, 7):
            for patch in range(2):
                label = int(frame in anomalous)
                clips.append(clip)
                frames.append(frame)
                patches.append(patch)
                labels.append(label)
                # Patch 0 carries the motion, more of it in anomalous frames. Patch 1 barely moves.
                if patch == 1:
                    norms.append(0.05)
                elif label:
                    norms.append(0.5)
                else:
                    norms.append(0.1)
    return {"clip": np.array(clips), "frame": np.array(frames), "patch": np.array(patches),
            "label": np.array(labels)}, np.array(norms)


def test_motion_check_motion_only_distance():
    checks = import_ped2_checks()
    saved, norms = motion_records()
    saved["distance"] = norms.copy()
    saved["score"] = -norms
    check = checks.motion_check(norms, saved, sigma=1.0)
    assert check["correlation"] == pytest.approx(1.0)
    assert check["slope"] == pytest.approx(1.0)
    assert check["relative_error"] == pytest.approx(1.0)
    # The norm and the score separate the frames perfectly.
    assert check["aucs"]["L2 norm, no model"]["raw"] == pytest.approx(1.0)
    assert check["aucs"]["run's score"]["raw"] == pytest.approx(1.0)
    # The distance explains nothing beyond the norm: the residual from the line is 0, up to
    # rounding, everywhere.
    assert np.allclose(check["residual"], 0.0, atol=1e-9)


def test_motion_check_finds_extra_error():
    checks = import_ped2_checks()
    saved, norms = motion_records()
    # Twice the norm, plus an extra error on patch 1 of the anomalous frames only: the residual
    # from the line finds those frames although their norm does not change.
    saved["distance"] = 2 * norms + np.where((saved["patch"] == 1) & (saved["label"] == 1), 0.2, 0.0)
    saved["score"] = -saved["distance"]
    check = checks.motion_check(norms, saved, sigma=1.0)
    assert check["aucs"]["distance beyond the norm"]["raw"] == pytest.approx(1.0)


def test_relative_error_of_busiest_records():
    checks = import_ped2_checks()
    # Nine quiet records with an error of 3 times their norm and one busy record (the top 10 %)
    # with an error of half its norm: only the busy one counts.
    norms = np.array([0.1] * 9 + [1.0])
    distances = np.array([0.3] * 9 + [0.5])
    assert checks.busy_relative_error(norms, distances) == pytest.approx(0.5)


def test_score_terms_alone():
    checks = import_ped2_checks()
    saved, norms = motion_records()
    moving = saved["patch"] == 0
    # On the moving patch 0, the latent and Jacobian terms rank the frames right and the
    # reconstruction term the wrong way round. Patch 1's terms are higher in every frame, so
    # patch 0 sets each frame's minimum. The reconstruction term outweighs the latent term, and
    # the Jacobian term outweighs both.
    saved["latent"] = np.where(moving, -norms, 0.0)
    saved["reconstruction"] = np.where(moving, 2 * norms, 5.0)
    saved["jacobian"] = np.where(moving, -10 * norms, 10.0)
    saved["score"] = saved["latent"] + saved["reconstruction"] + saved["jacobian"]
    rows = dict(checks.term_rows(saved, sigma=1.0))
    assert list(rows) == ["latent term", "reconstruction term", "Jacobian term", "latent + reconstruction",
                          "run's score"]
    assert rows["latent term"]["raw"] == pytest.approx(1.0)
    assert rows["reconstruction term"]["raw"] == pytest.approx(0.0)
    assert rows["Jacobian term"]["raw"] == pytest.approx(1.0)
    assert rows["latent + reconstruction"]["raw"] == pytest.approx(0.0)
    assert rows["run's score"]["raw"] == pytest.approx(1.0)

    # The sigma reaches the smoothed variants: wider smoothing lowers the latent term's AUC.
    keys = (saved["clip"], saved["frame"], saved["label"])
    wide = dict(checks.term_rows(saved, sigma=2.0))
    expected = checks.micro_aucs(*keys, saved["latent"], sigma=2.0)["smoothed"]
    assert expected < 1.0
    assert wide["latent term"]["smoothed"] == pytest.approx(expected)
    assert rows["latent term"]["smoothed"] == pytest.approx(1.0)


def test_score_terms_switched_off():
    checks = import_ped2_checks()
    saved, norms = motion_records()
    # Only the Jacobian term is on: the switched-off terms and their constant sum get no row.
    saved["latent"] = np.zeros_like(norms)
    saved["reconstruction"] = np.zeros_like(norms)
    saved["jacobian"] = -norms
    saved["score"] = saved["jacobian"].copy()
    assert [name for name, _ in checks.term_rows(saved, sigma=1.0)] == ["Jacobian term", "run's score"]

    # Without the Jacobian term, the latent + reconstruction row would repeat the run's score.
    saved["latent"] = -norms
    saved["reconstruction"] = -norms
    saved["jacobian"] = np.zeros_like(norms)
    saved["score"] = saved["latent"] + saved["reconstruction"]
    names = [name for name, _ in checks.term_rows(saved, sigma=1.0)]
    assert names == ["latent term", "reconstruction term", "run's score"]

    # Score files without the term arrays give no rows.
    del saved["jacobian"]
    assert checks.term_rows(saved, sigma=1.0) == []


def fold_record_and_scores(preprocessing):
    extras = {"clip": np.array([1, 1]), "frame": np.array([1, 1]), "patch": np.array([0, 1])}
    record = {"extras": extras, "preprocessing": preprocessing}
    saved = {**extras, "distance": np.array([0.1, 0.2])}
    return record, saved


def test_motion_check_needs_matching_run(tmp_path):
    checks = import_ped2_checks()
    scores = tmp_path / "video_scores_mul0.2.npz"
    (tmp_path / "config.yaml").write_text("VIDEO:\n  INPUT: differences\n  PATCH_GRID: [4, 6]\n")
    # A run whose config.yaml predates the blur settings matches unblurred folds that predate them too.
    record, saved = fold_record_and_scores({"input": "differences", "patch_grid": [4, 6]})
    checks.check_same_records(record, saved, "folds", str(scores))

    # Blurred folds have the same records in the same order, so only their settings differ.
    record, saved = fold_record_and_scores({"input": "differences", "patch_grid": [4, 6],
                                            "difference_blur": 1.0, "difference_gain": 3.0})
    with pytest.raises(SystemExit, match="VIDEO.DIFFERENCE_BLUR 1.0 in the folds, 0.0 in the run"):
        checks.check_same_records(record, saved, "folds", str(scores))

    record, saved = fold_record_and_scores({"input": "differences", "patch_grid": [4, 6]})
    saved["patch"] = np.array([1, 0])
    with pytest.raises(SystemExit, match="differ from the test fold in folds in 'patch'"):
        checks.check_same_records(record, saved, "folds", str(scores))
    del saved["distance"]
    with pytest.raises(SystemExit, match="no 'distance' array"):
        checks.check_same_records(record, saved, "folds", str(scores))


@pytest.mark.parametrize("preprocessing, message", [
    ({"input": "frames_and_differences", "patch_grid": [4, 6]},
     "VIDEO.INPUT 'frames_and_differences' in the folds, 'differences' in the run"),
    ({"input": "differences", "patch_grid": [6, 9]}, r"VIDEO.PATCH_GRID \[6, 9\] in the folds, \[4, 6\] in the run"),
    ({"input": "differences", "patch_grid": [4, 6], "pair_step": 2}, "VIDEO.PAIR_STEP 2 in the folds, 1 in the run"),
    ({"input": "differences", "patch_grid": [4, 6], "difference_threshold": 40},
     "VIDEO.DIFFERENCE_THRESHOLD 40 in the folds, 0 in the run"),
])
def test_motion_check_other_input_or_grid(tmp_path, preprocessing, message):
    checks = import_ped2_checks()
    (tmp_path / "config.yaml").write_text("VIDEO:\n  INPUT: differences\n  PATCH_GRID: [4, 6]\n")
    record, saved = fold_record_and_scores(preprocessing)
    with pytest.raises(SystemExit, match=message):
        checks.check_same_records(record, saved, "folds", str(tmp_path / "video_scores_mul0.2.npz"))


def test_motion_check_without_run_config(tmp_path, capsys):
    # A score file copied away from its run folder cannot be compared, and the check reports that.
    checks = import_ped2_checks()
    record, saved = fold_record_and_scores({"input": "differences", "patch_grid": [4, 6]})
    checks.check_same_records(record, saved, "folds", str(tmp_path / "video_scores_mul0.2.npz"))
    assert "config.yaml not found, so the fold settings are not compared" in capsys.readouterr().err


def test_motion_check_rejects_frame_folds(tmp_path, monkeypatch):
    checks = import_ped2_checks()
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source)
    with pytest.raises(SystemExit, match="data_fold_1.pkl not found"):
        checks.read_test_norms(str(tmp_path / "folds"))
    run_partition(monkeypatch, UCSD_CONFIG, overrides + FRAME_INPUT)
    with pytest.raises(SystemExit, match="VIDEO.INPUT 'frames'"):
        checks.read_test_norms(str(tmp_path / "folds"))


def test_motion_check_norm_of_difference_pairs(tmp_path, monkeypatch):
    # On difference-pair folds the norm is that of channel 0, the record's own difference, so
    # it equals the norm of the same record in difference folds.
    checks = import_ped2_checks()
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source, grid=(2, 2))
    run_partition(monkeypatch, UCSD_CONFIG, overrides)
    _, norms = checks.read_test_norms(str(tmp_path / "folds"))
    pairs = overrides + ["DATASET.PATH=" + str(tmp_path / "pairs"), "VIDEO.INPUT=difference_pairs",
                         "MODEL.INPUT_IMAGE_CHANNELS=2", "VIDEO.PAIR_STEP=2"]
    run_partition(monkeypatch, UCSD_CONFIG, pairs)
    record, pair_norms = checks.read_test_norms(str(tmp_path / "pairs"))
    assert record["images"].shape[1] == 2
    assert norms.any()
    assert np.array_equal(pair_norms, norms)


def test_two_channel_input_needs_two_channels(tmp_path):
    source = write_layout(tmp_path)
    with pytest.raises(UcsdError, match="inputs need 2 channels"):
        load_ucsd(str(source), 1, FRAME_SIZE, [1, 1], "frames_and_differences")
    with pytest.raises(ConfigError, match="MODEL.INPUT_IMAGE_CHANNELS = 1.*frames_and_differences"):
        load_config(UCSD_CONFIG, ["VIDEO.INPUT=frames_and_differences"])
    with pytest.raises(ConfigError, match="MODEL.INPUT_IMAGE_CHANNELS = 2.*only for video"):
        load_config(UCSD_CONFIG, ["MODEL.INPUT_IMAGE_CHANNELS=2"])
    with pytest.raises(ConfigError, match="VIDEO.INPUT = 'frames_and_differences'.*applies only to video"):
        load_config("configs/mnist.yaml", ["VIDEO.INPUT=frames_and_differences", "MODEL.INPUT_IMAGE_CHANNELS=2"])


def test_two_channel_figures_show_channels_apart():
    patches = np.zeros((6, 2, 2, 2), dtype=np.uint8)
    patches[:, 1] = 255
    # The frame mosaic (channel 0) sits above the difference mosaic (channel 1).
    mosaic = patch_mosaic(patches, [2, 3])
    assert mosaic.shape == (8, 6)
    assert mosaic[:4].max() == 0
    assert mosaic[4:].min() == 1
    images = torch.stack([torch.zeros(2, 3, 3), torch.ones(2, 3, 3)])
    images[:, 1] = 0.5
    side_by_side = channels_side_by_side(images)
    assert side_by_side.shape == (2, 1, 3, 6 + CHANNEL_GAP_PIXELS)
    assert torch.equal(side_by_side[1, 0, :, :3], torch.ones(3, 3))
    assert torch.equal(side_by_side[1, 0, :, 3 + CHANNEL_GAP_PIXELS:], torch.full((3, 3), 0.5))
    one_channel = images[:, :1]
    assert channels_side_by_side(one_channel) is one_channel


def test_fold_summary_two_channels(tmp_path):
    images = np.zeros((4, 2, 32, 32), dtype=np.uint8)
    images[:, 1] = 128
    record = {"images": images, "labels": np.array([0, 0, 1, 1])}
    path = tmp_path / "summary.png"

    save_fold_summary([record], ["normal", "anomalous"], str(path), samples_per_class=2)

    # The mid-grey difference channel is drawn beside the black frame channel, as greyscale.
    pixels = np.asarray(Image.open(path).convert("L")).astype(np.int64)
    assert (np.abs(pixels - 128) < 8).sum() > 1000
    assert (pixels < 15).sum() > 1000


def test_patch_boxes_uneven_frame():
    boxes = patch_boxes(240, 360, [2, 3])
    assert boxes[0] == (0, 120, 0, 120)
    assert boxes[5] == (120, 240, 240, 360)
    assert patch_boxes(5, 5, [2, 2]) == [(0, 2, 0, 2), (0, 2, 2, 5), (2, 5, 0, 2), (2, 5, 2, 5)]


def test_patch_mosaic_restores_layout():
    patches = np.arange(6 * 2 * 2, dtype=np.uint8).reshape(6, 1, 2, 2)
    mosaic = patch_mosaic(patches, [2, 3])
    assert mosaic.shape == (4, 6)
    assert mosaic[0, 2] * 255 == pytest.approx(patches[1, 0, 0, 0])
    assert mosaic[3, 5] * 255 == pytest.approx(patches[5, 0, 1, 1])


# ---------------------------------------------------------------------------------------------
# Config and fold protocol


def test_config_fixed_split_needs_two_folds():
    with pytest.raises(ConfigError, match="FOLDS_COUNT"):
        load_config(UCSD_CONFIG, ["DATASET.FOLDS_COUNT=5", "RUN.FOLDS=[1]"])


@pytest.mark.parametrize("override", ["VIDEO.PATCH_GRID=[2]", "VIDEO.PATCH_GRID=[0, 1]",
                                      "VIDEO.PATCH_GRID=[true, 2]", "VIDEO.SMOOTHING_SIGMA=0",
                                      "VIDEO.ANIMATION_CLIP=-1", "VIDEO.ANIMATION_FRAME_STEP=0",
                                      "DATASET.PROTOCOL=fixed"])
def test_config_invalid_video_value(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(UCSD_CONFIG, [override])


def test_config_mnist_protocol_unchanged():
    cfg = load_config("configs/mnist.yaml")
    assert cfg.DATASET.PROTOCOL == "folds"
    assert cfg.DATASET.FOLDS_COUNT == 5


def test_load_protocol_rejects_fixed_split():
    with pytest.raises(FoldError, match="fixed_split"):
        load_protocol(load_config(UCSD_CONFIG), 1)


def test_partition_rejects_folds_protocol(tmp_path):
    cfg = load_config("configs/mnist.yaml", [f"DATASET.SOURCE={tmp_path}"])
    with pytest.raises(UcsdError, match="fixed_split"):
        load_ucsd_for_config(cfg)


# ---------------------------------------------------------------------------------------------
# Metrics (scores are log p(x): high = normal)


def test_patch_scores_reduce_to_minimum():
    # Records of two frames of clip 3 and one frame of clip 1, shuffled.
    clips = np.array([3, 1, 3, 3, 1, 3])
    frames = np.array([2, 1, 1, 2, 1, 1])
    labels = np.array([1, 0, 0, 1, 0, 0])
    scores = np.array([-5.0, 2.0, 4.0, 7.0, 3.0, 1.0])
    table = frame_scores_from_patches(clips, frames, labels, scores)
    assert table["clip"].tolist() == [1, 3, 3]
    assert table["frame"].tolist() == [1, 1, 2]
    assert table["label"].tolist() == [0, 0, 1]
    assert table["score"].tolist() == [2.0, 1.0, -5.0]


def test_patch_labels_must_agree():
    with pytest.raises(ValueError, match="clip 1, frame 1"):
        frame_scores_from_patches([1, 1], [1, 1], [0, 1], [0.0, 1.0])


def test_equal_error_rate_hand_cases():
    # Anomalous first in anomaly-score order, then normal: no error at all.
    assert equal_error_rate([1, 1, 0, 0], [4, 3, 2, 1]) == 0.0
    # ROC (0, 0) (0, .5) (1/3, .5) (1/3, 1) (1, 1): the line FPR = FNR crosses the vertical
    # segment at FPR 1/3 (FNR falls from 1/2 to 0 there).
    assert equal_error_rate([1, 0, 1, 0, 0], [5, 4, 3, 2, 1]) == pytest.approx(1 / 3)
    # A tie between an anomalous and a normal frame gives the diagonal (0, .5)-(.5, 1), which
    # meets FPR = 1 - TPR at FPR 1/4.
    assert equal_error_rate([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(0.25)
    # All anomaly scores equal: the ROC is the diagonal, EER 1/2.
    assert equal_error_rate([1, 0], [1.0, 1.0]) == pytest.approx(0.5)


def test_equal_error_rate_needs_both_labels():
    with pytest.raises(MetricError, match="all 3 frames are normal"):
        equal_error_rate([0, 0, 0], [1, 2, 3])


def test_raw_metrics_hand_case():
    # Clip 1: normal 10, 9; anomalous 1, 2 -> AUC 1.
    # Clip 2: normal 6, 7; anomalous 5, 6.5 -> 3 of 4 pairs ordered -> AUC 0.75.
    # Clip 3: normal only -> left out of the macro AUC.
    clips = np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3])
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1, 0, 0])
    scores = np.array([10, 9, 1, 2, 6, 5, 7, 6.5, 3, 3.5])
    metrics = frame_level_metrics(clips, labels == 1, scores)
    assert metrics["clip_auc"] == {1: 1.0, 2: 0.75}
    assert metrics["macro_auc"] == pytest.approx(0.875)
    assert metrics["macro_auc_clips"] == 2
    assert metrics["skipped_clips"] == "3"
    # 19 of the 24 (anomalous, normal) pairs have the anomalous frame scored lower.
    assert metrics["micro_auc"] == pytest.approx(19 / 24)
    assert metrics["micro_auc"] == pytest.approx(roc_auc_score(labels == 0, scores))
    # In score order 1A 2A 3N 3.5N 5A 6N ... the ROC reaches (1/3, .5) then (1/3, .75).
    assert metrics["eer"] == pytest.approx(1 / 3)


def test_normalised_metrics_hand_case():
    clips = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    frames = np.array([1, 2, 3, 4, 1, 2, 3, 4])
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    # Clip 1 scores lie around 100, clip 2 around 5: each clip alone is separated perfectly.
    scores = np.array([100, 100, 90, 90, 10, 10, 0, 0], dtype=float)
    metrics, variants = evaluate_variants(clips, frames, labels, scores, sigma=0.5)
    assert variants["normalised"].tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    # Raw: both clip-1 anomalous frames (90) score above both clip-2 normal frames (10): 4 of
    # 16 pairs wrong, and the ROC passes through (.5, .5), the EER point.
    assert metrics["raw"]["micro_auc"] == pytest.approx(0.75)
    assert metrics["raw"]["eer"] == pytest.approx(0.5)
    assert metrics["raw"]["macro_auc"] == pytest.approx(1.0)
    assert metrics["normalised"]["micro_auc"] == pytest.approx(1.0)
    assert metrics["normalised"]["eer"] == pytest.approx(0.0)
    assert metrics["normalised"]["macro_auc"] == pytest.approx(1.0)


def test_smoothed_metrics_hand_case():
    # One clip of 20 frames: normal frames score 10 except a one-frame dip to 0 at frame 5,
    # anomalous frames 13..20 score 2. Raw, the dip ranks below all 8 anomalous frames: 8 of 96
    # pairs wrong. Smoothed with sigma 1 the dip rises to about 6, above every smoothed
    # anomalous frame (at most about 4.5 at frame 13), so every pair is ordered.
    frames = np.arange(1, 21)
    clips = np.ones(20, dtype=int)
    labels = (frames >= 13).astype(int)
    scores = np.where(labels == 1, 2.0, 10.0)
    scores[4] = 0.0
    metrics, variants = evaluate_variants(clips, frames, labels, scores, sigma=1.0)
    assert metrics["raw"]["micro_auc"] == pytest.approx(88 / 96)
    assert metrics["smoothed"]["micro_auc"] == pytest.approx(1.0)
    assert metrics["smoothed_normalised"]["micro_auc"] == pytest.approx(1.0)
    assert metrics["smoothed"]["eer"] == pytest.approx(0.0)
    assert variants["smoothed"][4] == pytest.approx(10 - 10 * 0.3990, abs=0.01)
    assert variants["smoothed_normalised"].min() == 0.0
    assert variants["smoothed_normalised"].max() == 1.0
    # Only one clip: the macro AUC equals that clip's AUC.
    assert metrics["raw"]["macro_auc"] == pytest.approx(metrics["raw"]["micro_auc"])


def test_smoothing_stays_inside_clip():
    clips = np.array([1, 1, 1, 2, 2, 2])
    frames = np.array([1, 2, 3, 1, 2, 3])
    scores = np.array([0.0, 0.0, 0.0, 100.0, 100.0, 100.0])
    assert smooth_per_clip(clips, frames, scores, 2.0) == pytest.approx(scores)


def test_normalising_constant_clip():
    normalised = normalise_per_clip(np.array([1, 1, 2, 2]), np.array([1, 2, 1, 2]), np.array([3.0, 3.0, 1.0, 2.0]))
    assert normalised.tolist() == [0.5, 0.5, 0.0, 1.0]


def test_variants_need_time_order():
    with pytest.raises(ValueError, match="not consecutive"):
        smooth_per_clip(np.array([1, 1, 1]), np.array([1, 3, 2]), np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="not grouped by clip"):
        smooth_per_clip(np.array([1, 2, 1]), np.array([1, 1, 2]), np.zeros(3), 1.0)


def test_macro_auc_without_two_label_clip():
    metrics = frame_level_metrics(np.array([1, 1, 2, 2]), np.array([0, 0, 1, 1], dtype=bool),
                                  np.array([4.0, 3.0, 2.0, 1.0]))
    assert np.isnan(metrics["macro_auc"])
    assert metrics["macro_auc_clips"] == 0
    assert metrics["skipped_clips"] == "1 2"
    assert metrics["micro_auc"] == 1.0


# ---------------------------------------------------------------------------------------------
# End to end


def run_partition(monkeypatch, config, overrides):
    argv = ["partition_ucsd.py", "--config", config]
    for override in overrides:
        argv += ["--set", override]
    monkeypatch.setattr(sys, "argv", argv)
    partition_main("test", UCSD_CONFIG, load_ucsd_for_config, write_partition=write_ucsd_folds)


def driver_arguments(overrides):
    argv = ["--config", UCSD_CONFIG]
    for override in overrides:
        argv += ["--set", override]
    return argv


def test_end_to_end_synthetic_clips(tmp_path, monkeypatch, capsys):
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source, grid=(2, 2))
    run_partition(monkeypatch, UCSD_CONFIG, overrides)

    cfg = load_config(UCSD_CONFIG, overrides)
    train_record = read_fold(str(tmp_path / "folds"), 0, cfg)
    test_record = read_fold(str(tmp_path / "folds"), 1, cfg)
    assert len(train_record["images"]) == 2 * FRAMES_PER_CLIP * 4
    assert len(test_record["images"]) == 2 * FRAMES_PER_CLIP * 4
    assert sorted(test_record["extras"]) == ["clip", "frame", "mask_pixels", "patch"]
    assert int(test_record["labels"].sum()) == (5 + 2 + 5) * 4

    video.train_driver(UCSD_CONFIG, driver_arguments(overrides))
    run_folder = tmp_path / "results" / "ucsd-ped2" / "fold_1" / "set_0"
    assert (run_folder / "encoder_ucsd-ped2_f1_ic0.pt").is_file()
    assert (run_folder / "generator_ucsd-ped2_f1_ic0.pt").is_file()

    video.test_driver(UCSD_CONFIG, driver_arguments(overrides))
    printed = capsys.readouterr().out
    assert "| smoothed_normalised |" in printed

    with open(tmp_path / "results" / "ucsd-ped2" / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["variant"] for row in rows] == ["raw", "normalised", "smoothed", "smoothed_normalised"]
    for row in rows:
        for name in ["micro_auc", "macro_auc", "eer"]:
            assert 0.0 <= float(row[name]) <= 1.0, (row["variant"], name, row[name])
        assert row["test_frames"] == "24"
        assert row["anomalous_frames"] == "12"
        assert row["macro_auc_clips"] == "2"
        assert row["patch_grid"] == "2x2"

    with open(run_folder / "video_metrics_mul0.2.json") as stream:
        saved = json.load(stream)
    assert sorted(saved["variants"]) == ["normalised", "raw", "smoothed", "smoothed_normalised"]
    assert sorted(saved["variants"]["raw"]["clip_auc"]) == ["1", "2"]

    with open(run_folder / "frame_scores_mul0.2.csv", newline="") as stream:
        frame_rows = list(csv.DictReader(stream))
    assert [(int(row["clip"]), int(row["frame"])) for row in frame_rows] == \
        [(clip, frame) for clip in (1, 2) for frame in range(1, 13)]

    assert (run_folder / "plots" / "clips" / "Test001.png").is_file()
    assert (run_folder / "plots" / "clips" / "Test002.png").is_file()
    with Image.open(run_folder / "plots" / "Test002.gif") as animation:
        assert animation.format == "GIF"
        assert animation.n_frames == FRAMES_PER_CLIP // 2


@pytest.mark.parametrize("input_overrides", [
    ["VIDEO.INPUT=frames_and_differences"],
    ["VIDEO.INPUT=difference_pairs", "VIDEO.PAIR_STEP=2"],
])
def test_end_to_end_two_channel_input(tmp_path, monkeypatch, input_overrides):
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source, grid=(2, 2)) + input_overrides + ["MODEL.INPUT_IMAGE_CHANNELS=2"]
    run_partition(monkeypatch, UCSD_CONFIG, overrides)
    cfg = load_config(UCSD_CONFIG, overrides)
    assert read_fold(str(tmp_path / "folds"), 1, cfg)["images"].shape[1:] == (2, FRAME_SIZE, FRAME_SIZE)

    video.train_driver(UCSD_CONFIG, driver_arguments(overrides))
    video.test_driver(UCSD_CONFIG, driver_arguments(overrides))
    run_folder = tmp_path / "results" / "ucsd-ped2" / "fold_1" / "set_0"
    with open(tmp_path / "results" / "ucsd-ped2" / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert {row["input"] for row in rows} == {cfg.VIDEO.INPUT}
    assert {row["pair_step"] for row in rows} == {str(cfg.VIDEO.PAIR_STEP)}
    assert {row["channels"] for row in rows} == {"2"}
    with Image.open(run_folder / "plots" / "Test002.gif") as animation:
        assert animation.n_frames == FRAMES_PER_CLIP // 2
    # The reconstruction grid has 16 columns of 2-pixel-padded cells, and each cell shows the
    # frame and difference channels side by side with a gap between them.
    with Image.open(run_folder / "images" / "reconstruction_epoch_001.png") as grid:
        assert grid.width == 16 * (2 * FRAME_SIZE + CHANNEL_GAP_PIXELS + 2) + 2


def test_folds_of_other_preprocessing_rejected(tmp_path, monkeypatch, caplog):
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source)
    run_partition(monkeypatch, UCSD_CONFIG, overrides + FRAME_INPUT)
    with pytest.raises(SystemExit) as raised:
        video.train_driver(UCSD_CONFIG, driver_arguments(overrides + ["VIDEO.INPUT=differences"]))
    assert raised.value.code == 2
    assert "VIDEO.INPUT 'frames' in the file, 'differences' in the config" in caplog.text
    assert not (tmp_path / "results").exists()


def test_folds_of_other_blur_rejected(tmp_path, monkeypatch):
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source)
    run_partition(monkeypatch, UCSD_CONFIG, overrides + ["VIDEO.DIFFERENCE_BLUR=1.5", "VIDEO.DIFFERENCE_GAIN=2"])
    video.load_fixed_split(load_config(UCSD_CONFIG, overrides + ["VIDEO.DIFFERENCE_BLUR=1.5",
                                                                 "VIDEO.DIFFERENCE_GAIN=2"]))
    with pytest.raises(FoldError, match="VIDEO.DIFFERENCE_BLUR 1.5 in the file, 0.0 in the config; "
                                        "VIDEO.DIFFERENCE_GAIN 2.0 in the file, 1.0 in the config"):
        video.load_fixed_split(load_config(UCSD_CONFIG, overrides + SHARP_DIFFERENCES))


def test_old_folds_match_defaults(tmp_path):
    # Folds written before VIDEO.DIFFERENCE_BLUR and VIDEO.DIFFERENCE_GAIN existed record neither,
    # nor VIDEO.DIFFERENCE_THRESHOLD. They were made without any of the three, so they match
    # those settings and nothing else.
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source) + SHARP_DIFFERENCES
    cfg = load_config(UCSD_CONFIG, overrides)
    loaded = load_ucsd_for_config(cfg)
    for fold, name in [(TRAIN_FOLD, "train"), (TEST_FOLD, "test")]:
        images, labels, extras = loaded[name]
        write_single_fold(cfg.DATASET.PATH, cfg.DATASET.NAME, fold, cfg.DATASET.FOLDS_COUNT, cfg.DATASET.SEED,
                          images, labels, extras, preprocessing={"input": "differences", "patch_grid": [1, 1]})
    train, _ = video.load_fixed_split(cfg)
    assert np.array_equal(train.images, loaded["train"][0])
    with pytest.raises(FoldError, match="VIDEO.DIFFERENCE_BLUR 0.0 in the file, 2.0 in the config"):
        video.load_fixed_split(load_config(UCSD_CONFIG, overrides + ["VIDEO.DIFFERENCE_BLUR=2"]))
    with pytest.raises(FoldError, match="VIDEO.DIFFERENCE_THRESHOLD 0 in the file, 40 in the config"):
        video.load_fixed_split(load_config(UCSD_CONFIG, overrides + ["VIDEO.DIFFERENCE_THRESHOLD=40"]))


def test_existing_model_of_other_settings_rejected(tmp_path, monkeypatch):
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source)
    run_partition(monkeypatch, UCSD_CONFIG, overrides)
    video.train_video_model(load_config(UCSD_CONFIG, overrides))

    # Drawing grids less often does not change the model; a longer training does.
    video.train_video_model(load_config(UCSD_CONFIG, overrides + ["TRAIN.IMAGE_GRID_EVERY=5"]))
    # Evaluation-only VIDEO settings may change between training and scoring.
    video.evaluate_video_model(load_config(UCSD_CONFIG, overrides + ["VIDEO.SMOOTHING_SIGMA=2.0",
                                                                     "VIDEO.ANIMATION_CLIP=1"]))
    longer = load_config(UCSD_CONFIG, overrides + ["TRAIN.EPOCH_COUNT=2"])
    with pytest.raises(SettingsMismatchError, match="TRAIN.EPOCH_COUNT 1 there, 2 now"):
        video.train_video_model(longer)
    with pytest.raises(SettingsMismatchError, match="TRAIN.EPOCH_COUNT 1 there, 2 now"):
        video.evaluate_video_model(longer)
    video.train_video_model(load_config(UCSD_CONFIG, overrides + ["TRAIN.EPOCH_COUNT=2", "RUN.FORCE=true"]))
    video.evaluate_video_model(longer)


def test_test_driver_rejects_unknown_animation_clip(tmp_path, monkeypatch, caplog):
    source = write_layout(tmp_path / "raw")
    overrides = tiny_overrides(tmp_path, source) + ["VIDEO.ANIMATION_CLIP=7"]
    run_partition(monkeypatch, UCSD_CONFIG, overrides)
    with pytest.raises(SystemExit) as raised:
        video.test_driver(UCSD_CONFIG, driver_arguments(overrides))
    assert raised.value.code == 2
    assert "VIDEO.ANIMATION_CLIP = 7 is not a test clip" in caplog.text


def test_partition_reports_missing_entry(tmp_path, monkeypatch, caplog):
    source = write_layout(tmp_path / "raw", ground_truth={1: [(5, 9)]})
    with pytest.raises(SystemExit) as raised:
        run_partition(monkeypatch, UCSD_CONFIG, tiny_overrides(tmp_path, source))
    assert raised.value.code == 2
    assert "Test002: no ground-truth entry" in caplog.text
    assert not (tmp_path / "folds").exists()


# ---------------------------------------------------------------------------------------------
# Real data

SHARED_DATASETS = os.environ.get("GPND_SHARED_DATASETS", "")
PED2_FOLDER = os.path.join(SHARED_DATASETS, "ucsd-ped2", "UCSDped2")
PED2_TRAIN_FRAMES = [120, 150, 150, 180, 180, 150, 150, 120, 180, 180, 180, 180, 180, 150, 150, 150]
PED2_TEST_FRAMES = [180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180]
PED2_ANOMALOUS_FRAMES = 1648


@pytest.mark.skipif(not SHARED_DATASETS or not os.path.isdir(PED2_FOLDER),
                    reason="set GPND_SHARED_DATASETS to the shared datasets folder (with ucsd-ped2/UCSDped2) "
                           "to partition the real UCSD Ped2 copy")
def test_real_ped2_partition(tmp_path, monkeypatch):
    overrides = [f"DATASET.SOURCE={PED2_FOLDER}", f"DATASET.PATH={tmp_path / 'folds'}",
                 "MODEL.INPUT_IMAGE_SIZE=32", "VIDEO.PATCH_GRID=[1, 1]"]
    run_partition(monkeypatch, UCSD_CONFIG, overrides)
    cfg = load_config(UCSD_CONFIG, overrides)
    train = read_fold(str(tmp_path / "folds"), 0, cfg)
    test = read_fold(str(tmp_path / "folds"), 1, cfg)

    assert len(train["images"]) == 2550
    assert np.bincount(train["extras"]["clip"])[1:].tolist() == PED2_TRAIN_FRAMES
    assert len(test["images"]) == 2010
    assert np.bincount(test["extras"]["clip"])[1:].tolist() == PED2_TEST_FRAMES
    assert int(test["labels"].sum()) == PED2_ANOMALOUS_FRAMES
    # Clip 1 is anomalous from frame 61 on.
    clip_1 = test["extras"]["clip"] == 1
    assert np.flatnonzero(test["labels"][clip_1])[0] + 1 == 61
    # The pixel masks of the shared copy agree with the .m file on every frame.
    assert np.array_equal(test["extras"]["mask_pixels"] > 0, test["labels"] == 1)
