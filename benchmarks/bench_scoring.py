"""Scoring speed: this project's batched score against the published per-image approach.

Part 1 scores the same 2,048 MNIST test images (mixed classes) three ways: with
``benchmarks/gpnd_reference.py`` (the published approach) at width 128, with
``utils.scoring.score_images`` on the same width-128 model, and with ``score_images`` on the
default network. It reports the largest score difference, images per second and the ratios,
all measured in this one run.

Part 2 measures the protocol cost: the wall time to evaluate one digit of MNIST fold 0 at all
five outlier percentages (fit, score validation and test once, evaluate every percentage) with
the default network, against the published approach, which scores every sample of every
percentage set. The reference's total is counted exactly and its time extrapolated from its
measured rate at width 128.

    python partition_mnist.py --source ../shared/datasets/mnist     # once
    python benchmarks/bench_scoring.py --train-epochs 2
"""

import numpy as np

from common import (PUBLISHED_SETTINGS, Timer, base_parser, configure, machine_description, mixed_sample,
                    mnist_config, print_table, quick_model)
from gpnd_reference import reference_scores
from evaluation import best_f1_threshold, compute_metrics
from utils.folds import inlier_mask, load_protocol, outlier_percentage_indices, training_inliers
from utils.scoring import fit_statistics, score_images

SAMPLE_COUNT = 2048
BENCH_DIGIT = 0


def main():
    parser = base_parser(__doc__)
    parser.add_argument("--train-epochs", type=int, default=2, help="epochs of the benchmark models")
    parser.add_argument("--skip-protocol", action="store_true", help="run part 1 only")
    args = parser.parse_args()
    device = configure(args)

    # Both models are trained on digit BENCH_DIGIT of fold 0's training folds.
    configs = {
        "published (gpnd, width 128)": mnist_config(args, PUBLISHED_SETTINGS + [f"TRAIN.EPOCH_COUNT={args.train_epochs}"]),
        "default (light, width 32)": mnist_config(args, [f"TRAIN.EPOCH_COUNT={args.train_epochs}"]),
    }
    first_cfg = next(iter(configs.values()))
    train_split, validation_split, test_split = load_protocol(first_cfg, 0)
    train_images = training_inliers(train_split, [BENCH_DIGIT], "mnist fold 0")
    sample, _ = mixed_sample(test_split.images, test_split.labels, SAMPLE_COUNT)

    models, stats = {}, {}
    for name, cfg in configs.items():
        encoder, generator = quick_model(cfg, train_images, device)
        models[name] = (encoder, generator)
        stats[name], _, _ = fit_statistics(encoder, generator, train_images, cfg.TEST.HISTOGRAM_BINS,
                                           cfg.TEST.BATCH_SIZE, device)

    # Part 1: same images, same model; reference at width 128.
    published = "published (gpnd, width 128)"
    default = "default (light, width 32)"
    cfg128 = configs[published]
    encoder, generator = models[published]
    # The reference runs with parameters requiring gradients, as the published code does.
    for parameter in list(encoder.parameters()) + list(generator.parameters()):
        parameter.requires_grad_(True)
    with Timer(device) as reference_timer:
        reference = reference_scores(encoder, generator, sample, stats[published], cfg128.TEST.MUL, device)
    with Timer(device) as fast_timer:
        fast = score_images(encoder, generator, sample, stats[published], cfg128, device)["score"]
    with Timer(device) as light_timer:
        score_images(*models[default], sample, stats[default], configs[default], device)

    score_range = reference.max() - reference.min()
    difference = np.max(np.abs(fast - reference))
    reference_rate = SAMPLE_COUNT / reference_timer.seconds
    rows = [
        ["published approach (reference)", "gpnd 128", f"{reference_rate:.1f}", "1.00", "-"],
        ["this project", "gpnd 128", f"{SAMPLE_COUNT / fast_timer.seconds:.1f}",
         f"{reference_timer.seconds / fast_timer.seconds:.2f}",
         f"{difference:.3g} ({difference / score_range:.1e} of range {score_range:.1f})"],
        ["this project", "light 32 (default)", f"{SAMPLE_COUNT / light_timer.seconds:.1f}",
         f"{reference_timer.seconds / light_timer.seconds:.2f}", "other model"],
    ]
    print_table(f"Scoring {SAMPLE_COUNT} MNIST images ({machine_description(device)})",
                ["implementation", "network", "images/s", "speed-up vs reference", "max |score difference|"], rows)
    if args.skip_protocol:
        return

    # Part 2: protocol cost of one digit at all five percentages with the default network.
    cfg = configs[default]
    encoder, generator = models[default]
    with Timer(device) as protocol_timer:
        digit_stats, _, _ = fit_statistics(encoder, generator, train_images, cfg.TEST.HISTOGRAM_BINS,
                                           cfg.TEST.BATCH_SIZE, device)
        scored = {}
        for name, split in [("validation", validation_split), ("test", test_split)]:
            result = score_images(encoder, generator, split.images, digit_stats, cfg, device)
            scored[name] = (result["score"], inlier_mask(split.labels, [BENCH_DIGIT]))
        reference_samples = 0
        for percentage in cfg.TEST.PERCENTAGES:
            scores, is_inlier = scored["validation"]
            indices = outlier_percentage_indices(is_inlier, percentage, cfg.TEST.SEED)
            threshold, _ = best_f1_threshold(is_inlier[indices], scores[indices])
            reference_samples += len(indices)
            scores, is_inlier = scored["test"]
            indices = outlier_percentage_indices(is_inlier, percentage, cfg.TEST.SEED + 1)
            compute_metrics(is_inlier[indices], scores[indices], threshold)
            reference_samples += len(indices)
    unique_samples = len(validation_split) + len(test_split)
    reference_estimate = reference_samples / reference_rate
    rows = [
        ["this project, default network", f"{unique_samples} (each image once)", f"{protocol_timer.seconds:.1f}", "measured"],
        ["published approach, width 128", f"{reference_samples} (every percentage-set sample)",
         f"{reference_estimate:.0f}", f"extrapolated at {reference_rate:.1f} images/s measured above"],
    ]
    print_table(f"Protocol cost: digit {BENCH_DIGIT}, MNIST fold 0, outliers {cfg.TEST.PERCENTAGES} %, "
                f"validation and test (ratio {reference_estimate / protocol_timer.seconds:.0f}x)",
                ["approach", "images scored", "seconds", "how"], rows)


if __name__ == "__main__":
    main()
