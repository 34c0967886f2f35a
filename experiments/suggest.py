"""Config mistakes as ConfigErrors with a "did you mean" (difflib over the schema's keys / the group's options).

`unknown_keys` finds keys a `+key=value` override slipped past the schema; `non_finite` rejects nan/inf in any
float; `from_hydra` turns Hydra's own composition errors into one-line ConfigErrors.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Iterator

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from experiments.schema import ConfigError

INTERNAL_PREFIX = "base_"  # schema entries (base_model, base_chars) that group files extend; never a choice


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean `x`?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def public(options: Iterable[str]) -> list[str]:
    """A config group's options without the internal schema entries."""
    return sorted(o for o in options if not o.startswith(INTERNAL_PREFIX))


def unknown_option(group: str, choice: str, options: Iterable[str]) -> ConfigError:
    choices = public(options)
    return ConfigError(f"{group}={choice!r} is not an option of `{group}`{did_you_mean(choice, choices)}; "
                       f"choices: {', '.join(choices)}")


def unknown_key(full_key: str, known: Iterable[str]) -> ConfigError:
    leaf = full_key.rsplit(".", 1)[-1]
    known = sorted(known)
    return ConfigError(f"{full_key} is not a config key{did_you_mean(leaf, known)}; keys here: {', '.join(known)}")


def _typed_nodes(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, DictConfig, type]]:
    """(dotted path, node, dataclass) of every node typed by a dataclass schema, depth first."""
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        yield prefix, node, schema
    for key in node:
        if key == "hydra":
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            yield from _typed_nodes(child, f"{prefix}{key}.")


def unknown_keys(cfg: DictConfig) -> None:
    """Raise for a key that no schema declares (how `+method.prune_fration=0.2` slips through composition)."""
    for prefix, node, schema in _typed_nodes(cfg):
        declared = {f.name for f in dataclasses.fields(schema)}
        for key in node:
            if key not in declared and not (prefix == "" and key == "hydra"):
                raise unknown_key(f"{prefix}{key}", declared)


def non_finite(obj, prefix: str = "") -> None:
    """Raise for nan or inf in any float of a validated config (dataclasses, lists, dicts)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ConfigError(f"{prefix.rstrip('.')}={obj!r} is invalid; allowed: a finite number")
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            non_finite(getattr(obj, f.name), f"{prefix}{f.name}.")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            non_finite(value, f"{prefix}{key}.")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            non_finite(value, f"{prefix[:-1]}[{i}].")


def group_override(overrides: Iterable[str], conf_dir) -> ConfigError | None:
    """The first `group=value` override whose value is not one of the group's files (Hydra's own message for
    `debug=0` names neither the group nor the choices)."""
    from pathlib import Path

    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        group = Path(conf_dir) / key
        if group.is_dir():
            options = [p.stem for p in group.glob("*.yaml")]
            chosen = [v.strip() for v in value.strip("[]").split(",")] if value.startswith("[") else [value]
            if bad := [v for v in chosen if v not in options]:
                return unknown_option(key, bad[0], options)
    return None


def from_hydra(error: BaseException) -> ConfigError | None:
    """A one-line ConfigError for a Hydra/OmegaConf composition error, or None if `error` is not one."""
    from hydra.errors import HydraException, MissingConfigException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        return unknown_option(group or "config", choice, error.options)
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        schema = getattr(cause, "object_type", None)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and dataclasses.is_dataclass(schema):
            return unknown_key(cause.full_key, (f.name for f in dataclasses.fields(schema)))
        if isinstance(cause, ValidationError):
            problem = str(cause).splitlines()[0]
            return ConfigError(f"{cause.full_key}: {problem}")
    if isinstance(error, HydraException):
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return ConfigError("; ".join(lines[:3]) if lines else type(error).__name__)
    return None
