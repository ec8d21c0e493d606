"""Train the adversarial autoencoder on the UCSD Ped2 training frames; see --help for the options."""

from utils.video import train_driver

if __name__ == "__main__":
    train_driver(default_config="configs/ucsd.yaml")
