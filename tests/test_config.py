"""The configuration schema: defaults are filled, and bad keys or types name the key."""

import copy
import re
from pathlib import Path

import pytest
import yaml

from skydetect.config import ConfigError, validate_config
from skydetect.schema import schema_defaults

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
    assert cfg["clusters"]["tiles"]["test"] == [0, 6, 19]


def test_defaults_are_not_shared_between_configs():
    a = validate_config({}, SCHEMA)
    a["clusters"]["tiles"]["test"].append(7)
    b = validate_config({}, SCHEMA)
    assert b["clusters"]["tiles"]["test"] == [0, 6, 19]


def _sections(cfg, schema, prefix=""):
    """Every dotted section of a validated config (a key whose schema lists properties), with
    its content."""
    for key, value in cfg.items():
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in sub:
            yield f"{prefix}{key}", value
            yield from _sections(value, sub, f"{prefix}{key}.")


def test_library_defaults_are_what_validation_fills_in():
    """schema_defaults (what the library's settings take as defaults) gives every section of
    the validated empty config exactly, nested defaults included; a section the schema lacks
    is named."""
    cfg = validate_config({}, SCHEMA)
    sections = dict(_sections(cfg, load(SCHEMA)))
    assert {
        "clusters.mmf",
        "clusters.train.loss_params",
        "bubbles.train",
        "planck.simulate",
    } <= set(sections)
    for name, content in sections.items():
        assert schema_defaults(name) == content, name
    with pytest.raises(KeyError, match="clusters.nope"):
        schema_defaults("clusters.nope")
    with pytest.raises(FileNotFoundError, match="nowhere/schema.yaml"):
        schema_defaults("clusters", "/nowhere/schema.yaml")


def test_settings_take_the_schema_defaults():
    """The settings objects built with no arguments are the validated empty config's."""
    from skydetect.bubbles.train_settings import TrainSettings
    from skydetect.clusters.detect import DetectParams
    from skydetect.clusters.mmf import MMFConfig
    from skydetect.sky.params import SimulationParams

    cfg = validate_config({}, SCHEMA)
    assert MMFConfig(bands=["143"]).snr_threshold == cfg["clusters"]["mmf"]["snr_threshold"]
    assert DetectParams().threshold == cfg["clusters"]["detect"]["threshold"]
    assert TrainSettings().epochs == cfg["bubbles"]["train"]["epochs"]
    sim = SimulationParams()
    assert sim.calibration_error == cfg["planck"]["simulate"]["calibration_error"]
    sim.calibration_error["100"] = 0.5  # a copy per instance: the schema's default is untouched
    assert SimulationParams().calibration_error == cfg["planck"]["simulate"]["calibration_error"]


def test_unknown_key_is_named():
    cfg = copy.deepcopy(load(ROOT / "config/config.yaml"))
    cfg["planck"]["nsid"] = 512
    with pytest.raises(ConfigError, match=r"planck\.nsid"):
        validate_config(cfg, SCHEMA)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("n_classes", "n_groups"),
        ("drop_classes", "drop_groups"),
        ("class_weights", "group_weights"),
    ],
)
def test_old_negative_group_keys_are_refused(old, new):
    """The negatives' k-means keys say group: a config with an old key fails naming it."""
    cfg = copy.deepcopy(load(ROOT / "config/config.yaml"))
    neg = cfg["bubbles"]["negatives"]
    neg[old] = neg.pop(new)
    with pytest.raises(ConfigError, match=rf"'bubbles\.negatives\.{old}'.*{new}"):
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


# --------------------------------------------------------------------------- cross-key rules
def shipped():
    return copy.deepcopy(load(ROOT / "config/config.yaml"))


