"""The four networks of GPND's adversarial autoencoder.

    Encoder        image (B, C, S, S) -> latent code (B, latent_size)
    Generator      latent code (B, latent_size) -> image (B, C, S, S) in [0, 1] (the decoder)
    Discriminator  image -> probability that it is a real training image
    ZDiscriminator latent code -> probability that it was drawn from the prior N(0, I)

All image networks are stacks of 4x4 stride-2 (transposed) convolutions with BatchNorm, LeakyReLU
0.2 in the encoder and discriminator and ReLU in the decoder, as in GPND. Input sizes 32 and 64
are supported; a 64-pixel input gets one more stride-2 stage.

Two channel plans exist (``MODEL.ARCH``):

- ``gpnd``: the published plan with d = WIDTH (128 in Pidhorskyi et al., NeurIPS 2018): encoder and discriminator
  d/2, 2d, 4d; decoder 2d, 2d, d. For 64-pixel inputs a d-channel stage is inserted (encoder)
  and a d/2-channel stage appended (decoder).
- ``light``: the first layer has WIDTH channels and each further stage doubles them (encoder
  and discriminator w, 2w, 4w), mirrored in the decoder (4w, 2w, w).

``MODEL.SEPARABLE`` makes the inner stride-2 stages depthwise separable: a 4x4 depthwise
(transposed) convolution and a 1x1 pointwise one in place of a dense 4x4 convolution. The
layers that touch the image or the latent code stay dense, because they are small and carry
the most information per weight.

Size per image (from ``describe_networks``; multiply-accumulates of convolutions and linear
layers only, BatchNorm and activations excluded), latent size 16:

    arch, width, input   network          parameters    MACs
    gpnd, 128, 32x32x1   encoder           2,493,776    50.7 M
                         generator         1,642,369    50.9 M
                         discriminator     2,370,881    50.6 M
    light, 32, 32x32x1   encoder             197,744     4.4 M
                         generator           197,793     4.4 M
                         discriminator       167,009     4.3 M
    light, 32, 32x32x1,  encoder              45,680     0.48 M
    separable            generator            45,729     0.48 M
                         discriminator        14,945     0.44 M
    gpnd, 128, 64x64x3   encoder           2,889,424   103.9 M
    light, 32, 64x64x3   encoder             756,592    26.8 M
    any                  z-discriminator      18,817     0.02 M
"""

import math

import torch
from torch import nn

LEAKY_SLOPE = 0.2
# GPND initialises every convolution with N(0, 0.02) weights and zero biases (DCGAN practice).
INIT_STD = 0.02
# Hidden width of the latent discriminator's two hidden layers, as in GPND.
ZD_WIDTH = 128
# Spatial size at the bottom of the encoder (and the top of the decoder).
BOTTOM_SIZE = 4


def stage_count(image_size):
    """Return the number of stride-2 stages between ``image_size`` and the 4x4 bottom."""
    stages = int(round(math.log2(image_size / BOTTOM_SIZE)))
    if image_size < 2 * BOTTOM_SIZE or BOTTOM_SIZE * 2 ** stages != image_size:
        raise ValueError(f"input size {image_size} is not supported: it must be 4 times a power of 2 "
                         f"(the networks use 32 or 64)")
    return stages


