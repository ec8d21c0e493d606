"""Score every (fold, random inlier set) model of the coil100 grid and print mean and std per protocol."""

from utils.drivers import test_driver

if __name__ == "__main__":
    test_driver(default_config="configs/coil100.yaml")
