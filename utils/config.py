"""Configuration: one schema of defaults, merged with a dataset YAML file and then the command line.

Every key that a run can use is declared in ``DEFAULTS`` below, with its default value, which
also fixes its type. Loading is strict. An unknown key, a value of the wrong type or an invalid
value raises ``ConfigError`` before any work starts. The message names the key, the value, the
file and the valid choices, and for an unknown key the closest known key.
"""

import copy
import difflib
import logging
import math
import os

import yaml

logger = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The defaults follow the published GPND MNIST setup: latent size 16, 80 epochs, batch 128,
# Adam with lr 0.002 and betas 0.5/0.999, lr divided by 4 every 30 epochs, all three score
# terms, mul 0.2. The network differs: the light width-32 one had a higher mean AUC and F1
# than GPND's width-128 one in the MNIST fold-0 ablation of docs/BENCHMARKS.md (5 epochs)
# and trains 7x faster per epoch. Noisy fakes lowered both and stay off. Dropping the Jacobian
# term and mul 1.0 helped slightly at 5 epochs but not at 40, so the score stays GPND's.
# NOTE: the ablation ran on MNIST only; the other data sets use the same defaults.
DEFAULTS = {
    "DATASET": {
        # Short name used in file names and in the results table.
        "NAME": "mnist",
        # Folder of the fold files; relative paths are taken from the repository root.
        "PATH": "data/mnist",
        # Folder with the raw data set files; empty means "download or use a known location".
        "SOURCE": "",
        # Folder that downloads are cached in; relative to the repository root.
        "CACHE": "cache",
        "TOTAL_CLASS_COUNT": 10,
        "FOLDS_COUNT": 5,
        # Seed of the shuffle before the per-class split into folds.
        "SEED": 0,
        # "folds": GPND's rotating protocol over FOLDS_COUNT class-stratified folds (test fold k,
        # validation fold k+1, training on the rest). "fixed_split": a data set with a fixed
        # training set (fold 0, normal data only) and test set (fold 1) and no validation
        # set, as in the video benchmarks (UCSD Ped2). FOLDS_COUNT must then be 2.
        "PROTOCOL": "folds",
    },
    "MODEL": {
        # "light": first layer WIDTH channels, doubling per layer. "gpnd": the published
        # network, whose layer widths are fixed multiples of WIDTH (128 in the GPND paper, NeurIPS 2018).
        "ARCH": "light",
        "WIDTH": 32,
        "LATENT_SIZE": 16,
        "INPUT_IMAGE_SIZE": 32,
        "INPUT_IMAGE_CHANNELS": 1,
        # Depthwise separable inner convolutions (see net.py): about 9x fewer multiply-accumulates
        # at width 32, but only 1.43x faster per epoch in one 2-core CPU run on MNIST digits 0-3,
        # and a lower MNIST AUC (docs/BENCHMARKS.md).
        "SEPARABLE": False,
    },
    "TRAIN": {
        "EPOCH_COUNT": 80,
        "BATCH_SIZE": 128,
        "BASE_LEARNING_RATE": 0.002,
        "ADAM_BETA1": 0.5,
        "ADAM_BETA2": 0.999,
        # The learning rate of every optimiser is divided by LR_DECAY_FACTOR from epoch
        # LR_DECAY_EPOCHS on (epochs counted from 1, as the logs print them), and again at each
        # further multiple of LR_DECAY_EPOCHS. So LR_DECAY_EPOCHS - 1 epochs run at the base rate.
        "LR_DECAY_EPOCHS": 30,
        "LR_DECAY_FACTOR": 4.0,
        # Weights of the two terms of the encoder+decoder update.
        "RECONSTRUCTION_WEIGHT": 2.0,
        "LATENT_ADVERSARIAL_WEIGHT": 1.0,
        "SEED": 0,
        # Save reconstruction and sample grids every this many epochs (and after the last).
        "IMAGE_GRID_EVERY": 1,
        # false skips the image discriminator and the decoder's update against it, so only the
        # latent codes are trained adversarially. On Ped2 that trained 2.5x faster but lowered
        # the micro AUC from 0.8747-0.8837 to 0.8677 (docs/BENCHMARKS.md).
        "IMAGE_ADVERSARIAL": True,
        # Noisy fakes (the 2025 revision's "bad-quality path"): the image discriminator also sees
        # real images corrupted with noise as fakes, pushing the decoder towards clean images.
        "NOISY_FAKES": False,
        # "gaussian": add N(0, NOISE_LEVEL^2) per pixel; "salt_pepper": set a NOISE_LEVEL share
        # of pixels to 0 or 1. Pixels are clipped to [0, 1] afterwards.
        "NOISE_TYPE": "gaussian",
        "NOISE_LEVEL": 0.2,
    },
    "TEST": {
        "BATCH_SIZE": 1024,
        "HISTOGRAM_BINS": 30,
        # Scale of the reconstruction-distance dimension count, N = (D - latent size) * MUL.
        "MUL": 0.2,
        "USE_LATENT_TERM": True,
        "USE_RECONSTRUCTION_TERM": True,
        "USE_JACOBIAN_TERM": True,
        "PERCENTAGES": [10, 20, 30, 40, 50],
        # Seed of the generator that builds the outlier-percentage sets.
        "SEED": 0,
    },
    "RUN": {
        # "auto" takes CUDA when it is available, else the CPU.
        "DEVICE": "auto",
        # Root of the results tree; relative paths are taken from the repository root.
        "OUTPUT_DIR": "results",
        # Folds and inlier sets to run; an empty INLIER_SETS means every single class.
        "FOLDS": [0, 1, 2, 3, 4],
        "INLIER_SETS": [],
        # Random inlier sets, as in GPND's COIL-100 experiments: each [inlier class count,
        # outlier percentage] pair is drawn RANDOM_DRAW_COUNT times, and each draw is evaluated
        # at its own percentage only (TEST.PERCENTAGES is then unused). Empty: INLIER_SETS.
        "RANDOM_INLIER_SETS": [],
        "RANDOM_DRAW_COUNT": 30,
        # Seed of the draws. Draw d of a pair with inlier count n depends only on this seed,
        # n and d, so changing RANDOM_DRAW_COUNT keeps the existing draws.
        "RANDOM_DRAW_SEED": 0,
        # Retrain or rescore even when the model or the result already exists.
        "FORCE": False,
        # 0 keeps torch's default thread count.
        "THREADS": 0,
        # On CUDA, use deterministic cuDNN and cuBLAS kernels (a little slower) so that a run
        # repeats on the same GPU and software. CPU runs repeat exactly either way.
        "DETERMINISTIC": True,
        "PROGRESS_BAR": True,
    },
    # Settings of video data sets (DATASET.PROTOCOL "fixed_split"). Image data sets ignore them.
    # Frames are converted to MODEL.INPUT_IMAGE_CHANNELS channels (1 = greyscale) and every
    # patch is resized to MODEL.INPUT_IMAGE_SIZE.
    "VIDEO": {
        # Rows and columns of equal patches cut from each frame. [1, 1] uses the whole frame.
        # A frame's score is the minimum over its patches (the least likely patch).
        "PATCH_GRID": [1, 1],
        # "frames": each record is a frame (or patch). "differences": each record is |frame t -
        # frame t-1| per pixel (frame 1 takes frame 2's), so the model learns how normal scenes
        # move. A cyclist or a cart moves faster than a walker and leaves a larger trace.
        # "frames_and_differences": two channels, the greyscale frame and that difference, so the
        # model gets both what moves and what it looks like. Needs MODEL.INPUT_IMAGE_CHANNELS 2.
        # "difference_pairs": two channels, that difference and the one VIDEO.PAIR_STEP frames
        # earlier. A walker's two differences nearly coincide, and a faster cyclist's lie further
        # apart, so the pair shows speed as well as the amount of motion. Needs 2 channels.
        "INPUT": "frames",
        # Frames between the two differences of VIDEO.INPUT "difference_pairs" (1 = the
        # difference of the frame before). Only for that input.
        "PAIR_STEP": 1,
        # Standard deviation, in pixels of a patch, of a Gaussian blur applied to every difference
        # patch (0 keeps them sharp). Blurring turns one-pixel motion outlines into blobs that the
        # decoder can reproduce. Only for VIDEO.INPUT values with differences (not "frames").
        "DIFFERENCE_BLUR": 0.0,
        # Factor applied to every difference patch after the blur, before rounding to 0..255
        # (brighter pixels clip at 255). Blurred differences are faint, and the gain keeps more
        # of their levels. Only for the same VIDEO.INPUT values.
        "DIFFERENCE_GAIN": 1.0,
        # Grey level (0 to 254) above which a pixel of a frame difference counts as moving. Such
        # pixels become 255 and all others 0, at frame resolution before the patches are cut.
        # Each record then shows the moving area, and the small differences of lighting and
        # compression noise drop out. 0 keeps the differences as they are. Only for VIDEO.INPUT
        # values with differences.
        "DIFFERENCE_THRESHOLD": 0,
        # Standard deviation, in frames, of the Gaussian that smooths each clip's scores over
        # time in the "smoothed" metric variants.
        "SMOOTHING_SIGMA": 3.0,
        # Test clip number (the NNN of TestNNN) drawn as an animated GIF; 0 draws none.
        "ANIMATION_CLIP": 1,
        # The GIF shows every this many frames, which keeps the file small.
        "ANIMATION_FRAME_STEP": 2,
    },
}

