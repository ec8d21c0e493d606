"""Train one model per (fold, inlier set) of the fmnist grid; see --help for the task options."""

from utils.drivers import train_driver

if __name__ == "__main__":
    train_driver(default_config="configs/fmnist.yaml")
