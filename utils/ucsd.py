"""Reader and partition of the UCSD anomaly detection data sets (Ped1, Ped2) in their official layout.

Layout of the folder given as DATASET.SOURCE (for example ``UCSDped2``)::

    Train/Train001/001.tif ...     training clips, normal frames only
    Test/Test001/001.tif ...       test clips
    Test/UCSDped2.m                frame-level ground truth, one entry per test clip, e.g.
                                   TestVideoFile{end+1}.gt_frame = [61:180];
    Test/Test001_gt/001.bmp ...    pixel masks (non-zero = anomalous), for some or all test clips

Frames and masks may be ``.tif``, ``.jpg``, ``.png`` or ``.bmp`` files named by their frame
number, with an optional prefix of letters (``001.tif``, ``frame001.png``). They are ordered by
that number, so frame 2 comes before frame 10, and each clip must be numbered 1..N without gaps
because the ground truth counts frames from 1. Hidden files such as ``._001.tif`` and files of
other types such as ``Thumbs.db`` are ignored.

Each record is one patch of one frame (VIDEO.INPUT "frames"), of the difference between a frame
and the one before it ("differences"), of both as two greyscale channels, frame first
("frames_and_differences", MODEL.INPUT_IMAGE_CHANNELS 2), or of that difference and the one
VIDEO.PAIR_STEP frames earlier as two channels ("difference_pairs"): the frame is cut into
VIDEO.PATCH_GRID rows x columns of equal patches (one patch, the whole frame, for [1, 1]),
converted to MODEL.INPUT_IMAGE_CHANNELS channels (1 = greyscale) and each patch resized to
MODEL.INPUT_IMAGE_SIZE squared. A whole 360x240 Ped2 frame is therefore squeezed
horizontally. An optional threshold (VIDEO.DIFFERENCE_THRESHOLD) first turns each
full-resolution difference into a mask of moving pixels. Difference patches may then be blurred
and scaled (VIDEO.DIFFERENCE_BLUR, VIDEO.DIFFERENCE_GAIN). Every patch gets the label of its
frame, because the evaluation is frame-level.

Fold layout (DATASET.PROTOCOL "fixed_split", FOLDS_COUNT 2, TOTAL_CLASS_COUNT 2):

    fold 0 (TRAIN_FOLD)   every training frame, label 0; the model is trained on this fold
    fold 1 (TEST_FOLD)    every test frame, label 0 (normal) or 1 (anomalous, from the .m file)

In GPND's terms fold 1 is the test fold and label 0 the only inlier class, so the model lives
in the run folder ``fold_1/set_0`` of the results tree. There is no validation fold, because
the frame-level metrics need no threshold. The fold records' ``extras`` hold, per record:

    clip         clip number, the NNN of TrainNNN or TestNNN
    frame        frame number, 1-based as in the ground truth
    patch        patch index, row-major in VIDEO.PATCH_GRID
    mask_pixels  anomalous mask pixels inside the patch, at frame resolution; -1 without a mask
"""

import logging
import os
import re

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from utils.config import MAX_DIFFERENCE_THRESHOLD, TWO_CHANNEL_INPUTS
from utils.datasets import DatasetError
from utils.folds import write_single_fold

logger = logging.getLogger(__name__)

TRAIN_FOLD = 0
TEST_FOLD = 1
NORMAL_LABEL = 0
ANOMALOUS_LABEL = 1
# Index of the one inlier set (the normal class) in run folder and model file names.
INLIER_SET_INDEX = 0
EXTRAS_NAMES = ["clip", "frame", "patch", "mask_pixels"]
NO_MASK = -1