# Upper limit of RUN.RANDOM_DRAW_COUNT. Task ids number the draws of the k-th pair of
# RUN.RANDOM_INLIER_SETS from k * MAX_RANDOM_DRAW_COUNT, so ids of different pairs never collide.
MAX_RANDOM_DRAW_COUNT = 1000

VALID_CHOICES = {
    "DATASET.PROTOCOL": ["folds", "fixed_split"],
    "MODEL.ARCH": ["light", "gpnd"],
    "MODEL.INPUT_IMAGE_SIZE": [32, 64],
    # 2 only for the two-channel VIDEO.INPUT values (TWO_CHANNEL_INPUTS).
    "MODEL.INPUT_IMAGE_CHANNELS": [1, 2, 3],
    "RUN.DEVICE": ["auto", "cpu", "cuda"],
    "TRAIN.NOISE_TYPE": ["gaussian", "salt_pepper"],
    "VIDEO.INPUT": ["frames", "differences", "frames_and_differences", "difference_pairs"],
}
# Largest VIDEO.DIFFERENCE_THRESHOLD: a threshold of 255 would leave every difference at 0.
MAX_DIFFERENCE_THRESHOLD = 254
# VIDEO.INPUT values whose records have two greyscale channels (MODEL.INPUT_IMAGE_CHANNELS 2).
TWO_CHANNEL_INPUTS = ["frames_and_differences", "difference_pairs"]


