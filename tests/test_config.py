"""The configuration schema: defaults are filled, and bad keys or types name the key."""

import copy
from pathlib import Path

import pytest
import yaml

from skydetect.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"


def load(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("path", ["config/config.yaml", "tests/workflow/config.yaml"])
def test_shipped_configs_are_valid(path):
    cfg = validate_config(load(ROOT / path), SCHEMA)
    assert cfg["planck"]["source"] in {"simulate", "download", "local"}
    assert set(cfg["detectors"]) <= {"clusters", "bubbles"}


def test_defaults_are_filled():
    cfg = validate_config({}, SCHEMA)
    assert cfg["seed"] == 42
    assert cfg["planck"]["nside"] == 2048
    assert cfg["clusters"]["tiles"] == {"validation": [9, 25, 38, 41], "test": [6]}


def test_defaults_are_not_shared_between_configs():
    a = validate_config({}, SCHEMA)
    a["clusters"]["tiles"]["test"].append(7)
    b = validate_config({}, SCHEMA)
    assert b["clusters"]["tiles"]["test"] == [6]


def test_unknown_key_is_named():
    cfg = copy.deepcopy(load(ROOT / "config/config.yaml"))
    cfg["planck"]["nsid"] = 512
    with pytest.raises(ConfigError, match=r"planck\.nsid"):
        validate_config(cfg, SCHEMA)


def test_unknown_top_level_key_is_named():
    with pytest.raises(ConfigError, match="'colour'"):
        validate_config({"colour": "blue"}, SCHEMA)


def test_wrong_type_is_named():
    cfg = copy.deepcopy(load(ROOT / "config/config.yaml"))
    cfg["planck"]["nside"] = "big"
    with pytest.raises(ConfigError, match=r"'planck\.nside'"):
        validate_config(cfg, SCHEMA)


def test_tile_out_of_range_is_named():
    with pytest.raises(ConfigError, match=r"clusters\.tiles\.test\.0"):
        validate_config({"clusters": {"tiles": {"test": [48]}}}, SCHEMA)
