"""Configuration validation against ``config/schema.yaml``.

The workflow calls :func:`validate_config` before any job starts: defaults from the schema are
filled in, and the first violation is reported with the dotted key that caused it, e.g.
``config key 'planck.nside': 'abc' is not of type 'integer'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


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


def load_schema(schema_path: str | Path) -> dict:
    with open(schema_path) as fh:
        return yaml.safe_load(fh)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate ``config`` in place (filling schema defaults) and return it.

    Raises :class:`ConfigError` naming the offending key.
    """
    schema = load_schema(schema_path)
    cls = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(cls)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
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
    return config