class ConfigError(ValueError):
    """Invalid configuration: unknown key, wrong type or invalid value."""


class Config(dict):
    """Nested dictionary whose keys can also be read as attributes (``cfg.MODEL.WIDTH``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error

    def to_dict(self):
        """Return a plain nested ``dict`` copy, for YAML and JSON output."""
        return {key: value.to_dict() if isinstance(value, Config) else copy.deepcopy(value)
                for key, value in self.items()}


def _to_config(tree):
    return Config({key: _to_config(value) if isinstance(value, dict) else value
                   for key, value in tree.items()})


def _flat_keys(tree, prefix=""):
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict):
            keys += _flat_keys(value, prefix + key + ".")
        else:
            keys.append(prefix + key)
    return keys


def _check_type(key, value, default, source):
    """Return ``value`` converted to the type of ``default``, or raise ConfigError."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return value
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{source}: {key} must be of type {expected.__name__}, got {value!r} "
                          f"({type(value).__name__})")
    return value


def _merge(target, updates, defaults, source, prefix=""):
    """Merge ``updates`` into ``target`` in place, checking every key against ``defaults``."""
    for key, value in updates.items():
        full_key = prefix + str(key)
        if key not in defaults:
            known = [prefix + name for name in defaults]
            close = difflib.get_close_matches(full_key, known, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"{source}: unknown key {full_key}{hint}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {full_key} must be a section (mapping), got {value!r}")
            _merge(target[key], value, defaults[key], source, full_key + ".")
        else:
            target[key] = _check_type(full_key, value, defaults[key], source)


