"""Strict configuration loading: unknown keys, wrong types and invalid values stop the run."""

import os

import pytest
import yaml

from utils.config import ConfigError, inlier_sets, load_config, parse_override

from conftest import REPO_ROOT

MNIST_YAML = os.path.join(REPO_ROOT, "configs", "mnist.yaml")


def write_yaml(tmp_path, data):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_every_shipped_config_loads():
    for name in sorted(os.listdir(os.path.join(REPO_ROOT, "configs"))):
        cfg = load_config(os.path.join(REPO_ROOT, "configs", name))
        assert cfg.DATASET.NAME


def test_unknown_key_suggests_closest(tmp_path):
    path = write_yaml(tmp_path, {"TRAIN": {"EPOCHS": 10}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "TRAIN.EPOCHS" in message
    assert "TRAIN.EPOCH_COUNT" in message
    assert path in message


def test_unknown_section_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown key TRIAN"):
        load_config(write_yaml(tmp_path, {"TRIAN": {"EPOCH_COUNT": 1}}))


@pytest.mark.parametrize("override, fragment", [
    ("TRAIN.BASE_LEARNING_RATE=-0.1", "TRAIN.BASE_LEARNING_RATE"),
    ("TRAIN.EPOCH_COUNT=ten", "TRAIN.EPOCH_COUNT must be of type int"),
    ("TRAIN.EPOCH_COUNT=2.5", "TRAIN.EPOCH_COUNT must be of type int"),
    ("RUN.INLIER_SETS=[[10]]", "class labels in 0..9"),
    ("RUN.INLIER_SETS=[[1, 1]]", "no repeated class"),
    ("TEST.PERCENTAGES=[0, 50]", "strictly between 0 and 100"),
    ("TEST.PERCENTAGES=[100]", "strictly between 0 and 100"),
    ("RUN.FOLDS=[5]", "fold indices in 0..4"),
    ("MODEL.INPUT_IMAGE_SIZE=48", "one of [32, 64]"),
    ("MODEL.ARCH=resnet", "one of ['light', 'gpnd']"),
    ("RUN.DEVICE=tpu", "one of ['auto', 'cpu', 'cuda']"),
    ("DATASET.FOLDS_COUNT=2", "at least 3"),
])
def test_invalid_value_names_key_and_value(override, fragment):
    with pytest.raises(ConfigError) as error:
        load_config(MNIST_YAML, [override])
    assert fragment in str(error.value)
    assert "command line" in str(error.value) or MNIST_YAML in str(error.value)


def test_invalid_value_in_file_names_file(tmp_path):
    path = write_yaml(tmp_path, {"TRAIN": {"BASE_LEARNING_RATE": -1.0}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert path in str(error.value)
    assert "-1.0" in str(error.value)


def test_command_line_overrides_file():
    cfg = load_config(MNIST_YAML, ["TRAIN.EPOCH_COUNT=3", "TEST.MUL=0.5"])
    assert cfg.TRAIN.EPOCH_COUNT == 3
    assert cfg.TEST.MUL == 0.5


def test_integer_accepted_for_float():
    cfg = load_config(MNIST_YAML, ["TEST.MUL=1"])
    assert isinstance(cfg.TEST.MUL, float)


def test_parse_override_nests_keys():
    assert parse_override("A.B=[1, 2]") == {"A": {"B": [1, 2]}}
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        parse_override("A.B")


def test_missing_config_file_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "absent.yaml"))


def test_empty_inlier_sets_mean_every_class():
    cfg = load_config(MNIST_YAML)
    assert inlier_sets(cfg) == [[label] for label in range(10)]


def test_quality_benchmark_variants_load():
    """Check that each row of benchmarks/bench_quality.py is a valid config with its stated network."""
    import argparse
    import sys

    benchmarks_dir = os.path.join(REPO_ROOT, "benchmarks")
    sys.path.insert(0, benchmarks_dir)
    try:
        import bench_quality
    finally:
        sys.path.remove(benchmarks_dir)
    args = argparse.Namespace(epochs=3, device="cpu")

    for name, (_, base) in bench_quality.VARIANTS.items():
        assert base is None or bench_quality.VARIANTS[base][1] is None, f"{name}: its base variant must train"
        cfg = bench_quality.variant_config(args, name)
        assert cfg.TRAIN.EPOCH_COUNT == 3
        assert cfg.RUN.FOLDS == [0]

    expected_networks = [("gpnd", "gpnd", 128), ("light", "light", 32), ("light 8", "light", 8),
                         ("light 16", "light", 16), ("light 64", "light", 64)]
    for name, arch, width in expected_networks:
        cfg = bench_quality.variant_config(args, name)
        assert cfg.MODEL.ARCH == arch, name
        assert cfg.MODEL.WIDTH == width, name
