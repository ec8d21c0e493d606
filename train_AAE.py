"""Train GPND's adversarial autoencoder on the inlier classes of one fold.

Usage (one model; the Testing_train_* drivers loop over folds and inlier sets):

    python train_AAE.py --config configs/mnist.yaml --fold 0 --classes 3
"""

import logging
import os

from utils.folds import load_protocol, training_inliers
from utils.runtime import model_paths, prepare_device, run_dir, task_seed
from utils.training import check_trained_with, train_model

logger = logging.getLogger(__name__)


def train(folding_id, inliner_classes, ic, cfg):
    """Train encoder, decoder and both discriminators on fold ``folding_id``'s inliers.

    ``inliner_classes`` are the inlier labels and ``ic`` the index of the inlier set, used in
    file names. A run whose model files exist is skipped unless RUN.FORCE is set; an interrupted
    run resumes from its last complete epoch. Returns the folder of the run.
    """
    output_dir = run_dir(cfg, folding_id, ic)
    model_files = model_paths(cfg, folding_id, ic)
    if all(os.path.exists(path) for path in model_files) and not cfg.RUN.FORCE:
        check_trained_with(cfg, output_dir)
        logger.info("Fold %d, inlier set %d %s: model exists in %s, skipping (--force or RUN.FORCE=true retrains)",
                    folding_id, ic, inliner_classes, output_dir)
        return output_dir

    device = prepare_device(cfg)
    train_split, _, _ = load_protocol(cfg, folding_id)
    images = training_inliers(train_split, inliner_classes, f"{cfg.DATASET.NAME} fold {folding_id}")
    logger.info("Training fold %d, inlier set %d %s on %d images, device %s",
                folding_id, ic, inliner_classes, len(images), device)

    seed = task_seed(cfg.TRAIN.SEED, folding_id, ic)
    train_model(cfg, images, output_dir, model_files, seed, device)
    return output_dir


def main():
    from utils.drivers import parse_single_task

    cfg, fold, classes, ic = parse_single_task(__doc__)
    train(fold, classes, ic, cfg)


if __name__ == "__main__":
    main()
