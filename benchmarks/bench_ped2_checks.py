"""UCSD Ped2 checks that need no training: a model-free baseline and rescorings of saved scores.

Each part runs when its input is given and prints micro AUCs (anomalous frames positive, frame
score = least likely patch, as in ``utils/video.py``):

    --folds DIR     difference folds at 32x32 with any patch grid, threshold, blur and gain
                    (channel 0 of difference pairs): the L2 norm of each test record, no
                    model, as an anomaly score, all four variants
    --scores NPZ    a run's video_scores_mul<m>.npz: GPND's score smoothed with other sigmas,
                    the score standardised per patch position with the statistics of the
                    normal test frames (an upper bound for that idea, not a usable detector),
                    and each term of the score alone and the score without the Jacobian term
                    (terms that the run switched off are left out)
    --source DIR    the UCSDped2 folder: the L2 norm of full-resolution differences over 1, 2
                    and 3 frames, per 60x60 patch
    --ensemble NPZ NPZ ...
                    video_scores_mul<m>.npz of several runs on the same folds (other seeds):
                    each run's score and the mean of their scores per patch
    --folds with --scores
                    whether the run's reconstruction distance measures more than how much
                    of the patch moves. Prints its correlation with the record's L2 norm and
                    the relative error on the busiest records. Also prints the micro AUC of
                    the part of the log distance that a straight line in the log norm does
                    not explain

    python benchmarks/bench_ped2_checks.py --folds /tmp/ucsd/diff46 \\
        --scores /tmp/ucsd/res_diff46_e5/ucsd-ped2/fold_1/set_0/video_scores_mul0.2.npz \\
        --source /path/to/UCSDped2
"""

import argparse
import os
import sys

import numpy as np

from common import REPO_ROOT, print_table
from utils import ucsd
from utils.config import ConfigError, load_config
from utils.folds import FoldError, read_fold
from utils.video_metrics import SCORE_VARIANTS, evaluate_variants, frame_scores_from_patches

UCSD_CONFIG = os.path.join(REPO_ROOT, "configs", "ucsd.yaml")
# VIDEO.INPUT value for each record channel count whose channel 0 is a frame difference, so
# that its norm measures motion.
NORM_INPUT_CHANNELS = {1: ucsd.INPUT_DIFFERENCES, 2: ucsd.INPUT_DIFFERENCE_PAIRS}
NORM_INPUTS = tuple(NORM_INPUT_CHANNELS.values())
# The smoothing sigma of configs/ucsd.yaml, the default of --sigma.
SMOOTHING_SIGMA = 3.0
SIGMAS = [1.0, 2.0, 3.0, 5.0, 8.0, 12.0]
FRAME_STEPS = [1, 2, 3]
# The grid of --source: 60x60-pixel patches of a 360x240 frame, as in the first difference runs.
PATCH_GRID = (4, 6)
# Added to the standard deviation so that a patch position with constant scores does not divide by zero.
STD_FLOOR = 1e-9
# The relative reconstruction error is measured on this top share of records by L2 norm, the
# patches with the most motion. Quiet patches have next to nothing to reconstruct, so their
# ratio shows little about the model.
BUSY_SHARE = 0.10
# Added to norms and distances (pixels in [0, 1]) before the logarithm, because a difference
# patch without any motion has norm 0. In the Ped2 test fold that is 4 of 48,240 records at
# 4 x 6 and 712 of 108,540 (0.66 %) on blurred 6 x 9 patches, where these still patches all
# share one log norm. Below ten times the floor lie 0.04 % and 0.68 % of the records.
LOG_FLOOR = 1e-3
# Rows of the motion check's AUCs that the other tables also print.
NORM_ROW = "L2 norm, no model"
SCORE_ROW = "run's score"


def micro_aucs(clips, frames, labels, patch_scores, sigma=SMOOTHING_SIGMA):
    """Return {variant: micro AUC} of patch scores (high = normal), reduced to frame scores."""
    frame = frame_scores_from_patches(clips, frames, labels, patch_scores)
    metrics, _ = evaluate_variants(frame["clip"], frame["frame"], frame["label"], frame["score"], sigma)
    return {variant: metrics[variant]["micro_auc"] for variant in SCORE_VARIANTS}