def parse_override(text):
    """Parse one ``KEY.SUB=VALUE`` command-line override into a nested dictionary."""
    if "=" not in text:
        raise ConfigError(f"command line: override {text!r} must look like SECTION.KEY=VALUE")
    path, raw_value = text.split("=", 1)
    value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    tree = value
    for part in reversed(path.strip().split(".")):
        tree = {part: tree}
    return tree


def resolve_path(path):
    """Return ``path`` made absolute, taking relative paths from the repository root."""
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def load_config(path=None, overrides=()):
    """Load the defaults, merge the YAML file at ``path`` and then ``overrides``, and validate.

    ``overrides`` are nested dictionaries (see ``parse_override``) or ``KEY=VALUE`` strings.
    Raises ConfigError naming the key, value and file for anything invalid.
    """
    tree = copy.deepcopy(DEFAULTS)
    source = "defaults"
    if path is not None:
        source = path
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path} not found; pass an existing YAML file such as "
                              f"configs/mnist.yaml")
        with open(path, encoding="utf-8") as stream:
            try:
                loaded = yaml.safe_load(stream) or {}
            except yaml.YAMLError as error:
                raise ConfigError(f"{path}: invalid YAML: {error}") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections, got {loaded!r}")
        _merge(tree, loaded, DEFAULTS, path)

    # The file alone must be valid, so that an error found after the overrides is theirs.
    validate_config(_to_config(tree), source)
    if overrides:
        for override in overrides:
            if isinstance(override, str):
                override = parse_override(override)
            _merge(tree, override, DEFAULTS, "command line")
        source = f"command line (over {source})"

    cfg = _to_config(tree)
    validate_config(cfg, source)
    return cfg


def _fail(source, key, value, expected):
    raise ConfigError(f"{source}: invalid {key} = {value!r}; expected {expected}")


