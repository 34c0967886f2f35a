"""Config keys older runs lack: each such run takes the schema's default for it (the value it ran with, since a
key is added with the default that keeps the old behaviour), so runs that predate a key are neither pooled with
every value as a wildcard nor split off for a value they never chose.

    fill_defaults(rows)   # row["config"][key] = the default; row["config_defaulted"] = {key: default}

A key with no schema default (a group choice's own key, a key the schemas no longer have) gets `ABSENT`, a value of
its own: those runs form separate rows.
"""

from __future__ import annotations

import dataclasses
import json

from experiments.tables.runs import SWEEP_KEY

ABSENT = "(absent)"  # the value of a key a run lacks and no schema gives a default for
_NO_DEFAULT = object()


def _field_default(cls, name: str):
    """The default of dataclass `cls`'s field `name` (a nested dataclass's own default object), or _NO_DEFAULT."""
    if not dataclasses.is_dataclass(cls):
        return _NO_DEFAULT
    for f in dataclasses.fields(cls):
        if f.name != name:
            continue
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
    return _NO_DEFAULT


def _walk(value, parts: list[str]):
    for part in parts:
        value = _field_default(type(value), part) if dataclasses.is_dataclass(value) else _NO_DEFAULT
        if value is _NO_DEFAULT:
            return _NO_DEFAULT
    return value


def _data(value):
    """Dataclass defaults (also inside lists and dicts) as plain data."""
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _data(v) for k, v in value.items()}
    return value


def _plain(value):
    """As runs.flatten stores a value: lists as JSON text, dataclass defaults as plain data."""
    value = _data(value)
    return json.dumps(value) if isinstance(value, list) else value


def schema_default(config: dict, key: str):
    """The default of dotted `key` in the schema of `config`'s group (the one whose `name` matches the run's, when
    several schemas of the group have the key), or _NO_DEFAULT when no schema (or no single default) gives one."""
    import importlib

    from experiments.config import SCHEMA_MODULES, Config
    from experiments.schema import SCHEMAS

    for module in SCHEMA_MODULES:  # every task's schemas register themselves on import
        importlib.import_module(module)
    group, _, rest = key.partition(".")
    found = set()
    if rest:
        for (g, _name), cls in SCHEMAS.items():
            if g != group:
                continue
            own = _field_default(cls, "name")
            if own is not _NO_DEFAULT and config.get(f"{group}.name") not in (None, own):
                continue  # another method/model/data of the group
            value = _field_default(cls, rest.split(".")[0])
            value = _walk(value, rest.split(".")[1:]) if value is not _NO_DEFAULT else value
            if value is not _NO_DEFAULT:
                found.add(json.dumps(_plain(value), sort_keys=True, default=str))
    value = _walk(_field_default(Config, group), rest.split(".") if rest else [])
    if value is not _NO_DEFAULT:
        found.add(json.dumps(_plain(value), sort_keys=True, default=str))
    return json.loads(found.pop()) if len(found) == 1 else _NO_DEFAULT


def fill_defaults(rows: list[dict]) -> dict[str, dict]:
    """Give every row each config key another row has: the schema default (recorded in row["config_defaulted"])
    or ABSENT. Returns {key: {"default": value, "jobs": [job folders that predate it]}} for the caption."""
    keys = set().union(*(r.get("config", {}) for r in rows)) - {SWEEP_KEY} if rows else set()
    filled: dict[str, dict] = {}
    cache: dict[tuple, object] = {}
    for r in rows:
        config = r.setdefault("config", {})
        for key in sorted(keys - set(config)):
            memo = (key, config.get(f"{key.split('.')[0]}.name"))
            if memo not in cache:
                cache[memo] = schema_default(config, key)
            default = cache[memo]
            config[key] = ABSENT if default is _NO_DEFAULT else default
            if default is not _NO_DEFAULT:
                r.setdefault("config_defaulted", {})[key] = default
            entry = filled.setdefault(key, {"default": config[key], "jobs": set()})
            entry["jobs"].add(r.get("job_dir"))
    return {k: {**v, "jobs": sorted(map(str, v["jobs"]))} for k, v in filled.items()}
