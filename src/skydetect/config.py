"""Configuration validation against ``config/schema.yaml``, then rules between keys.

The workflow calls :func:`validate_config` before any job starts: defaults from the schema are
filled in, and the first violation is reported with the dotted key that caused it, e.g.
``config key 'planck.nside': 'abc' is not of type 'integer'``. Then :func:`cross_check`
applies the rules a single key's schema cannot express (disjoint splits, non-empty test lists,
the patch size against the U-Net depth, the bubble score thresholds, the NSIDE of local maps,
...); every problem found is listed, each naming the dotted keys involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from skydetect.config_inputs import input_rules
from skydetect.schema import load_schema


class ConfigError(ValueError):
    """A configuration value or key that the schema does not accept."""


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    default = subschema["default"]
                    instance[name] = (
                        yaml.safe_load(yaml.safe_dump(default))
                        if isinstance(default, dict | list)
                        else default
                    )
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate ``config`` in place (filling schema defaults) and return it.

    Raises :class:`ConfigError` naming the offending key.
    """
    schema = load_schema(schema_path)
    cls = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(cls)(schema)
    errors = _coerce_command_line_strings(validator, config)
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            unexpected = sorted(set(err.instance) - set(allowed))
            keys = ", ".join(
                f"'{_key([*err.absolute_path, k]) if err.absolute_path else k}'" for k in unexpected
            )
            msg = f"unknown config key {keys} (allowed here: {', '.join(allowed)})"
        else:
            msg = f"config key '{_key(err.absolute_path)}': {err.message}"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{msg}{more} [schema: {schema_path}]")
    problems = cross_check(config)
    if problems:
        raise ConfigError(
            "configuration rules violated:\n  - " + "\n  - ".join(problems)
        )
    return config


_YAML_TYPES = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}


def _coerce_command_line_strings(validator, config: dict, rounds: int = 50) -> list:
    """Validate, turning strings where the schema wants a number, boolean or null into that
    value when they read as one in YAML (Snakemake's ``--config 'key={a: {b: 2}}'`` passes
    every nested value as a string); return the remaining errors, sorted by key."""
    for _ in range(rounds):
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        fixed = False
        for err in errors:
            if err.validator != "type" or not isinstance(err.instance, str) or not err.path:
                continue
            wanted = [err.validator_value] if isinstance(err.validator_value, str) else list(
                err.validator_value
            )
            try:
                value = yaml.safe_load(err.instance)
            except yaml.YAMLError:
                continue
            if any(isinstance(value, _YAML_TYPES[t]) for t in wanted if t in _YAML_TYPES) and not (
                isinstance(value, bool) and "boolean" not in wanted
            ):
                parent = config
                for part in list(err.absolute_path)[:-1]:
                    parent = parent[part]
                parent[err.absolute_path[-1]] = value
                fixed = True
        if not fixed:
            return errors
    return sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))


# --------------------------------------------------------------------------- cross-key rules
def unet_run_names(config: dict) -> list[str]:
    """The U-Net run names: ``clusters.train.runs`` (mapping) or ``clusters.train.run``."""
    train = config.get("clusters", {}).get("train", {})
    if isinstance(train.get("runs"), dict):
        return [str(r) for r in train["runs"]]
    run = train.get("run")
    return [str(run)] if run is not None else []


def bubble_splits(config: dict) -> tuple[str, dict]:
    """(dotted key, {split: [field longitudes]}) of ``bubbles.fields``."""
    fields = config.get("bubbles", {}).get("fields")
    return "bubbles.fields", fields if isinstance(fields, dict) else {}


def _field_code(glon) -> int:
    # the GLIMPSE tile code's longitude part (0.01 deg), as skydetect.sky.spitzer.field_name
    return int(round((float(glon) % 360.0) * 100)) % 36000


def _overlaps(key: str, splits: dict, code=lambda x: x) -> list[str]:
    out = []
    names = [s for s in ("train", "validation", "test") if s in splits]
    for split in names:
        seen: dict = {}
        for v in splits[split] or []:
            c = code(v)
            if c in seen:
                out.append(f"'{key}.{split}' lists {v!r} twice")
            seen[c] = v
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted({code(v) for v in splits[a] or []} & {code(v) for v in splits[b] or []})
            if common:
                shown = [v for v in splits[a] if code(v) in common]
                out.append(
                    f"'{key}.{a}' and '{key}.{b}' share {shown}: a split must not score "
                    "or select a model on its own training or validation data"
                )
    return out