def validate_config(cfg, source="config"):
    """Raise ConfigError for values that have the right type but are out of range."""
    for key, choices in VALID_CHOICES.items():
        section, name = key.split(".")
        if cfg[section][name] not in choices:
            _fail(source, key, cfg[section][name], f"one of {choices}")

    positive_ints = ["DATASET.TOTAL_CLASS_COUNT", "MODEL.WIDTH", "MODEL.LATENT_SIZE",
                     "TRAIN.EPOCH_COUNT", "TRAIN.BATCH_SIZE", "TRAIN.LR_DECAY_EPOCHS",
                     "TRAIN.IMAGE_GRID_EVERY", "TEST.BATCH_SIZE", "TEST.HISTOGRAM_BINS",
                     "RUN.RANDOM_DRAW_COUNT", "VIDEO.ANIMATION_FRAME_STEP"]
    for key in positive_ints:
        section, name = key.split(".")
        if cfg[section][name] < 1:
            _fail(source, key, cfg[section][name], "an integer of at least 1")
    if cfg.DATASET.PROTOCOL == "folds" and cfg.DATASET.FOLDS_COUNT < 3:
        # Each fold needs a distinct test fold, validation fold and at least one training fold.
        _fail(source, "DATASET.FOLDS_COUNT", cfg.DATASET.FOLDS_COUNT, "an integer of at least 3")
    if cfg.DATASET.PROTOCOL == "fixed_split" and cfg.DATASET.FOLDS_COUNT != 2:
        _fail(source, "DATASET.FOLDS_COUNT", cfg.DATASET.FOLDS_COUNT,
              "2 for DATASET.PROTOCOL fixed_split (fold 0 is the training set, fold 1 the test set)")
    if cfg.MODEL.ARCH == "gpnd" and cfg.MODEL.WIDTH % 2:
        _fail(source, "MODEL.WIDTH", cfg.MODEL.WIDTH, "an even number for ARCH gpnd (its first layer has WIDTH/2 channels)")
    if cfg.TRAIN.NOISY_FAKES and not cfg.TRAIN.IMAGE_ADVERSARIAL:
        _fail(source, "TRAIN.NOISY_FAKES", True, "false when TRAIN.IMAGE_ADVERSARIAL is false (noisy images are "
              "fakes for the image discriminator, which is then not trained)")
    two_channel_input = cfg.VIDEO.INPUT in TWO_CHANNEL_INPUTS
    if two_channel_input and cfg.MODEL.INPUT_IMAGE_CHANNELS != 2:
        _fail(source, "MODEL.INPUT_IMAGE_CHANNELS", cfg.MODEL.INPUT_IMAGE_CHANNELS,
              f"2 for VIDEO.INPUT {cfg.VIDEO.INPUT} (two greyscale channels)")
    if two_channel_input and cfg.DATASET.PROTOCOL != "fixed_split":
        _fail(source, "VIDEO.INPUT", cfg.VIDEO.INPUT, f"'frames' for image data sets, because {cfg.VIDEO.INPUT} "
              f"applies only to video (DATASET.PROTOCOL fixed_split, as in configs/ucsd.yaml)")
    if not two_channel_input and cfg.MODEL.INPUT_IMAGE_CHANNELS == 2:
        _fail(source, "MODEL.INPUT_IMAGE_CHANNELS", 2,
              f"1 (greyscale) or 3 (RGB); 2 channels exist only for video (configs/ucsd.yaml) with VIDEO.INPUT "
              f"{' or '.join(TWO_CHANNEL_INPUTS)}")

    positive_floats = ["TRAIN.BASE_LEARNING_RATE", "TRAIN.LR_DECAY_FACTOR", "TEST.MUL", "TRAIN.NOISE_LEVEL"]
    for key in positive_floats:
        section, name = key.split(".")
        if not cfg[section][name] > 0:
            _fail(source, key, cfg[section][name], "a number greater than 0")
    for key in ["TRAIN.ADAM_BETA1", "TRAIN.ADAM_BETA2"]:
        section, name = key.split(".")
        if not 0 <= cfg[section][name] < 1:
            _fail(source, key, cfg[section][name], "a number in [0, 1)")
    for key in ["TRAIN.RECONSTRUCTION_WEIGHT", "TRAIN.LATENT_ADVERSARIAL_WEIGHT"]:
        section, name = key.split(".")
        if cfg[section][name] < 0:
            _fail(source, key, cfg[section][name], "a number of at least 0")
    if cfg.TRAIN.NOISE_TYPE == "salt_pepper" and cfg.TRAIN.NOISE_LEVEL > 1:
        _fail(source, "TRAIN.NOISE_LEVEL", cfg.TRAIN.NOISE_LEVEL, "a share of pixels in (0, 1] for salt_pepper noise")
    if cfg.RUN.THREADS < 0:
        _fail(source, "RUN.THREADS", cfg.RUN.THREADS, "0 (torch's default) or a positive thread count")

    _validate_video(cfg, source)

    if not (cfg.TEST.USE_LATENT_TERM or cfg.TEST.USE_RECONSTRUCTION_TERM or cfg.TEST.USE_JACOBIAN_TERM):
        _fail(source, "TEST.USE_*_TERM", False, "at least one score term switched on")

    percentages = cfg.TEST.PERCENTAGES
    if not percentages:
        _fail(source, "TEST.PERCENTAGES", percentages, "a non-empty list of outlier percentages")
    for percentage in percentages:
        if isinstance(percentage, bool) or not isinstance(percentage, (int, float)) or not 0 < percentage < 100:
            _fail(source, "TEST.PERCENTAGES", percentage, "numbers strictly between 0 and 100")
    if len(set(percentages)) != len(percentages):
        _fail(source, "TEST.PERCENTAGES", percentages, "no repeated percentage")

    folds = cfg.RUN.FOLDS
    for fold in folds:
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < cfg.DATASET.FOLDS_COUNT:
            _fail(source, "RUN.FOLDS", fold, f"fold indices in 0..{cfg.DATASET.FOLDS_COUNT - 1}")
    if len(set(folds)) != len(folds):
        _fail(source, "RUN.FOLDS", folds, "no repeated fold")

    for inlier_set in cfg.RUN.INLIER_SETS:
        if not isinstance(inlier_set, list) or not inlier_set:
            _fail(source, "RUN.INLIER_SETS", inlier_set, "a list of non-empty class lists, e.g. [[0], [1, 7]]")
        for label in inlier_set:
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < cfg.DATASET.TOTAL_CLASS_COUNT:
                _fail(source, "RUN.INLIER_SETS", label,
                      f"class labels in 0..{cfg.DATASET.TOTAL_CLASS_COUNT - 1}")
        if len(set(inlier_set)) != len(inlier_set):
            _fail(source, "RUN.INLIER_SETS", inlier_set, "no repeated class inside an inlier set")
        if len(inlier_set) >= cfg.DATASET.TOTAL_CLASS_COUNT:
            _fail(source, "RUN.INLIER_SETS", inlier_set, "at least one class left out as outlier")

    _validate_random_inlier_sets(cfg, source)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_random_inlier_sets(cfg, source):
    """Check RUN.RANDOM_INLIER_SETS and the draw settings that go with it."""
    run = cfg.RUN
    class_count = cfg.DATASET.TOTAL_CLASS_COUNT
    example = "[[1, 50], [4, 25], [7, 15]]"
    for pair in run.RANDOM_INLIER_SETS:
        if not isinstance(pair, list) or len(pair) != 2:
            _fail(source, "RUN.RANDOM_INLIER_SETS", pair,
                  f"[inlier class count, outlier percentage] pairs, e.g. {example}")
        count, percentage = pair
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count < class_count:
            _fail(source, "RUN.RANDOM_INLIER_SETS", pair,
                  f"an inlier class count in 1..{class_count - 1} (at least one class must be left "
                  f"out as outlier) as the first entry of each pair")
        if not _is_number(percentage) or not 0 < percentage < 100:
            _fail(source, "RUN.RANDOM_INLIER_SETS", pair,
                  "an outlier percentage strictly between 0 and 100 as the second entry of each pair")
    if len({tuple(pair) for pair in run.RANDOM_INLIER_SETS}) != len(run.RANDOM_INLIER_SETS):
        _fail(source, "RUN.RANDOM_INLIER_SETS", run.RANDOM_INLIER_SETS, "no repeated pair")
    if run.RANDOM_INLIER_SETS and run.INLIER_SETS:
        _fail(source, "RUN.INLIER_SETS", run.INLIER_SETS,
              "an empty list when RUN.RANDOM_INLIER_SETS is set, because the two define the inlier "
              "sets in different ways; clear one of them")
    if run.RANDOM_DRAW_COUNT > MAX_RANDOM_DRAW_COUNT:
        _fail(source, "RUN.RANDOM_DRAW_COUNT", run.RANDOM_DRAW_COUNT, f"at most {MAX_RANDOM_DRAW_COUNT}")
    if run.RANDOM_DRAW_SEED < 0:
        _fail(source, "RUN.RANDOM_DRAW_SEED", run.RANDOM_DRAW_SEED, "an integer of at least 0")