def read_test_norms(folder):
    """Read the test fold of a difference fold folder, returning the record and each record's L2 norm.

    Norms are of pixels scaled to [0, 1], the scale of the saved reconstruction distances. On
    "difference_pairs" folds the norm is that of channel 0, the difference of the record's own
    frame, so that it measures the same motion as on "differences" folds.
    """
    # read_fold checks the records' channel count against the config, so the input of each
    # channel count is tried in turn, and a failure reports each distinct problem once.
    problems = {}
    for channels, input_mode in NORM_INPUT_CHANNELS.items():
        cfg = load_config(UCSD_CONFIG, [f"DATASET.PATH={folder}", "MODEL.INPUT_IMAGE_SIZE=32",
                                        f"MODEL.INPUT_IMAGE_CHANNELS={channels}", f"VIDEO.INPUT={input_mode}"])
        try:
            record = read_fold(folder, ucsd.TEST_FOLD, cfg)
            break
        except (FoldError, FileNotFoundError) as error:
            problems.setdefault(str(error).rstrip("."), []).append(input_mode)
    else:
        details = " ".join(f"Read as {' or '.join(modes)}: {problem}." for problem, modes in problems.items())
        raise SystemExit(f"--folds {folder}: cannot read its test fold. {details} This check needs folds "
                         f"written by partition_ucsd.py with VIDEO.INPUT differences or difference_pairs and "
                         f"MODEL.INPUT_IMAGE_SIZE 32")
    settings = ucsd.recorded_preprocessing(record)
    if settings.get("input") not in NORM_INPUTS:
        raise SystemExit(f"--folds {folder}: the records are VIDEO.INPUT {settings.get('input')!r}, but the L2 "
                         f"norm measures motion only on folds of {' or '.join(NORM_INPUTS)}. Partition with "
                         f"--set VIDEO.INPUT=differences")
    # (N, C, S, S) -> channel 0 only -> (N, S * S)
    differences = record["images"][:, 0]
    pixels = differences.reshape(len(differences), -1).astype(np.float64) / 255.0
    return record, np.sqrt((pixels ** 2).sum(axis=1))


def describe_folds(record):
    """Return the fold's grid, threshold, blur and gain as a short phrase for table titles."""
    settings = ucsd.recorded_preprocessing(record)
    grid = "x".join(str(count) for count in settings.get("patch_grid", []))
    return (f"grid {grid}, threshold {settings['difference_threshold']}, blur {settings['difference_blur']:g}, "
            f"gain {settings['difference_gain']:g}")


def fold_norm_aucs(record, norms, sigma=SMOOTHING_SIGMA):
    """Return the micro AUCs of the negated L2 norm of each test record, no model."""
    extras = record["extras"]
    return micro_aucs(extras["clip"], extras["frame"], record["labels"], -norms, sigma)


def busy_relative_error(norms, distances):
    """Return the median of distance / norm over the BUSY_SHARE records of largest norm."""
    busy = norms >= np.quantile(norms, 1.0 - BUSY_SHARE)
    return float(np.median(distances[busy] / norms[busy]))


def motion_check(norms, saved, sigma=SMOOTHING_SIGMA):
    """Measure how much of a run's reconstruction distance the records' L2 norms explain.

    ``norms`` are the test records' L2 norms and ``saved`` the run's scores of the same records.
    The line is fitted by least squares over all test records, without their labels. The
    returned dict contains ``correlation`` and ``slope`` of log distance against log norm,
    ``residual`` (log distance minus the line, per record) and ``relative_error`` (see
    ``busy_relative_error``). Its ``aucs`` are the micro AUCs of the norm, of the run's score
    and of the residual.
    """
    log_norm = np.log(norms + LOG_FLOOR)
    log_distance = np.log(saved["distance"] + LOG_FLOOR)
    slope, intercept = np.polyfit(log_norm, log_distance, 1)
    residual = log_distance - (slope * log_norm + intercept)
    keys = (saved["clip"], saved["frame"], saved["label"])
    return {
        "correlation": float(np.corrcoef(log_norm, log_distance)[0, 1]),
        "slope": float(slope),
        "residual": residual,
        "relative_error": busy_relative_error(norms, saved["distance"]),
        "aucs": {NORM_ROW: micro_aucs(*keys, -norms, sigma),
                 SCORE_ROW: micro_aucs(*keys, saved["score"], sigma),
                 "distance beyond the norm": micro_aucs(*keys, -residual, sigma)},
    }


