"""Readers for the raw image data sets: IDX files (MNIST, Fashion-MNIST), COIL-100 and scikit-learn digits.

Each reader returns ``(images, labels)`` with ``images`` a uint8 array of shape (N, C, H, W) at
the configured input size and ``labels`` an int64 array of shape (N,). The COIL-100 reader also
returns per-image extras (the view angle).
"""

import gzip
import logging
import os
import re

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

IDX_IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, columns)
IDX_LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)
IDX_HEADER_BYTES = {IDX_IMAGE_MAGIC: 16, IDX_LABEL_MAGIC: 8}

# The two spellings in circulation: "train-images-idx3-ubyte" and "train-images.idx3-ubyte".
IDX_FILE_STEMS = {
    "train_images": "train-images{sep}idx3-ubyte",
    "train_labels": "train-labels{sep}idx1-ubyte",
    "test_images": "t10k-images{sep}idx3-ubyte",
    "test_labels": "t10k-labels{sep}idx1-ubyte",
}


class DatasetError(ValueError):
    """Raw data set files that are missing, truncated or inconsistent."""


def _find_idx_file(folder, key):
    candidates = []
    for separator in ("-", "."):
        stem = IDX_FILE_STEMS[key].format(sep=separator)
        candidates += [stem, stem + ".gz"]
    for name in candidates:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise DatasetError(f"{folder}: none of {', '.join(candidates)} found; pass the folder that "
                       f"holds the four IDX files")


def read_idx(path):
    """Read one IDX file (gzipped or not) and return its array, checking header and size."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"{path}: cannot be read ({error}); the file is damaged, download it again") from error

    if len(data) < 8:
        raise DatasetError(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[0:4], "big")
    if magic not in IDX_HEADER_BYTES:
        raise DatasetError(f"{path}: magic number {magic:#010x}, expected {IDX_IMAGE_MAGIC:#010x} "
                           f"(images) or {IDX_LABEL_MAGIC:#010x} (labels)")
    header_bytes = IDX_HEADER_BYTES[magic]
    if len(data) < header_bytes:
        raise DatasetError(f"{path}: {len(data)} bytes, too short for the {header_bytes}-byte header")
    dimension_count = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dimension_count))

    expected_bytes = header_bytes + int(np.prod(shape))
    if len(data) != expected_bytes:
        raise DatasetError(f"{path}: header declares shape {shape} ({expected_bytes} bytes with the "
                           f"header) but the file has {len(data)} bytes; it is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape)


def read_idx_pair(images_path, labels_path, class_count):
    """Read an image file and its label file and check that they belong together."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DatasetError(f"{images_path}: expected an image file (3 dimensions), got shape {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{labels_path}: expected a label file (1 dimension), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{labels_path}: {len(labels)} labels for {len(images)} images in "
                           f"{images_path}; the label file does not match the image file")
    if labels.size and labels.max() >= class_count:
        raise DatasetError(f"{labels_path}: label {labels.max()} outside 0..{class_count - 1}")
    return images, labels.astype(np.int64)


def resize_images(images, size):
    """Resize uint8 images (N, C, H, W) to (N, C, size, size) with PIL's bilinear filter."""
    if images.shape[2] == size and images.shape[3] == size:
        return np.ascontiguousarray(images)
    resized = np.empty(images.shape[:2] + (size, size), dtype=np.uint8)
    for index, image in enumerate(images):
        for channel, plane in enumerate(image):
            resized[index, channel] = np.asarray(
                Image.fromarray(plane).resize((size, size), Image.BILINEAR))
    return resized


# Folders where a system package installs the four gzipped IDX files, with the package name.
# Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1) installs them into this folder.
PACKAGE_IDX_FOLDERS = {
    "fmnist": ("/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist"),
}