def derive_config(cfg, overrides, source="derived config"):
    """Return a validated copy of ``cfg`` with ``overrides`` (nested dictionaries) merged in."""
    tree = cfg.to_dict()
    for override in overrides:
        _merge(tree, override, DEFAULTS, source)
    derived = _to_config(tree)
    validate_config(derived, source)
    return derived


def _validate_video(cfg, source):
    grid = cfg.VIDEO.PATCH_GRID
    if len(grid) != 2 or any(isinstance(count, bool) or not isinstance(count, int) or count < 1 for count in grid):
        _fail(source, "VIDEO.PATCH_GRID", grid, "[rows, columns] with two integers of at least 1")
    blur, gain = cfg.VIDEO.DIFFERENCE_BLUR, cfg.VIDEO.DIFFERENCE_GAIN
    # A sigma as large as the patch already flattens it to nearly its mean, so a larger one is
    # most likely a typing error.
    if not 0 <= blur <= cfg.MODEL.INPUT_IMAGE_SIZE:
        _fail(source, "VIDEO.DIFFERENCE_BLUR", blur, f"a blur in pixels from 0 (none) to MODEL.INPUT_IMAGE_SIZE "
              f"({cfg.MODEL.INPUT_IMAGE_SIZE})")
    if not 0 < gain < math.inf:
        _fail(source, "VIDEO.DIFFERENCE_GAIN", gain, "a finite factor greater than 0 (1 leaves the differences "
              "as they are)")
    threshold = cfg.VIDEO.DIFFERENCE_THRESHOLD
    if not 0 <= threshold <= MAX_DIFFERENCE_THRESHOLD:
        _fail(source, "VIDEO.DIFFERENCE_THRESHOLD", threshold, f"a grey level from 0 (no threshold) to "
              f"{MAX_DIFFERENCE_THRESHOLD}, because no difference of 8-bit frames exceeds 255")
    if cfg.VIDEO.INPUT == "frames" and threshold != 0:
        _fail(source, "VIDEO.DIFFERENCE_THRESHOLD", threshold, "0 with VIDEO.INPUT 'frames', because frame "
              "records have no differences to threshold (add --set VIDEO.DIFFERENCE_THRESHOLD=0 --set "
              "VIDEO.DIFFERENCE_BLUR=0 --set VIDEO.DIFFERENCE_GAIN=1, or use differences)")
    if cfg.VIDEO.INPUT == "frames" and (blur != 0 or gain != 1):
        key, value = ("VIDEO.DIFFERENCE_BLUR", blur) if blur != 0 else ("VIDEO.DIFFERENCE_GAIN", gain)
        _fail(source, key, value, "VIDEO.DIFFERENCE_BLUR 0.0 and VIDEO.DIFFERENCE_GAIN 1.0 with VIDEO.INPUT "
              "'frames', because frame records have no differences to blur or scale (add --set "
              "VIDEO.DIFFERENCE_BLUR=0 --set VIDEO.DIFFERENCE_GAIN=1, or use differences)")
    pair_step = cfg.VIDEO.PAIR_STEP
    if pair_step < 1:
        _fail(source, "VIDEO.PAIR_STEP", pair_step, "an integer of at least 1 (frames between the two differences)")
    if pair_step != 1 and cfg.VIDEO.INPUT != "difference_pairs":
        _fail(source, "VIDEO.PAIR_STEP", pair_step, f"1 with VIDEO.INPUT {cfg.VIDEO.INPUT!r}, because only "
              f"'difference_pairs' records contain two differences")
    if not cfg.VIDEO.SMOOTHING_SIGMA > 0:
        _fail(source, "VIDEO.SMOOTHING_SIGMA", cfg.VIDEO.SMOOTHING_SIGMA, "a number of frames greater than 0")
    if cfg.VIDEO.ANIMATION_CLIP < 0:
        _fail(source, "VIDEO.ANIMATION_CLIP", cfg.VIDEO.ANIMATION_CLIP, "a test clip number, or 0 for no animation")


def inlier_sets(cfg):
    """Return the inlier class lists to run: RUN.INLIER_SETS, or every single class."""
    if cfg.RUN.INLIER_SETS:
        return [list(inlier_set) for inlier_set in cfg.RUN.INLIER_SETS]
    return [[label] for label in range(cfg.DATASET.TOTAL_CLASS_COUNT)]


def config_to_yaml(cfg):
    """Return the resolved config as YAML text, saved next to every model and result."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
