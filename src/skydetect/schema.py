"""The workflow's configuration schema, ``config/schema.yaml``: the one home of every default.

The library states no default of a config key itself: a settings dataclass takes the
defaults of its fields from :func:`schema_defaults`, and code that reads a validated config
indexes it (validation filled every default in). The schema sits beside ``src/`` in the
workflow's tree, where the workflow's scripts import the library from.
"""

from __future__ import annotations

import copy
from dataclasses import field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    try:
        with open(path) as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: the workflow's config schema is missing; skydetect is used from the "
            "workflow's source tree (pip install -e .), which holds config/schema.yaml"
        ) from None


def load_schema(schema_path: str | Path = SCHEMA_PATH) -> dict:
    """The schema as a dict (a copy: callers may change it)."""
    return copy.deepcopy(_load(str(schema_path)))


def copied_default(defaults: dict, key: str):
    """A dataclass field whose default is ``defaults[key]`` (a list or dict of
    :func:`schema_defaults`), deep-copied for every instance so that none shares it."""
    return field(default_factory=lambda: copy.deepcopy(defaults[key]))


def _fill(node: dict, value: dict) -> dict:
    """Fill ``value`` with the defaults of ``node``'s properties, descending into objects (the
    schema of ``additionalProperties`` for keys it does not list), as the validator does: a
    missing key takes its default, then its own keys theirs."""
    props, extra = node.get("properties", {}), node.get("additionalProperties")
    for key, sub in props.items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
    for key, item in value.items():
        sub = props.get(key, extra if isinstance(extra, dict) else {})
        if isinstance(item, dict):
            _fill(sub, item)
    return value


def schema_defaults(section: str, schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """The defaults of the keys of the dotted ``section`` (e.g. ``"clusters.mmf"``), filled in
    as :func:`skydetect.config.validate_config` fills them into a config that leaves the
    section empty. Keys without a default are left out; an unknown section is a ``KeyError``
    naming it."""
    node = _load(str(schema_path))
    for key in section.split("."):
        try:
            node = node["properties"][key]
        except KeyError:
            raise KeyError(f"config/schema.yaml has no section {section!r} (at {key!r})") from None
    return _fill(node, {})
