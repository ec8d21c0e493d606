"""Score every (fold, inlier set) model of the fmnist grid and print mean and std per percentage."""

from utils.drivers import test_driver

if __name__ == "__main__":
    test_driver(default_config="configs/fmnist.yaml")