def _cluster_rules(cfg: dict) -> list[str]:
    out = []
    cl = cfg.get("clusters", {})
    tiles = cl.get("tiles", {})
    val, test = list(tiles.get("validation", [])), list(tiles.get("test", []))
    out += _overlaps("clusters.tiles", {"validation": val, "test": test})
    if not test:
        out.append("'clusters.tiles.test' is empty: detection and evaluation need a test tile")
    if not val:
        out.append("'clusters.tiles.validation' is empty: training needs a validation tile")
    if len(set(val) | set(test)) >= 48:
        out.append(
            "'clusters.tiles.validation' and 'clusters.tiles.test' take all 48 tiles: "
            "no training tile is left"
        )
    size = cl.get("patch", {}).get("size")
    filters = cl.get("model", {}).get("filter_num")
    if size is not None and filters:
        step = 2 ** (len(filters) - 1)
        if size % step:
            ok = sorted({size - size % step, size - size % step + step} - {0})
            out.append(
                f"'clusters.patch.size' ({size}) is not divisible by 2**(len("
                f"'clusters.model.filter_num') - 1) = {step} ({len(filters)} U-Net levels); "
                f"use e.g. {' or '.join(map(str, ok))}"
            )
    out += _patch_margin_rules(cl.get("patch", {}))
    bands = [str(b) for b in cfg.get("planck", {}).get("bands", [])]
    mmf = cl.get("mmf", {})
    if mmf.get("enabled") and "clusters" in cfg.get("detectors", []):
        freq = [b for b in bands if b != "y"]
        chosen = [str(b) for b in (mmf.get("bands") or freq)]
        bad = [b for b in chosen if b not in freq]
        if bad:
            out.append(
                f"'clusters.mmf.bands' {bad} are not frequency bands of 'planck.bands' {freq}"
            )
        elif not chosen:
            out.append("'clusters.mmf.enabled' needs a frequency band in 'planck.bands'")
        ps, apo = mmf.get("patch_size"), mmf.get("apodisation_px")
        if ps is not None and apo is not None and ps <= 2 * apo + 8:
            out.append(
                f"'clusters.mmf.patch_size' ({ps}) leaves no interior inside the "
                f"'clusters.mmf.apodisation_px' ({apo}) border on both sides"
            )
    return out


def _patch_margin_rules(patch: dict) -> list[str]:
    """Margins and shifts that must leave part of a ``clusters.patch.size`` patch."""
    size = patch.get("size")
    if size is None:
        return []
    out = []
    margin = patch.get("cover_margin")
    if margin is not None and not 2 * margin < size:
        out.append(
            f"'clusters.patch.cover_margin' ({margin}) leaves nothing of a "
            f"'clusters.patch.size' ({size}) patch: it must be below {size / 2:g}"
        )
    shift = patch.get("max_shift")
    if shift is not None and not shift < size / 2:
        out.append(
            f"'clusters.patch.max_shift' ({shift}) can move a cluster out of its "
            f"'clusters.patch.size' ({size}) patch: it must be below {size / 2:g}"
        )
    return out