FRAME_EXTENSIONS = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")
# A frame file's stem: an optional prefix of letters or underscores, then the frame number.
FRAME_STEM = re.compile(r"^[A-Za-z_]*(\d+)$")
TRAIN_CLIP_NAME = re.compile(r"^Train(\d+)$")
TEST_CLIP_NAME = re.compile(r"^Test(\d+)$")
MASK_FOLDER_SUFFIX = "_gt"
# VIDEO.INPUT values: what each record shows.
INPUT_FRAMES = "frames"
INPUT_DIFFERENCES = "differences"
INPUT_FRAMES_AND_DIFFERENCES = "frames_and_differences"
INPUT_DIFFERENCE_PAIRS = "difference_pairs"
INPUT_MODES = (INPUT_FRAMES, INPUT_DIFFERENCES, INPUT_FRAMES_AND_DIFFERENCES, INPUT_DIFFERENCE_PAIRS)
# Preprocessing settings added after the first folds were written, with the value those folds
# were made with. A fold file that does not record one of them was made with this value.
PREPROCESSING_DEFAULTS = {"difference_blur": 0.0, "difference_gain": 1.0, "pair_step": 1, "difference_threshold": 0}
# Value of a moving pixel in a thresholded difference (VIDEO.DIFFERENCE_THRESHOLD): white.
MOVING_PIXEL = 255
# Edge handling of the difference blur: pixels outside a patch repeat its border pixels, so
# the blur neither darkens the border nor mixes in a neighbouring patch.
BLUR_MODE = "nearest"

# Lines of the ground-truth .m file. MATLAB allows spaces around every token and an optional
# semicolon, and `end+1` appends to the cell array.
GT_INIT_LINE = re.compile(r"^TestVideoFile\s*=\s*\{\s*\}\s*;?$")
GT_ENTRY_LINE = re.compile(
    r"^TestVideoFile\s*\{\s*(?P<index>end\s*\+\s*1|\d+)\s*\}\s*\.\s*gt_frame\s*=\s*\[(?P<ranges>[^\]]*)\]\s*;?$")
GT_ITEM = re.compile(r"^(\d+)(?::(\d+))?$")
GT_EXPECTED_FORM = "TestVideoFile{end+1}.gt_frame = [first:last, first:last];"


class UcsdError(DatasetError):
    """UCSD files that are missing, malformed or inconsistent with each other."""


# ---------------------------------------------------------------------------------------------
# Ground truth


