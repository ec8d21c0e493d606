"""Score every UCSD Ped2 test frame and print frame-level micro AUC, macro AUC and EER."""

from utils.video import test_driver

if __name__ == "__main__":
    test_driver(default_config="configs/ucsd.yaml")