def _bubble_rules(cfg: dict) -> list[str]:
    out = []
    bub = cfg.get("bubbles", {})
    key, splits = bubble_splits(cfg)
    out += _overlaps(key, splits, _field_code)
    for split in ("train", "validation", "test"):
        if split in splits and not splits[split]:
            out.append(f"'{key}.{split}' is empty")
    thresholds = bub.get("train", {}).get("thresholds") or []
    min_score = bub.get("detect", {}).get("min_score")
    if thresholds and min_score is not None and min_score > min(thresholds):
        out.append(
            f"'bubbles.detect.min_score' ({min_score}) exceeds the lowest of "
            f"'bubbles.train.thresholds' ({min(thresholds)}): boxes below it are dropped "
            "before a threshold is chosen"
        )
    neg = bub.get("negatives", {})
    n_groups = neg.get("n_groups")
    if n_groups is not None:
        weights = neg.get("group_weights")
        if weights is not None and len(weights) != n_groups:
            out.append(
                f"'bubbles.negatives.group_weights' has {len(weights)} entries but "
                f"'bubbles.negatives.n_groups' is {n_groups}"
            )
        bad = [g for g in neg.get("drop_groups") or [] if not 0 <= g < n_groups]
        if bad:
            out.append(
                f"'bubbles.negatives.drop_groups' {bad} outside 0..{n_groups - 1} "
                "('bubbles.negatives.n_groups')"
            )
        elif len(set(neg.get("drop_groups") or [])) >= n_groups:
            out.append("'bubbles.negatives.drop_groups' drops every negative group")
    out += _mock_bubble_rules(bub.get("simulate", {}))
    ssd = bub.get("ssd", {})
    n_maps = {"vgg16": 6, "light": 4}.get(ssd.get("backbone"), None)
    if ssd.get("aspect_ratios") is not None:
        if ssd.get("backbone") == "vgg16" and len(ssd["aspect_ratios"]) != 6:
            out.append(
                f"'bubbles.ssd.aspect_ratios' has {len(ssd['aspect_ratios'])} entries; the "
                "vgg16 backbone ('bubbles.ssd.backbone') has 6 feature maps"
            )
        n_maps = len(ssd["aspect_ratios"])
    if ssd.get("scales") is not None and n_maps is not None and len(ssd["scales"]) != n_maps + 1:
        out.append(
            f"'bubbles.ssd.scales' has {len(ssd['scales'])} entries; {n_maps} feature maps "
            f"('bubbles.ssd.backbone' / 'bubbles.ssd.aspect_ratios') need {n_maps + 1}"
        )
    size = bub.get("preprocess", {}).get("input_size")
    if ssd.get("backbone") == "vgg16" and size is not None and size != 300:
        out.append(
            f"'bubbles.ssd.backbone' vgg16 is the SSD300: 'bubbles.preprocess.input_size' "
            f"must be 300, not {size}"
        )
    return out


DUST_BANDS = ("857", "545", "353")  # dust-dominated channels, highest first


def mask_dust_band(cfg: dict) -> str | None:
    """The band whose map the mock sky's Galactic mask is made from: planck.masks.dust_band,
    else the highest-frequency dust band of planck.bands (None: there is none)."""
    chosen = cfg.get("planck", {}).get("masks", {}).get("dust_band")
    if chosen is not None:
        return str(chosen)
    bands = [str(b) for b in cfg.get("planck", {}).get("bands", [])]
    return next((b for b in DUST_BANDS if b in bands), None)


def _mask_rules(cfg: dict) -> list[str]:
    planck = cfg.get("planck", {})
    if planck.get("source") != "simulate":  # the mock's own masks only
        return []
    bands = [str(b) for b in planck.get("bands", [])]
    band = planck.get("masks", {}).get("dust_band")
    if band is not None and str(band) not in bands:
        return [f"'planck.masks.dust_band' ({band}) is not in 'planck.bands' {bands}"]
    return []


def _mock_bubble_rules(sim: dict) -> list[str]:
    """The mock's binned clear fractions match their edges; its ranges are ordered."""
    out = []
    for frac, edges in (
        ("clear_fraction_by_glat", "clear_glat_edges_deg"),
        ("clear_fraction_by_size", "clear_size_edges_arcmin"),
    ):
        if frac in sim and edges in sim:
            if len(sim[frac]) != len(sim[edges]) + 1:
                out.append(
                    f"'bubbles.simulate.{frac}' has {len(sim[frac])} entries; "
                    f"'bubbles.simulate.{edges}' ({len(sim[edges])} edges) needs "
                    f"{len(sim[edges]) + 1}"
                )
            if list(sim[edges]) != sorted(sim[edges]):
                out.append(f"'bubbles.simulate.{edges}' must increase")
    for key in ("contrast_clear", "contrast_unclear", "strength24_clear"):
        lo_hi = sim.get(key)
        if lo_hi is not None and len(lo_hi) == 2 and lo_hi[0] > lo_hi[1]:
            out.append(f"'bubbles.simulate.{key}' [{lo_hi[0]}, {lo_hi[1]}]: low above high")
    if sim.get("unclear_kinds") and sum(sim["unclear_kinds"].values()) <= 0:
        out.append("'bubbles.simulate.unclear_kinds': the weights sum to 0")
    return out


def cross_check(config: dict) -> list[str]:
    """Rules between keys (after the schema): one message per problem, naming the keys; then
    the files and URLs the configuration names (:func:`skydetect.config_inputs.input_rules`)."""
    return (
        _cluster_rules(config) + _bubble_rules(config) + _mask_rules(config)
        + input_rules(config)
    )  # fmt: skip