def check_same_records(record, saved, folds, scores):
    """Exit unless the score file contains the test fold's records, in order and made the same way.

    The run's config.yaml beside the score file names its VIDEO settings. Folds of another
    threshold, blur, gain or pair step have the same records in the same order, so only those
    settings tell them apart.
    """
    if "distance" not in saved:
        raise SystemExit(f"{scores}: no 'distance' array. Pass a video_scores_mul<m>.npz written by "
                         f"Testing_test_ucsd.py")
    for key in ("clip", "frame", "patch"):
        if not np.array_equal(record["extras"][key], saved[key]):
            raise SystemExit(f"{scores}: its records differ from the test fold in {folds} in {key!r}. Pass the "
                             f"folds that the run was trained and scored on")

    config_path = os.path.join(os.path.dirname(os.path.abspath(scores)), "config.yaml")
    if not os.path.isfile(config_path):
        print(f"NOTE: {config_path} not found, so the fold settings are not compared with the run's",
              file=sys.stderr)
        return
    try:
        run_settings = ucsd.preprocessing_settings(load_config(config_path))
    except ConfigError as error:
        raise SystemExit(f"{config_path}: invalid run config ({error}). Pass the score file of a run whose "
                         f"config.yaml this version of the project can load") from error
    recorded = ucsd.recorded_preprocessing(record)
    differing = [f"VIDEO.{key.upper()} {recorded.get(key)!r} in the folds, {value!r} in the run"
                 for key, value in run_settings.items() if recorded.get(key) != value]
    if differing:
        raise SystemExit(f"{scores}: the run was made from other folds than {folds} ({'; '.join(differing)}). "
                         f"Pass the folds that the run was trained and scored on")


def sigma_rows(saved):
    """Return (sigma, smoothed micro AUC) of the saved GPND score for each of SIGMAS."""
    return [(sigma, micro_aucs(saved["clip"], saved["frame"], saved["label"], saved["score"], sigma)["smoothed"])
            for sigma in SIGMAS]


def position_standardised_aucs(saved, sigma=SMOOTHING_SIGMA):
    """Return the micro AUCs of the saved score standardised per patch position on the normal test frames."""
    scores = saved["score"]
    standardised = np.empty_like(scores)
    for patch in np.unique(saved["patch"]):
        members = saved["patch"] == patch
        normal = members & (saved["label"] == ucsd.NORMAL_LABEL)
        standardised[members] = (scores[members] - np.median(scores[normal])) / (np.std(scores[normal]) + STD_FLOOR)
    return micro_aucs(saved["clip"], saved["frame"], saved["label"], standardised, sigma)


# The terms of GPND's score as a video_scores_mul<m>.npz stores them (utils/scoring.py), with
# the names of their table rows. The saved score is their sum.
SCORE_TERMS = [("latent", "latent term"), ("reconstruction", "reconstruction term"), ("jacobian", "Jacobian term")]
NO_JACOBIAN_ROW = "latent + reconstruction"


def term_rows(saved, sigma=SMOOTHING_SIGMA, score_aucs=None):
    """Return (row name, micro AUCs) of each score term, of the score without the Jacobian term and of the score.

    A term that a run switched off (TEST.USE_*_TERM false) is saved as zeros and left out, since a
    constant ranks nothing. The row without the Jacobian term needs all three terms, because
    otherwise it is constant or repeats another row. Score files without the term arrays give
    no rows. ``score_aucs`` are the score's micro AUCs when the caller has them already.
    """
    if any(key not in saved for key, _ in SCORE_TERMS):
        return []
    keys = (saved["clip"], saved["frame"], saved["label"])
    active = [(key, name) for key, name in SCORE_TERMS if np.any(saved[key])]
    rows = [(name, micro_aucs(*keys, saved[key], sigma)) for key, name in active]
    if len(active) == len(SCORE_TERMS):
        rows.append((NO_JACOBIAN_ROW, micro_aucs(*keys, saved["latent"] + saved["reconstruction"], sigma)))
    if score_aucs is None:
        score_aucs = micro_aucs(*keys, saved["score"], sigma)
    rows.append((SCORE_ROW, score_aucs))
    return rows