def _parse_ranges(text, where):
    """Parse the inside of ``[...]``: items ``first:last`` or ``frame``, separated by commas or spaces."""
    # "61 : 180" -> "61:180", so that spaces only separate items.
    text = re.sub(r"\s*:\s*", ":", text.strip())
    ranges = []
    for item in re.split(r"[\s,]+", text):
        if not item:
            continue
        match = GT_ITEM.match(item)
        if match is None:
            raise UcsdError(f"{where}: invalid frame range {item!r}; expected first:last or a single "
                            f"frame number, as in {GT_EXPECTED_FORM}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if first < 1 or last < first:
            raise UcsdError(f"{where}: invalid frame range {item!r}; frames are numbered from 1 and "
                            f"the first frame must not come after the last")
        ranges.append((first, last))
    return ranges


def parse_ground_truth(text, source="ground truth"):
    """Parse the text of a UCSD ``.m`` file into {clip number: [(first, last), ...]}.

    Clip numbers and frames are 1-based and ranges inclusive, as in MATLAB. Entries are either
    ``TestVideoFile{end+1}`` (the next clip) or ``TestVideoFile{k}``. ``%`` starts a comment.
    Raises UcsdError naming the line for anything else, a repeated clip or an invalid range.
    """
    entries = {}
    for line_number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("%", 1)[0].strip()
        if not line or GT_INIT_LINE.match(line):
            continue
        where = f"{source}, line {line_number}"
        match = GT_ENTRY_LINE.match(line)
        if match is None:
            raise UcsdError(f"{where}: cannot parse {raw_line.strip()!r}; expected a line such as "
                            f"{GT_EXPECTED_FORM}")
        index_text = match.group("index")
        clip = max(entries, default=0) + 1 if index_text.startswith("end") else int(index_text)
        if clip < 1:
            raise UcsdError(f"{where}: clip index {clip} is invalid; MATLAB cell indices start at 1")
        if clip in entries:
            raise UcsdError(f"{where}: clip {clip} already has a ground-truth entry")
        entries[clip] = _parse_ranges(match.group("ranges"), where)
    if not entries:
        raise UcsdError(f"{source}: no ground-truth entries found; expected lines such as {GT_EXPECTED_FORM}")
    return entries


def find_ground_truth_file(test_folder):
    """Return the path of the one ``.m`` file in the Test folder (``UCSDped2.m`` for Ped2)."""
    candidates = sorted(name for name in os.listdir(test_folder)
                        if name.lower().endswith(".m") and not name.startswith("."))
    if len(candidates) != 1:
        found = ", ".join(candidates) if candidates else "none"
        raise UcsdError(f"{test_folder}: expected exactly one ground-truth .m file (e.g. UCSDped2.m), found {found}")
    return os.path.join(test_folder, candidates[0])


def frame_labels(ranges, frame_count, clip_name, source):
    """Return the labels (0 normal, 1 anomalous) of a clip's frames from its ground-truth ranges."""
    labels = np.full(frame_count, NORMAL_LABEL, dtype=np.int64)
    for first, last in ranges:
        if last > frame_count:
            raise UcsdError(f"{clip_name}: ground-truth range {first}:{last} in {source} lies outside the "
                            f"clip, which has {frame_count} frames; check the .m file against the frames")
        labels[first - 1:last] = ANOMALOUS_LABEL
    return labels


def match_ground_truth(test_clips, ground_truth, source):
    """Check that every test clip has a ground-truth entry and every entry has a clip."""
    clip_numbers = {number for number, _ in test_clips}
    for number, folder in test_clips:
        if number not in ground_truth:
            raise UcsdError(f"{os.path.basename(folder)}: no ground-truth entry in {source} (it has entries "
                            f"for clips {sorted(ground_truth)}); add the clip's gt_frame line or remove the clip")
    extra = sorted(set(ground_truth) - clip_numbers)
    if extra:
        raise UcsdError(f"{source}: ground-truth entries for clips {extra} have no Test folder "
                        f"(found clips {sorted(clip_numbers)}); the .m file does not match the frames")


# ---------------------------------------------------------------------------------------------
# Folders and frame files


def test_clip_name(clip):
    """Return the folder name of test clip number ``clip`` in the official layout, e.g. Test001."""
    return f"Test{int(clip):03d}"



def list_numbered_images(folder):
    """Return [(frame number, path)] of the image files in ``folder``, sorted by number.

    Hidden files and files that are not images are skipped. Raises UcsdError for two files with
    the same number; an image file without a number is skipped with a warning.
    """
    numbered = {}
    unnumbered = []
    for name in os.listdir(folder):
        stem, extension = os.path.splitext(name)
        if name.startswith(".") or extension.lower() not in FRAME_EXTENSIONS:
            continue
        match = FRAME_STEM.match(stem)
        if match is None:
            unnumbered.append(name)
            continue
        number = int(match.group(1))
        if number in numbered:
            raise UcsdError(f"{folder}: {os.path.basename(numbered[number])} and {name} both have frame "
                            f"number {number}; keep one of them")
        numbered[number] = os.path.join(folder, name)
    if unnumbered:
        logger.warning("%s: skipped %d image files without a frame number, e.g. %s",
                       folder, len(unnumbered), sorted(unnumbered)[0])
    return sorted(numbered.items())


def check_frame_numbers(numbers, folder):
    """Raise UcsdError unless ``numbers`` (sorted) are exactly 1..N."""
    if not numbers:
        raise UcsdError(f"{folder}: no frame files ({', '.join(FRAME_EXTENSIONS)}) found")
    expected = range(1, len(numbers) + 1)
    if list(numbers) != list(expected):
        missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))[:10]
        raise UcsdError(f"{folder}: frames must be numbered 1..N without gaps because the ground truth "
                        f"counts frames from 1; found {numbers[0]}..{numbers[-1]} for {len(numbers)} "
                        f"files (missing e.g. {missing})")


def list_clips(folder, name_pattern):
    """Return [(clip number, path)] of the sub-folders of ``folder`` whose name matches the pattern."""
    clips = []
    for name in os.listdir(folder):
        match = name_pattern.match(name)
        if match and os.path.isdir(os.path.join(folder, name)):
            clips.append((int(match.group(1)), os.path.join(folder, name)))
    if not clips:
        raise UcsdError(f"{folder}: no clip folders named like {name_pattern.pattern} found")
    return sorted(clips)


