"""Entry point: `python -m experiments.run experiment=<name> [overrides]` (console script `leanlab`).

Composes the config, validates it before any work, runs the task with the meter and loggers around it, and
writes the run record (config.yaml, metrics.jsonl, energy.csv, and summary.json last).
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from experiments.config import ConfigError, config_hash, register_configs, validate
from experiments.context import RunContext, seed_everything
from experiments.loggers import build_logger
from experiments.records import write_summary
from experiments.tables import LTH_COLUMNS, render
from experiments.tasks import TASKS
from meter import Meter

log = logging.getLogger(__name__)
register_configs()


def run_job(cfg: DictConfig, job_dir: Path) -> list[dict]:
    """Run one job into `job_dir`; raises (after writing a `failed` summary) on any error."""
    job_dir.mkdir(parents=True, exist_ok=True)
    try:
        typed = validate(cfg)  # ConfigError before any work
    except ConfigError as e:
        write_summary(job_dir, "failed", [], error=f"ConfigError: {e}")
        raise
    seed_everything(typed.seed)
    identity = {
        "experiment": typed.name,
        "run_id": hashlib.md5(str(job_dir.resolve()).encode()).hexdigest()[:10],
        "seed": typed.seed,
        "config_hash": config_hash(cfg),
    }
    (job_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    meter = Meter(typed.meter, out_dir=job_dir)
    logger = build_logger(job_dir, typed.logger, cfg, group=typed.sweep_name)
    ctx = RunContext(job_dir=job_dir, meter=meter, logger=logger, identity=identity, progress=typed.progress)
    status = "failed"
    try:
        with meter:
            rows = TASKS.get(typed.task)(typed, ctx)
        logger.log_records(rows)
        status = "completed"
        write_summary(job_dir, status, rows, **identity)
        return rows
    except BaseException as e:
        write_summary(job_dir, "failed", ctx.rows, error=f"{type(e).__name__}: {e}", **identity)
        raise
    finally:
        logger.finish(status)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        rows = run_job(cfg, job_dir)
    except ConfigError as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # Hydra records the failed job, runs the others and exits non-zero at the end
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    if cfg.task == "lth":
        print(render(rows, LTH_COLUMNS))
    print(f"\nrun folder: {job_dir}")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    sys.exit(main())