def _download_idx(name, cache_folder):
    """Download MNIST or Fashion-MNIST with torchvision and return the folder of its IDX files.

    torchvision verifies the MD5 checksum of every file it downloads and reuses files that are
    already in ``cache_folder``.
    """
    import torchvision

    dataset_class = {"mnist": torchvision.datasets.MNIST,
                     "fmnist": torchvision.datasets.FashionMNIST}[name]
    root = os.path.join(cache_folder, name)
    try:
        dataset_class(root=root, train=True, download=True)
        dataset_class(root=root, train=False, download=True)
    except Exception as error:  # torchvision raises RuntimeError, URLError or OSError here
        raise DatasetError(f"downloading {name} with torchvision into {root} failed: {error}") from error
    return os.path.join(root, dataset_class.__name__, "raw")


def resolve_idx_folder(name, source, cache_folder):
    """Return the folder of the IDX files of ``name`` ("mnist" or "fmnist").

    The first of these that applies wins: the ``source`` folder (--source or DATASET.SOURCE),
    the folder of a system package (PACKAGE_IDX_FOLDERS) when it exists, a torchvision download
    into ``cache_folder``. Raises DatasetError naming every option when none works.
    """
    if source:
        if not os.path.isdir(source):
            raise DatasetError(f"source folder {source} not found; pass the folder that holds "
                               f"the four IDX files")
        return source

    package = PACKAGE_IDX_FOLDERS.get(name)
    if package is not None and os.path.isdir(package[0]):
        logger.info("No source folder given; using %s from the %s package", package[0], package[1])
        return package[0]

    logger.info("No source folder given; downloading %s with torchvision into %s", name, cache_folder)
    try:
        return _download_idx(name, cache_folder)
    except DatasetError as error:
        options = ["pass the folder of the four IDX files with --source FOLDER or DATASET.SOURCE"]
        if package is not None:
            options.append(f"install the {package[1]} package, which provides {package[0]} "
                           f"(not found now)")
        options.append("rerun with network access so that torchvision can download the files "
                       "(its checksums are verified)")
        numbered = " ".join(f"({number}) {option}." for number, option in enumerate(options, start=1))
        raise DatasetError(f"no source for {name} works: {error}. Options: {numbered}") from error


def load_idx_dataset(name, source, cache_folder, image_size, class_count=10):
    """Load train and test IDX files of MNIST or Fashion-MNIST, resized to ``image_size``.

    The folder comes from ``resolve_idx_folder``: ``source``, else a system package folder,
    else a torchvision download into ``cache_folder``.
    """
    folder = resolve_idx_folder(name, source, cache_folder)

    parts = []
    for split in ("train", "test"):
        images_path = _find_idx_file(folder, split + "_images")
        labels_path = _find_idx_file(folder, split + "_labels")
        images, labels = read_idx_pair(images_path, labels_path, class_count)
        logger.info("Read %d images of %dx%d from %s", len(images), images.shape[1], images.shape[2], images_path)
        parts.append((images, labels))

    images = np.concatenate([part[0] for part in parts])[:, None]
    labels = np.concatenate([part[1] for part in parts])
    return resize_images(images, image_size), labels


# scikit-learn's digits have 17 grey levels (0..16).
DIGITS_MAX_LEVEL = 16