def dataset_folders(source):
    """Return the Train and Test folders of the UCSD folder ``source``."""
    if not source:
        raise UcsdError("DATASET.SOURCE is empty; pass the UCSD folder that contains Train/ and Test/ "
                        "with --source (e.g. --source /path/to/UCSDped2)")
    folders = [os.path.join(source, "Train"), os.path.join(source, "Test")]
    for folder in folders:
        if not os.path.isdir(folder):
            raise UcsdError(f"{folder} not found; pass the UCSD folder that contains Train/ and Test/ "
                            f"(e.g. UCSDped2) as --source")
    return folders


# ---------------------------------------------------------------------------------------------
# Frames, patches and masks


def patch_boxes(height, width, grid):
    """Return the (top, bottom, left, right) pixel boxes of a rows x columns grid, row-major.

    Boundaries are rounded, so patches differ by at most one pixel when the frame size is not
    a multiple of the grid.
    """
    rows, columns = grid
    if rows > height or columns > width:
        raise UcsdError(f"VIDEO.PATCH_GRID {list(grid)} has more cells than the {width}x{height} frame has pixels")
    row_edges = np.round(np.linspace(0, height, rows + 1)).astype(int)
    column_edges = np.round(np.linspace(0, width, columns + 1)).astype(int)
    return [(row_edges[row], row_edges[row + 1], column_edges[column], column_edges[column + 1])
            for row in range(rows) for column in range(columns)]


def read_frame(path, channels):
    """Read one frame as a PIL image in mode "L" (1 channel) or "RGB" (3 channels)."""
    try:
        with Image.open(path) as image:
            return image.convert("L" if channels == 1 else "RGB")
    except OSError as error:
        raise UcsdError(f"{path}: cannot be read as an image ({error})") from error


def cut_patches(frame, boxes, size):
    """Cut a PIL frame into patches resized to size x size; returns uint8 (P, C, size, size)."""
    patches = []
    for top, bottom, left, right in boxes:
        patch = frame.crop((left, top, right, bottom)).resize((size, size), Image.BILINEAR)
        array = np.asarray(patch)
        patches.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return np.stack(patches)


def frame_differences(frames, threshold=0):
    """Return |frame t - frame t-1| per pixel of a clip's PIL frames, as PIL frames of the same mode.

    Frame 1 has no predecessor and takes frame 2's difference, so every frame keeps a record
    and the ground truth still lines up. A one-frame clip gets a difference of zero. With a
    ``threshold`` above 0 (VIDEO.DIFFERENCE_THRESHOLD), differences above it become
    MOVING_PIXEL and the others 0.
    """
    arrays = np.stack([np.asarray(frame, dtype=np.int16) for frame in frames])
    differences = np.abs(np.diff(arrays, axis=0)).astype(np.uint8)
    if threshold > 0:
        differences = np.where(differences > threshold, MOVING_PIXEL, 0).astype(np.uint8)
    first = differences[:1] if len(differences) else np.zeros_like(arrays[:1], dtype=np.uint8)
    differences = np.concatenate([first, differences])
    return [Image.fromarray(difference) for difference in differences]


def earlier_differences(differences, step):
    """Return, for each frame t, the difference of frame t - step, or frame 1's for t <= step.

    ``differences`` contains one difference per frame (``frame_differences``), so the returned
    list lines up with the clip's frames as well.
    """
    return [differences[max(index - step, 0)] for index in range(len(differences))]


def soften_differences(patches, blur, gain):
    """Blur and scale uint8 difference patches (N, C, S, S), returning uint8 of the same shape.

    Each patch is smoothed on its own with a Gaussian of standard deviation ``blur`` pixels of
    the patch (VIDEO.DIFFERENCE_BLUR, where 0 skips it), multiplied by ``gain``
    (VIDEO.DIFFERENCE_GAIN), rounded and clipped to [0, 255]. Smoothing turns the one-pixel
    outlines of a moving person into blobs that the decoder can reproduce. The gain then
    spreads the faint result over more of the uint8 range, so that rounding loses less.
    """
    if blur == 0 and gain == 1:
        return patches
    values = patches.astype(np.float32)
    if blur > 0:
        values = gaussian_filter(values, sigma=(0, 0, blur, blur), mode=BLUR_MODE)
    return np.clip(np.rint(values * gain), 0, 255).astype(np.uint8)


