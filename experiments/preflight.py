"""Checks a command before Hydra creates or touches any run folder: every job's config, inputs and folder.

Hydra writes `.hydra/` and its log into the run folder before the task starts, so a bad command aimed at a
finished run would already have touched it. `check(argv)` composes each job the command would run (every value of
every sweep parameter, from the command line or a stored sweep), applies the debug mode, validates it, checks its
inputs, and for a single run checks the folder: writable, not locked by a live run, not another config's run.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from experiments import debug, lock, suggest
from experiments.config import config_hash, register_configs, validate
from experiments.errors import RunFolderError
from experiments.inputs import check_inputs
from experiments.records import read_json
from experiments.schema import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def job_overrides(overrides: list[str], stored: dict) -> list[list[str]]:
    """Override lists that together try every value of every sweep parameter once (not their product)."""
    parser = OverridesParser.create()
    fixed, sweeps = [], []
    for o in parser.parse_overrides(overrides):
        if o.is_sweep_override():
            sweeps.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            fixed.append(o.input_line)
    given = {s[0].split("=", 1)[0] for s in sweeps}
    for key, values in stored.items():
        if key not in given:
            o = parser.parse_override(f"{key}={values}")
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
            sweeps.append([f"{key}={v}" for v in values])
    first = [s[0] for s in sweeps]
    jobs = [fixed + first]
    for i, values in enumerate(sweeps):
        jobs += [fixed + first[:i] + [v] + first[i + 1:] for v in values[1:]]
    return jobs


def check_job(cfg: DictConfig, overrides: list[str], inputs: bool = True):
    """The typed config of one composed job (hydra node removed), its debug caps applied; raises on bad input."""
    with open_dict(cfg):
        cfg.pop("hydra", None)
    typed = validate(debug.apply(cfg, overrides))
    if inputs:
        check_inputs(typed)
    return typed


def check_folder(run_dir: Path, cfg: DictConfig, seed: int) -> None:
    """A run folder that exists must be writable, unlocked and hold a run of this config and seed (or none)."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"cannot write into {existing} (read-only or not yours); choose another "
                             "hydra.run.dir or paths.output_root")
    if not run_dir.is_dir():
        return
    lock.refuse_if_held(run_dir)
    owner = run_dir / "run.json"
    if owner.exists():
        previous, ours = read_json(owner), config_hash(cfg)
        if (previous["config_hash"], previous["seed"]) != (ours, seed):
            raise RunFolderError(
                f"{run_dir} holds a run of config_hash={previous['config_hash']} seed={previous['seed']}, not "
                f"config_hash={ours} seed={seed}; choose another hydra.run.dir")


def _compose(overrides: list[str]) -> DictConfig:
    """Hydra's compose; its errors (and the plain ValueErrors some overrides raise) become ConfigErrors."""
    try:
        return compose("config", overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError, TypeError) as e:
        # A group given a value none of its files has (debug=0, debug=[1]) makes Hydra fail without naming it.
        raise (suggest.group_override(overrides, CONF_DIR) or suggest.from_hydra(e)
               or ConfigError(" ".join(str(e).split()))) from None


def check(overrides: list[str], multirun: bool = False, config_only: bool = False) -> None:
    """Raise ConfigError / InputError / RunFolderError for the first problem of the command, touching nothing.

    `config_only` (for `--cfg`): the configs alone, not the inputs or the folder."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        plain = [o for o in overrides if not OverridesParser.create().parse_override(o).is_sweep_override()]
        base = _compose(plain)
        multirun = multirun or base.hydra.mode == RunMode.MULTIRUN
        params = base.hydra.sweeper.params
        stored = OmegaConf.to_container(params) if multirun and params else {}
        jobs = job_overrides(overrides, stored) if multirun else [overrides]
        for job in jobs:
            cfg = _compose(job)
            run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir")))
            typed = check_job(cfg, job, inputs=not config_only)
            if not (multirun or config_only):
                check_folder(run_dir, cfg, typed.seed)
