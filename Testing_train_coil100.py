"""Train one model per (fold, random inlier set) of the coil100 grid; see --help for the task options."""

from utils.drivers import train_driver

if __name__ == "__main__":
    train_driver(default_config="configs/coil100.yaml")