def read_clip(folder, channels, size, grid, input_mode=INPUT_FRAMES, difference_blur=0.0, difference_gain=1.0,
              pair_step=1, difference_threshold=0):
    """Read a clip's frames; returns (patches (F * P, C, size, size) uint8, frame count, boxes, frame size).

    ``input_mode`` is VIDEO.INPUT: the frames themselves, their differences to the previous
    frame (``frame_differences``, taken and thresholded at ``difference_threshold`` at frame
    resolution before the patches are cut), both as channels 0 and 1 of a two-channel record,
    or the difference and the one ``pair_step`` frames earlier (VIDEO.PAIR_STEP) as channels 0
    and 1. The two-channel inputs need ``channels`` 2. Difference patches are then blurred and
    scaled by ``soften_differences``, and frame patches are not. Patches are ordered by frame,
    then row-major within the frame. All frames of a clip must have the same size.
    """
    if input_mode not in INPUT_MODES:
        raise UcsdError(f"unknown VIDEO.INPUT {input_mode!r}; expected one of {list(INPUT_MODES)}")
    if not 0 <= difference_threshold <= MAX_DIFFERENCE_THRESHOLD:
        raise UcsdError(f"{folder}: VIDEO.DIFFERENCE_THRESHOLD {difference_threshold} is outside "
                        f"0..{MAX_DIFFERENCE_THRESHOLD}. Set a grey level in that range, or 0 for no threshold")
    if pair_step < 1:
        raise UcsdError(f"{folder}: VIDEO.PAIR_STEP {pair_step} is below 1. It counts the frames between the "
                        f"two differences, so set 1 or more")
    two_channel = input_mode in TWO_CHANNEL_INPUTS
    if two_channel != (channels == 2):
        raise UcsdError(f"VIDEO.INPUT {input_mode!r} with MODEL.INPUT_IMAGE_CHANNELS {channels}: the two-channel "
                        f"inputs need 2 channels, and 2 channels need VIDEO.INPUT "
                        f"{' or '.join(repr(mode) for mode in TWO_CHANNEL_INPUTS)}")
    numbered = list_numbered_images(folder)
    check_frame_numbers([number for number, _ in numbered], folder)
    frames = []
    for _, path in numbered:
        # The two-channel input is built from greyscale frames.
        frame = read_frame(path, 1 if two_channel else channels)
        if frames and frame.size != frames[0].size:
            raise UcsdError(f"{path}: frame size {frame.size[0]}x{frame.size[1]} differs from the clip's first "
                            f"frame, {frames[0].size[0]}x{frames[0].size[1]}")
        frames.append(frame)
    frame_size = frames[0].size
    boxes = patch_boxes(frames[0].height, frames[0].width, grid)
    if input_mode == INPUT_FRAMES:
        return np.concatenate([cut_patches(frame, boxes, size) for frame in frames]), len(frames), boxes, frame_size

    # Each frame's difference patches, blurred and scaled: F arrays of (P, 1, S, S)
    differences = [soften_differences(cut_patches(difference, boxes, size), difference_blur, difference_gain)
                   for difference in frame_differences(frames, difference_threshold)]
    if input_mode == INPUT_DIFFERENCES:
        patches = differences
    elif input_mode == INPUT_FRAMES_AND_DIFFERENCES:
        # (P, 1, S, S) frame patches and difference patches -> (P, 2, S, S)
        patches = [np.concatenate([cut_patches(frame, boxes, size), difference], axis=1)
                   for frame, difference in zip(frames, differences)]
    else:
        if pair_step >= len(frames):
            raise UcsdError(f"{folder}: VIDEO.PAIR_STEP {pair_step} is not below the clip's {len(frames)} frames, so "
                            f"every record would repeat frame 1's difference. Use a smaller step")
        # (P, 1, S, S) difference patches of frame t and of frame t - pair_step -> (P, 2, S, S)
        patches = [np.concatenate([difference, earlier], axis=1)
                   for difference, earlier in zip(differences, earlier_differences(differences, pair_step))]
    return np.concatenate(patches), len(frames), boxes, frame_size