# Arrays of a video_scores_mul<m>.npz that the checks read.
SCORE_FILE_KEYS = ("clip", "frame", "patch", "label", "score")


def load_scores(path):
    """Read a run's video_scores_mul<m>.npz into a dict of arrays, without executing pickled code."""
    if not os.path.isfile(path):
        raise SystemExit(f"{path}: file not found; pass a run's fold_1/set_0/video_scores_mul<m>.npz")
    try:
        with np.load(path, allow_pickle=False) as saved:
            scores = {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as error:
        # numpy's own message for a pickle suggests loading it unsafely, so it is not repeated.
        raise SystemExit(f"{path}: not a plain .npz score file as Testing_test_ucsd.py writes it; pass a run's "
                         f"fold_1/set_0/video_scores_mul<m>.npz") from error
    missing = [key for key in SCORE_FILE_KEYS if key not in scores]
    if missing:
        raise SystemExit(f"{path}: the arrays {missing} are missing; pass a run's fold_1/set_0/video_scores_mul<m>.npz")
    return scores


def ensemble_rows(paths, sigma=SMOOTHING_SIGMA):
    """Return (run, micro AUCs) of each run's score and of the mean of their scores per patch.

    The mean is of log p(x) as each model computed it, without rescaling, so a model whose
    scores spread wider weighs more.
    """
    if len(set(os.path.realpath(path) for path in paths)) < len(paths):
        raise SystemExit(f"--ensemble got the same file twice ({' '.join(paths)}); pass the files of different runs")
    # The file name carries the mul that the scores were computed with, and the arrays do not.
    names = sorted(set(os.path.basename(path) for path in paths))
    if len(names) > 1:
        raise SystemExit(f"--ensemble got score files of different mul values ({', '.join(names)}); pass files "
                         f"with the same video_scores_mul<m>.npz name")
    runs = [load_scores(path) for path in paths]
    first = runs[0]
    for path, run in zip(paths[1:], runs[1:]):
        for key in ("clip", "frame", "patch", "label"):
            if not np.array_equal(run[key], first[key]):
                raise SystemExit(f"{path}: its records differ from those of {paths[0]} in {key!r}; an ensemble "
                                 f"needs runs scored on the same test fold")
    rows = [(path, micro_aucs(run["clip"], run["frame"], run["label"], run["score"], sigma))
            for path, run in zip(paths, runs)]
    mean = np.mean([run["score"] for run in runs], axis=0)
    rows.append((f"mean of {len(runs)} runs", micro_aucs(first["clip"], first["frame"], first["label"], mean, sigma)))
    return rows


def frame_step_rows(source):
    """Return (frame step, raw micro AUC) of the L2 norm of full-resolution patch differences."""
    _, test_folder = ucsd.dataset_folders(source)
    ground_truth_path = ucsd.find_ground_truth_file(test_folder)
    with open(ground_truth_path, encoding="utf-8", errors="replace") as stream:
        ground_truth = ucsd.parse_ground_truth(stream.read(), ground_truth_path)

    clips, frames, labels = [], [], []
    norms = {step: [] for step in FRAME_STEPS}
    for clip, folder in ucsd.list_clips(test_folder, ucsd.TEST_CLIP_NAME):
        paths = [path for _, path in ucsd.list_numbered_images(folder)]
        video = np.stack([np.asarray(ucsd.read_frame(path, channels=1), dtype=np.float32) for path in paths])
        boxes = ucsd.patch_boxes(video.shape[1], video.shape[2], PATCH_GRID)
        clip_labels = ucsd.frame_labels(ground_truth[clip], len(video), os.path.basename(folder), ground_truth_path)
        for step in FRAME_STEPS:
            # The first `step` frames have no predecessor and repeat the first difference.
            differences = np.abs(video[step:] - video[:-step])
            differences = np.concatenate([differences[:1]] * step + [differences])
            for top, bottom, left, right in boxes:
                norms[step].append(np.sqrt((differences[:, top:bottom, left:right] ** 2).mean(axis=(1, 2))))
        for patch in range(len(boxes)):
            clips.append(np.full(len(video), clip))
            frames.append(np.arange(1, len(video) + 1))
            labels.append(clip_labels)

    clips, frames, labels = np.concatenate(clips), np.concatenate(frames), np.concatenate(labels)
    return [(step, micro_aucs(clips, frames, labels, -np.concatenate(norms[step]))["raw"]) for step in FRAME_STEPS]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", help="folder of the difference folds (data_fold_1.pkl)")
    parser.add_argument("--scores", help="video_scores_mul<m>.npz of a run")
    parser.add_argument("--source", help="UCSDped2 folder with Train/ and Test/")
    parser.add_argument("--ensemble", nargs="+", metavar="NPZ",
                        help="video_scores_mul<m>.npz of two or more runs on the same folds")
    parser.add_argument("--sigma", type=float, default=SMOOTHING_SIGMA,
                        help="smoothing sigma in frames of the smoothed variants; set it to the runs' "
                             f"VIDEO.SMOOTHING_SIGMA (default {SMOOTHING_SIGMA:g}, as in configs/ucsd.yaml)")
    args = parser.parse_args()
    if not (args.folds or args.scores or args.source or args.ensemble):
        parser.error("give at least one of --folds, --scores, --source and --ensemble")
    if args.ensemble and len(args.ensemble) < 2:
        parser.error("--ensemble needs the score files of at least two runs")
    if not args.sigma > 0:
        parser.error(f"--sigma must be greater than 0, not {args.sigma:g}")

    # The score file is read first, so that a wrong path stops the script before the long parts.
    saved = load_scores(args.scores) if args.scores else None
    check = None
    if args.folds:
        record, norms = read_test_norms(args.folds)
        if saved is not None:
            check_same_records(record, saved, args.folds, args.scores)
            check = motion_check(norms, saved, args.sigma)
        # The motion check already computes the norm's AUCs and the run's.
        aucs = check["aucs"][NORM_ROW] if check else fold_norm_aucs(record, norms, args.sigma)
        print_table(f"L2 norm of each difference record ({describe_folds(record)}), no model (micro AUC)",
                    SCORE_VARIANTS, [[f"{aucs[variant]:.4f}" for variant in SCORE_VARIANTS]])
    if args.scores:
        print_table("GPND score smoothed with other sigmas (smoothed micro AUC)", ["sigma", "micro AUC"],
                    [[f"{sigma:g}", f"{auc:.4f}"] for sigma, auc in sigma_rows(saved)])
        if check:
            original = check["aucs"][SCORE_ROW]
        else:
            original = micro_aucs(saved["clip"], saved["frame"], saved["label"], saved["score"], args.sigma)
        standardised = position_standardised_aucs(saved, args.sigma)
        print_table("GPND score standardised per patch position (micro AUC)", ["score"] + SCORE_VARIANTS,
                    [["as saved"] + [f"{original[variant]:.4f}" for variant in SCORE_VARIANTS],
                     ["standardised"] + [f"{standardised[variant]:.4f}" for variant in SCORE_VARIANTS]])
        terms = term_rows(saved, args.sigma, original)
        if terms:
            print_table("Each score term alone, the score without the Jacobian term, and the run's score "
                        "(micro AUC)",
                        ["score"] + SCORE_VARIANTS,
                        [[name] + [f"{aucs[variant]:.4f}" for variant in SCORE_VARIANTS] for name, aucs in terms])
    if check:
        print_table("Reconstruction distance against the record's L2 norm (log-log, all test records)",
                    ["correlation", "slope", f"median distance / norm, busiest {BUSY_SHARE:.0%}"],
                    [[f"{check['correlation']:.3f}", f"{check['slope']:.3f}", f"{check['relative_error']:.3f}"]])
        print_table("Motion against the model (micro AUC)", ["score"] + SCORE_VARIANTS,
                    [[name] + [f"{aucs[variant]:.4f}" for variant in SCORE_VARIANTS]
                     for name, aucs in check["aucs"].items() if name != NORM_ROW])
    if args.source:
        print_table("L2 norm of full-resolution differences per 60x60 patch (raw micro AUC)",
                    ["frame step", "micro AUC"], [[step, f"{auc:.4f}"] for step, auc in frame_step_rows(args.source)])
    if args.ensemble:
        print_table("Score of each run and the mean of their scores (micro AUC)", ["run"] + SCORE_VARIANTS,
                    [[name] + [f"{aucs[variant]:.4f}" for variant in SCORE_VARIANTS]
                     for name, aucs in ensemble_rows(args.ensemble, args.sigma)])


if __name__ == "__main__":
    main()