@pytest.mark.parametrize(
    ("edit", "keys"),
    [
        (
            lambda c: c["clusters"]["tiles"].update(validation=[6, 9], test=[6]),
            ["clusters.tiles.validation", "clusters.tiles.test", "[6]"],
        ),
        (lambda c: c["clusters"]["tiles"].update(test=[]), ["clusters.tiles.test", "empty"]),
        (
            lambda c: c["clusters"]["tiles"].update(validation=list(range(47)), test=[47]),
            ["no training tile"],
        ),
        (
            lambda c: c["clusters"]["patch"].update(size=63),
            ["clusters.patch.size", "clusters.model.filter_num", "= 8", "56 or 64"],
        ),
        (
            lambda c: c["bubbles"]["detect"].update(min_score=0.6),
            ["bubbles.detect.min_score", "bubbles.train.thresholds", "0.5"],
        ),
        (
            lambda c: c["bubbles"]["negatives"].update(group_weights=[1, 2]),
            ["bubbles.negatives.group_weights", "bubbles.negatives.n_groups"],
        ),
        (
            lambda c: c["bubbles"]["ssd"].update(backbone="vgg16"),
            ["bubbles.ssd.backbone", "bubbles.preprocess.input_size", "300"],
        ),
        (
            lambda c: (
                c["planck"].update(bands=["100", "y"]),
                c["clusters"]["mmf"].update(bands=["143"]),
            ),
            ["clusters.mmf.bands", "planck.bands"],
        ),
    ],
)
def test_cross_key_rule_names_the_keys(edit, keys):
    cfg = shipped()
    edit(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    for key in keys:
        assert key in str(err.value)


def test_bubble_field_in_two_splits_names_both_keys():
    cfg = shipped()
    key = "fields"
    cfg["bubbles"][key]["validation"] = [27, 30.001]  # the same GLIMPSE field as 30
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    assert f"'bubbles.{key}.train' and 'bubbles.{key}.validation' share [30" in str(err.value)


def test_bubble_splits_are_named_by_their_key():
    from skydetect.config import bubble_splits, cross_check

    cfg = {"bubbles": {"fields": {"train": [15], "validation": [15.0], "test": [18]}}}
    assert bubble_splits(cfg)[0] == "bubbles.fields"
    problems = cross_check(cfg)
    assert any("'bubbles.fields.train' and 'bubbles.fields.validation'" in p for p in problems)


def test_run_names_from_either_layout():
    from skydetect.config import unet_run_names

    assert unet_run_names({"clusters": {"train": {"run": "default"}}}) == ["default"]
    runs = {"unet_hfi": {"bands": ["100"]}, "unet_hfi_y": {"bands": ["100", "y"]}}
    assert unet_run_names({"clusters": {"train": {"runs": runs}}}) == ["unet_hfi", "unet_hfi_y"]


def test_local_map_nside_is_compared_with_planck_nside(tmp_path):
    import healpy as hp
    import numpy as np

    from skydetect.io.fits_maps import write_pr3_map

    path = tmp_path / "100.fits"
    write_pr3_map(path, np.ones(hp.nside2npix(64)), "K_CMB")
    cfg = shipped()
    cfg["planck"].update(source="local", nside=1024, bands=["100"], local={"100": str(path)})
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    msg = str(err.value)
    assert "planck.local.100" in msg and "planck.nside" in msg and "NSIDE = 64" in msg
    assert str(path) in msg
    cfg["planck"]["nside"] = 64
    cfg["clusters"]["mmf"]["enabled"] = True
    validate_config(cfg, SCHEMA)  # consistent: accepted


def test_ssd_scales_must_match_the_feature_maps():
    cfg = shipped()
    cfg["bubbles"]["ssd"]["scales"] = [0.1, 0.3, 0.6]
    with pytest.raises(ConfigError, match=r"'bubbles.ssd.scales' has 3 entries; 4 feature maps"):
        validate_config(cfg, SCHEMA)
    cfg["bubbles"]["ssd"]["aspect_ratios"] = [[2], [2]]
    validate_config(cfg, SCHEMA)  # two maps, three scales: consistent


# ----------------------------------------------------------------- schema defaults and the
# shipped config: a module user who gives only `seed` gets the schema defaults, which must be
# a working configuration; config/config.yaml departs from them only for the laptop run, and
# says why next to each departure.
def _leaves(cfg, prefix=()):
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, str(key)))
        else:
            yield (*prefix, str(key)), value


def _key_lines(lines: list[str], path: tuple[str, ...]) -> list[int]:
    """Line numbers of each key of ``path`` in a block-style YAML text."""
    found, start, parent = [], 0, -1
    for key in path:
        pattern = re.compile(rf"^(\s*)[\"']?{re.escape(key)}[\"']?\s*:")
        child = None  # the indent of this block's keys
        for i in range(start, len(lines)):
            if not lines[i].strip() or lines[i].lstrip().startswith("#"):
                continue
            indent = len(lines[i]) - len(lines[i].lstrip())
            if indent <= parent:
                return found  # left the parent's block
            child = indent if child is None else child
            m = pattern.match(lines[i])
            if m and indent == child:
                found.append(i)
                start, parent = i + 1, indent
                break
        else:
            return found
    return found


def _explained(lines: list[str], path: tuple[str, ...]) -> bool:
    """A comment on the key's line or in the comment line just above it, or the same for the
    block holding it (its parent key); a section rule (``# ---``) explains nothing."""

    def commented(i: int) -> bool:
        above = lines[i - 1].strip() if i > 0 else ""
        return "#" in lines[i] or (above.startswith("#") and not above.startswith("# ---"))

    found = _key_lines(lines, path)
    if len(found) < len(path):
        return False
    return commented(found[-1]) or (len(found) > 1 and commented(found[-2]))


def test_schema_defaults_alone_are_a_working_configuration():
    cfg = validate_config({"seed": 7}, SCHEMA)  # cross_check passes, or this raises
    bands = set(cfg["planck"]["bands"])
    for run, spec in cfg["clusters"]["train"]["runs"].items():
        assert set(spec.get("bands") or bands) <= bands, run
    assert cfg["seed"] == 7


def test_shipped_config_departs_from_the_defaults_only_with_a_reason():
    text = (ROOT / "config/config.yaml").read_text()
    lines = text.splitlines()
    shipped = validate_config(yaml.safe_load(text), SCHEMA)
    defaults = validate_config({}, SCHEMA)
    flat_defaults = dict(_leaves(defaults))
    departures = [p for p, v in _leaves(shipped) if flat_defaults.get(p, object()) != v]
    assert departures, "config/config.yaml is the schema defaults: nothing to explain"
    unexplained = [".".join(p) for p in departures if not _explained(lines, p)]
    assert not unexplained, f"departures from the schema defaults without a comment: {unexplained}"