def read_mask_pixels(folder, frame_count, boxes, frame_size):
    """Count anomalous mask pixels per frame and patch; returns int64 (frame_count, P)."""
    masks = list_numbered_images(folder)
    numbers = [number for number, _ in masks]
    check_frame_numbers(numbers, folder)
    if len(numbers) != frame_count:
        raise UcsdError(f"{folder}: {len(numbers)} masks for a clip of {frame_count} frames; every frame "
                        f"needs a mask, or remove the mask folder")
    counts = np.zeros((frame_count, len(boxes)), dtype=np.int64)
    for index, (_, path) in enumerate(masks):
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L")) > 0
        if (mask.shape[1], mask.shape[0]) != tuple(frame_size):
            raise UcsdError(f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the frame size "
                            f"{frame_size[0]}x{frame_size[1]}")
        for patch, (top, bottom, left, right) in enumerate(boxes):
            counts[index, patch] = np.count_nonzero(mask[top:bottom, left:right])
    return counts


def _clip_records(clip, patches, frame_count, patch_count, labels, mask_pixels):
    """Return (images, labels, extras) of one clip with one record per patch."""
    frames = np.repeat(np.arange(1, frame_count + 1), patch_count)
    extras = {
        "clip": np.full(len(frames), clip, dtype=np.int64),
        "frame": frames,
        "patch": np.tile(np.arange(patch_count), frame_count),
        "mask_pixels": mask_pixels.reshape(-1),
    }
    return patches, np.repeat(labels, patch_count), extras


def _concatenate(parts):
    images = np.concatenate([part[0] for part in parts])
    labels = np.concatenate([part[1] for part in parts]).astype(np.int64)
    extras = {name: np.concatenate([part[2][name] for part in parts]) for name in EXTRAS_NAMES}
    return images, labels, extras


def _log_mask_agreement(clip_name, labels, mask_pixels):
    """Log how many frames the pixel masks and the frame-level ground truth disagree on."""
    mask_anomalous = mask_pixels.sum(axis=1) > 0
    disagreeing = int(np.count_nonzero(mask_anomalous != (labels == ANOMALOUS_LABEL)))
    if disagreeing:
        logger.warning("%s: pixel masks and frame-level ground truth disagree on %d of %d frames; "
                       "the labels follow the .m file", clip_name, disagreeing, len(labels))