def load_sklearn_digits(image_size):
    """Load scikit-learn's 1,797 8x8 handwritten digits, scaled to 0..255 and resized."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / DIGITS_MAX_LEVEL)).astype(np.uint8)[:, None]
    return resize_images(images, image_size), digits.target.astype(np.int64)


# COIL-100 file names: object number N from 1, view angle A in degrees (0, 5, ..., 355).
COIL_FILE_PATTERN = re.compile(r"obj(\d+)__(\d+)\.png", re.IGNORECASE)
# How many names of skipped files the log shows.
SKIPPED_NAMES_SHOWN = 5
# PIL image mode for each supported channel count.
PIL_MODES = {1: "L", 3: "RGB"}


def _read_coil_image(path, mode, image_size):
    """Decode one image file, convert it to ``mode`` and resize it to a square of ``image_size``."""
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except OSError as error:  # PIL raises UnidentifiedImageError (an OSError) or OSError for bad data
        raise DatasetError(f"{path}: cannot be decoded as an image ({error}); replace the file with "
                           f"an intact copy or remove it") from error
    # (H, W) for one channel, (H, W, 3) for RGB -> (C, H, W)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _find_coil_files(folder, class_count):
    """Return sorted (object, angle, name) of the COIL-100 files in ``folder``; log the others."""
    entries, skipped, seen = [], [], {}
    for name in sorted(os.listdir(folder)):
        match = COIL_FILE_PATTERN.fullmatch(name)
        if match is None or not os.path.isfile(os.path.join(folder, name)):
            skipped.append(name)
            continue
        number, angle = int(match.group(1)), int(match.group(2))
        if not 1 <= number <= class_count:
            raise DatasetError(f"{os.path.join(folder, name)}: object number {number} is outside "
                               f"1..{class_count}; set DATASET.TOTAL_CLASS_COUNT to the number of objects")
        if (number, angle) in seen:
            raise DatasetError(f"{folder}: {seen[number, angle]} and {name} are both object {number} at "
                               f"angle {angle}; remove one of them")
        seen[number, angle] = name
        entries.append((number, angle, name))
    if skipped:
        logger.warning("Skipped %d entries of %s that are not files named objN__A.png: %s%s",
                       len(skipped), folder, ", ".join(skipped[:SKIPPED_NAMES_SHOWN]),
                       ", ..." if len(skipped) > SKIPPED_NAMES_SHOWN else "")
    return sorted(entries)


def load_coil100(folder, image_size, channels=3, class_count=100):
    """Load COIL-100 from a folder of ``objN__A.png`` files, resized to ``image_size``.

    Returns (images, labels, extras): images uint8 (N, channels, size, size), where 3 channels
    keep RGB and 1 converts to grey levels; labels N - 1; extras {"angle": A}. Files with other
    names are skipped and logged. Raises DatasetError for an image that cannot be decoded, an
    object number outside 1..class_count and for objects without any image.
    """
    if not folder:
        raise DatasetError("no COIL-100 folder given; pass the folder of the objN__A.png files with "
                           "--source FOLDER or DATASET.SOURCE (this project does not download COIL-100)")
    if not os.path.isdir(folder):
        raise DatasetError(f"COIL-100 folder {folder} not found; pass the folder of the objN__A.png files")
    if channels not in PIL_MODES:
        raise DatasetError(f"COIL-100 images can be read with 1 or 3 channels, not {channels}; "
                           f"set MODEL.INPUT_IMAGE_CHANNELS")

    entries = _find_coil_files(folder, class_count)
    if not entries:
        raise DatasetError(f"{folder}: no files named objN__A.png found; pass the COIL-100 image folder")
    numbers = np.array([number for number, _, _ in entries])
    missing = sorted(set(range(1, class_count + 1)) - set(numbers.tolist()))
    if missing:
        raise DatasetError(f"{folder}: no images of {len(missing)} objects, e.g. obj{missing[0]}; the "
                           f"folder is incomplete or DATASET.TOTAL_CLASS_COUNT = {class_count} is too large")

    images = np.empty((len(entries), channels, image_size, image_size), dtype=np.uint8)
    for index, (_, _, name) in enumerate(entries):
        images[index] = _read_coil_image(os.path.join(folder, name), PIL_MODES[channels], image_size)
    labels = (numbers - 1).astype(np.int64)
    angles = np.array([angle for _, angle, _ in entries], dtype=np.int64)

    per_class = np.bincount(labels, minlength=class_count)
    if per_class.min() != per_class.max():
        logger.warning("%s: objects have between %d and %d views (COIL-100 has 72 per object); "
                       "the folder may be incomplete", folder, per_class.min(), per_class.max())
    logger.info("Read %d COIL-100 images of %d objects from %s, resized to %dx%d with %d channels",
                len(images), class_count, folder, image_size, image_size, channels)
    return images, labels, {"angle": angles}
