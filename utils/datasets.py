"""Readers for the raw image data sets: IDX files (MNIST, Fashion-MNIST) and scikit-learn digits.

Each reader returns ``(images, labels)`` with ``images`` a uint8 array of shape (N, C, H, W) at
the configured input size and ``labels`` an int64 array of shape (N,).
"""

import gzip
import logging
import os

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
        raise DatasetError(f"{path}: header says shape {shape} ({expected_bytes} bytes with the "
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


def _download_idx(name, cache_folder):
    """Download MNIST or Fashion-MNIST with torchvision and return the folder of its IDX files."""
    import torchvision

    dataset_class = {"mnist": torchvision.datasets.MNIST,
                     "fmnist": torchvision.datasets.FashionMNIST}[name]
    root = os.path.join(cache_folder, name)
    try:
        # torchvision verifies the MD5 checksum of every file it downloads.
        dataset_class(root=root, train=True, download=True)
        dataset_class(root=root, train=False, download=True)
    except Exception as error:  # torchvision raises RuntimeError, URLError or OSError here
        raise DatasetError(f"downloading {name} into {root} failed ({error}); download the four "
                           f"IDX files yourself and pass their folder with --source FOLDER "
                           f"(or DATASET.SOURCE in the config)") from error
    return os.path.join(root, dataset_class.__name__, "raw")


def load_idx_dataset(name, source, cache_folder, image_size, class_count=10):
    """Load train and test IDX files of MNIST or Fashion-MNIST, resized to ``image_size``.

    ``source`` is the folder of the IDX files; an empty value downloads them into
    ``cache_folder`` with torchvision.
    """
    if source:
        if not os.path.isdir(source):
            raise DatasetError(f"source folder {source} not found; pass the folder that holds "
                               f"the four IDX files")
        folder = source
    else:
        logger.info("No source folder given; downloading %s with torchvision into %s", name, cache_folder)
        folder = _download_idx(name, cache_folder)

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