def load_ucsd(source, channels, size, grid, input_mode=INPUT_FRAMES, difference_blur=0.0, difference_gain=1.0,
              pair_step=1, difference_threshold=0):
    """Read a UCSD data set; returns {"train": (images, labels, extras), "test": (...)}.

    ``input_mode`` is VIDEO.INPUT (one of INPUT_MODES), and ``difference_blur``,
    ``difference_gain``, ``pair_step`` and ``difference_threshold`` are VIDEO.DIFFERENCE_BLUR,
    VIDEO.DIFFERENCE_GAIN, VIDEO.PAIR_STEP and VIDEO.DIFFERENCE_THRESHOLD, as ``read_clip``
    describes.

    Raises UcsdError naming the clip when the ground truth does not match the test clips.
    """
    train_folder, test_folder = dataset_folders(source)
    ground_truth_path = find_ground_truth_file(test_folder)
    with open(ground_truth_path, encoding="utf-8", errors="replace") as stream:
        ground_truth = parse_ground_truth(stream.read(), ground_truth_path)
    test_clips = list_clips(test_folder, TEST_CLIP_NAME)
    match_ground_truth(test_clips, ground_truth, ground_truth_path)

    patch_count = grid[0] * grid[1]
    train_parts = []
    for clip, folder in list_clips(train_folder, TRAIN_CLIP_NAME):
        patches, frame_count, _, _ = read_clip(folder, channels, size, grid, input_mode, difference_blur,
                                               difference_gain, pair_step, difference_threshold)
        labels = np.full(frame_count, NORMAL_LABEL, dtype=np.int64)
        no_masks = np.full((frame_count, patch_count), NO_MASK, dtype=np.int64)
        train_parts.append(_clip_records(clip, patches, frame_count, patch_count, labels, no_masks))
        logger.debug("%s: %d frames", os.path.basename(folder), frame_count)

    test_parts = []
    for clip, folder in test_clips:
        clip_name = os.path.basename(folder)
        patches, frame_count, boxes, frame_size = read_clip(folder, channels, size, grid, input_mode,
                                                            difference_blur, difference_gain, pair_step,
                                                            difference_threshold)
        labels = frame_labels(ground_truth[clip], frame_count, clip_name, ground_truth_path)
        mask_folder = folder + MASK_FOLDER_SUFFIX
        if os.path.isdir(mask_folder):
            mask_pixels = read_mask_pixels(mask_folder, frame_count, boxes, frame_size)
            _log_mask_agreement(clip_name, labels, mask_pixels)
        else:
            mask_pixels = np.full((frame_count, patch_count), NO_MASK, dtype=np.int64)
        test_parts.append(_clip_records(clip, patches, frame_count, patch_count, labels, mask_pixels))
        logger.debug("%s: %d frames, %d anomalous", clip_name, frame_count, int(labels.sum()))

    loaded = {"train": _concatenate(train_parts), "test": _concatenate(test_parts)}
    for name, parts in [("train", train_parts), ("test", test_parts)]:
        images, labels, _ = loaded[name]
        logger.info("Read %s: %d clips, %d frames (%d anomalous), %d patches per frame",
                    name, len(parts), len(images) // patch_count, int(labels.sum()) // patch_count, patch_count)
    return loaded


def load_ucsd_for_config(cfg):
    """Read the UCSD folder DATASET.SOURCE with the preprocessing of ``cfg`` (for partition_main)."""
    if cfg.DATASET.PROTOCOL != "fixed_split" or cfg.DATASET.TOTAL_CLASS_COUNT != 2:
        raise UcsdError(f"UCSD needs DATASET.PROTOCOL fixed_split and DATASET.TOTAL_CLASS_COUNT 2 (normal, "
                        f"anomalous); got {cfg.DATASET.PROTOCOL!r} and {cfg.DATASET.TOTAL_CLASS_COUNT}. "
                        f"Start from configs/ucsd.yaml")
    return load_ucsd(cfg.DATASET.SOURCE, cfg.MODEL.INPUT_IMAGE_CHANNELS, cfg.MODEL.INPUT_IMAGE_SIZE,
                     cfg.VIDEO.PATCH_GRID, cfg.VIDEO.INPUT, cfg.VIDEO.DIFFERENCE_BLUR, cfg.VIDEO.DIFFERENCE_GAIN,
                     cfg.VIDEO.PAIR_STEP, cfg.VIDEO.DIFFERENCE_THRESHOLD)


def preprocessing_settings(cfg):
    """Return the VIDEO settings that shape a fold's records, stored in and checked against fold files."""
    return {"input": cfg.VIDEO.INPUT, "patch_grid": list(cfg.VIDEO.PATCH_GRID),
            "difference_blur": float(cfg.VIDEO.DIFFERENCE_BLUR), "difference_gain": float(cfg.VIDEO.DIFFERENCE_GAIN),
            "pair_step": int(cfg.VIDEO.PAIR_STEP), "difference_threshold": int(cfg.VIDEO.DIFFERENCE_THRESHOLD)}


def recorded_preprocessing(record):
    """Return the VIDEO settings a fold record was made with, filling PREPROCESSING_DEFAULTS for older files."""
    return {**PREPROCESSING_DEFAULTS, **record.get("preprocessing", {})}


def write_ucsd_folds(cfg, folder, loaded):
    """Write fold 0 (training frames) and fold 1 (test frames) of ``load_ucsd``'s output."""
    for fold, name in [(TRAIN_FOLD, "train"), (TEST_FOLD, "test")]:
        images, labels, extras = loaded[name]
        path = write_single_fold(folder, cfg.DATASET.NAME, fold, cfg.DATASET.FOLDS_COUNT, cfg.DATASET.SEED,
                                 images, labels, extras, preprocessing=preprocessing_settings(cfg))
        logger.info("Wrote %s: %d %s records, %d anomalous", path, len(images), name, int(labels.sum()))