def encoder_channels(arch, width, image_size):
    """Return the channel counts of the encoder's (and discriminator's) stride-2 stages."""
    stages = stage_count(image_size)
    if arch == "gpnd":
        plan = [width // 2, width * 2, width * 4]
        if stages == 4:
            plan = [width // 2, width, width * 2, width * 4]
    elif arch == "light":
        plan = [width * 2 ** stage for stage in range(stages)]
    else:
        raise ValueError(f"unknown MODEL.ARCH {arch!r}; expected 'light' or 'gpnd'")
    if len(plan) != stages:
        raise ValueError(f"MODEL.ARCH {arch!r} has no channel plan for input size {image_size}")
    return plan


def decoder_channels(arch, width, image_size):
    """Return the channel counts of the decoder's feature maps from 4x4 upwards."""
    stages = stage_count(image_size)
    if arch == "gpnd":
        plan = [width * 2, width * 2, width] + ([width // 2] if stages == 4 else [])
    elif arch == "light":
        plan = list(reversed(encoder_channels("light", width, image_size)))
    else:
        raise ValueError(f"unknown MODEL.ARCH {arch!r}; expected 'light' or 'gpnd'")
    return plan[:stages]


def init_weights(module):
    """Draw convolution weights from N(0, INIT_STD) and zero their biases, as GPND does."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def down_conv(in_channels, out_channels, separable=False):
    """Build a 4x4 stride-2 convolution that halves the map: (B, in, H, W) -> (B, out, H/2, W/2).

    Separable: a per-channel 4x4 stride-2 convolution, then a 1x1 convolution that mixes the
    channels. The pointwise layer's bias makes the depthwise one's redundant.
    """
    if not separable:
        return nn.Conv2d(in_channels, out_channels, 4, 2, 1)
    return nn.Sequential(nn.Conv2d(in_channels, in_channels, 4, 2, 1, groups=in_channels, bias=False),
                         nn.Conv2d(in_channels, out_channels, 1))


def up_conv(in_channels, out_channels, separable=False):
    """Build a 4x4 stride-2 transposed convolution that doubles the map: (B, in, H, W) -> (B, out, 2H, 2W).

    Separable: a 1x1 convolution that mixes the channels at the low resolution, then a
    per-channel 4x4 stride-2 transposed convolution. Mixing first is cheaper because the
    decoder narrows as it grows.
    """
    if not separable:
        return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.ConvTranspose2d(out_channels, out_channels, 4, 2, 1, groups=out_channels))


class _ConvDownStack(nn.Module):
    """Stride-2 convolutions from the image down to a 4x4 map; shared by encoder and discriminator."""

    def __init__(self, channels, plan, separable=False):
        super().__init__()
        layers = []
        in_channels = channels
        for index, out_channels in enumerate(plan):
            # The first stage reads the image itself and stays dense.
            layers.append(down_conv(in_channels, out_channels, separable and index > 0))
            # GPND normalises every stage but the first.
            if index > 0:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class Encoder(nn.Module):
    """Map an image to its latent code."""

    def __init__(self, latent_size=16, width=32, channels=1, image_size=32, arch="light", separable=False):
        super().__init__()
        plan = encoder_channels(arch, width, image_size)
        self.features = _ConvDownStack(channels, plan, separable)
        self.to_latent = nn.Conv2d(plan[-1], latent_size, BOTTOM_SIZE, 1, 0)
        init_weights(self)

    def forward(self, x):
        # (B, C, S, S) -> (B, plan[-1], 4, 4)
        h = self.features(x)
        # a 4x4 convolution without padding -> (B, latent, 1, 1) -> (B, latent)
        return self.to_latent(h).flatten(1)


class Generator(nn.Module):
    """Decode a latent code into an image with values in [0, 1]."""

    def __init__(self, latent_size=16, width=32, channels=1, image_size=32, arch="light", separable=False):
        super().__init__()
        plan = decoder_channels(arch, width, image_size)
        layers = [nn.ConvTranspose2d(latent_size, plan[0], BOTTOM_SIZE, 1, 0),
                  nn.BatchNorm2d(plan[0]), nn.ReLU()]
        for in_channels, out_channels in zip(plan[:-1], plan[1:]):
            layers += [up_conv(in_channels, out_channels, separable),
                       nn.BatchNorm2d(out_channels), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.to_image = nn.ConvTranspose2d(plan[-1], channels, 4, 2, 1)
        self.latent_size = latent_size
        init_weights(self)

    def forward(self, z):
        # (B, latent) -> (B, latent, 1, 1), then a 4x4 transposed convolution -> (B, plan[0], 4, 4)
        h = self.features(z.view(-1, self.latent_size, 1, 1))
        # last stride-2 stage to (B, C, S, S); tanh * 0.5 + 0.5 puts pixels in [0, 1] as in GPND
        return torch.tanh(self.to_image(h)) * 0.5 + 0.5


class Discriminator(nn.Module):
    """Tell real training images from generated ones; returns probabilities of shape (B,)."""

    def __init__(self, width=32, channels=1, image_size=32, arch="light", separable=False):
        super().__init__()
        plan = encoder_channels(arch, width, image_size)
        self.features = _ConvDownStack(channels, plan, separable)
        self.to_logit = nn.Conv2d(plan[-1], 1, BOTTOM_SIZE, 1, 0)
        init_weights(self)

    def forward(self, x):
        # (B, C, S, S) -> (B, plan[-1], 4, 4) -> (B, 1, 1, 1) -> (B,)
        return torch.sigmoid(self.to_logit(self.features(x)).flatten())


class ZDiscriminator(nn.Module):
    """Tell prior samples N(0, I) from encoder outputs; returns probabilities of shape (B,)."""

    def __init__(self, latent_size=16, width=ZD_WIDTH):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(latent_size, width), nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(width, width), nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(width, 1))

    def forward(self, z):
        # (B, latent) -> (B, 1) -> (B,)
        return torch.sigmoid(self.layers(z).flatten())


def build_networks(cfg):
    """Build (encoder, generator, discriminator, z_discriminator) from the MODEL section."""
    model = cfg.MODEL
    image_args = dict(width=model.WIDTH, channels=model.INPUT_IMAGE_CHANNELS,
                      image_size=model.INPUT_IMAGE_SIZE, arch=model.ARCH, separable=model.SEPARABLE)
    return (Encoder(model.LATENT_SIZE, **image_args),
            Generator(model.LATENT_SIZE, **image_args),
            Discriminator(**image_args),
            ZDiscriminator(model.LATENT_SIZE))


def count_macs(module, example):
    """Count multiply-accumulates of convolutions and linear layers for one forward pass."""
    total = 0

    def hook(layer, inputs, output):
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            total += output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, nn.ConvTranspose2d):
            total += inputs[0].numel() * layer.out_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, nn.Linear):
            total += output.numel() * layer.in_features

    handles = [layer.register_forward_hook(hook) for layer in module.modules()
               if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    was_training = module.training
    module.eval()
    with torch.no_grad():
        module(example)
    module.train(was_training)
    for handle in handles:
        handle.remove()
    return total // example.shape[0]


def describe_networks(cfg):
    """Return rows (name, parameters, MACs per image) for the four networks of ``cfg``."""
    encoder, generator, discriminator, z_discriminator = build_networks(cfg)
    size, channels, latent = cfg.MODEL.INPUT_IMAGE_SIZE, cfg.MODEL.INPUT_IMAGE_CHANNELS, cfg.MODEL.LATENT_SIZE
    image = torch.zeros(2, channels, size, size)
    code = torch.zeros(2, latent)
    rows = []
    for name, network, example in [("encoder", encoder, image), ("generator", generator, code),
                                   ("discriminator", discriminator, image),
                                   ("z-discriminator", z_discriminator, code)]:
        parameters = sum(parameter.numel() for parameter in network.parameters())
        rows.append((name, parameters, count_macs(network, example)))
    return rows
