"""Entry point: `python -m experiments.run experiment=<name> [overrides]` (console script `leanlab`).

Composes the config, validates it before any work, runs the task with the meter and loggers around it, and
writes the run record (config.yaml, metrics.jsonl, energy.csv, and summary.json last).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

# `allocator` must be imported before anything imports torch (tests/test_allocator.py checks it still is).
from experiments import allocator, distributed  # noqa: F401
from experiments.config import ConfigError, config_hash, register_configs, validate
from experiments.context import RunContext, seed_everything
from experiments.loggers import NullLogger, build_logger
from experiments.preemption import NEVER, REQUEUE_EXIT_CODE, Preempted, PreemptionFlag
from experiments.progress import JobProgress
from experiments.records import atomic_write_json, read_json, write_summary
from experiments.tables import write_run_table
from experiments.tasks.registry import TASKS
from meter import Meter
from meter.schedule import plan_from_config

log = logging.getLogger(__name__)
register_configs()


class RunFolderError(RuntimeError):
    """The output folder cannot hold this run: unwritable, or it holds a run of another config."""


def _claim_folder(job_dir: Path, identity: dict) -> None:
    """Record which config and seed own `job_dir`; refuse to resume another config's run into it."""
    owner = job_dir / "run.json"
    if owner.exists():
        previous = read_json(owner)
        if (previous["config_hash"], previous["seed"]) != (identity["config_hash"], identity["seed"]):
            raise RunFolderError(
                f"{job_dir} holds a run of config_hash={previous['config_hash']} seed={previous['seed']}, not "
                f"config_hash={identity['config_hash']} seed={identity['seed']}; choose another hydra.run.dir")
        return
    atomic_write_json(owner, identity)


def run_job(cfg: DictConfig, job_dir: Path, preemption: PreemptionFlag = NEVER) -> list[dict]:
    """Run one job into `job_dir`; raises (after writing a `failed` summary) on any error.

    A preempted run writes no summary (it is unfinished, and resumes when rerun in the same folder).
    """
    main = distributed.is_main()  # under torchrun only rank 0 writes the record
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"cannot create the output folder {job_dir}: {e}") from e
    try:
        typed = validate(cfg)  # ConfigError before any work
    except ConfigError as e:
        if main:
            write_summary(job_dir, "failed", [], error=f"ConfigError: {e}")
        raise
    seed_everything(typed.seed, typed.threads)
    identity = {
        "experiment": typed.name,
        "run_id": hashlib.md5(str(job_dir.resolve()).encode()).hexdigest()[:10],
        "seed": typed.seed,
        "config_hash": config_hash(cfg),
    }
    try:
        if main:
            _claim_folder(job_dir, identity)
            (job_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except OSError as e:
        raise RunFolderError(f"cannot write the run record in {job_dir}: {e}") from e
    meter = Meter(typed.meter, out_dir=job_dir if main else None)
    logger = build_logger(job_dir, typed.logger, cfg, group=typed.sweep_name) if main else NullLogger()
    ctx = RunContext(job_dir=job_dir, meter=meter, logger=logger, identity=identity,
                     progress=JobProgress.for_config(typed), preemption=preemption,
                     carbon_plan=plan_from_config(typed.meter, time.time(), typed.meter.schedule_duration_h))
    status = "failed"
    try:
        with meter:
            rows = TASKS.get(typed.task)(typed, ctx)
        logger.log_records(rows)
        if main:
            write_summary(job_dir, "completed", rows, **identity)
        status = "completed"
        return rows
    except (Preempted, KeyboardInterrupt):
        status = "preempted"
        raise
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
        try:
            if main:
                write_summary(job_dir, "failed", ctx.rows, error=error, **identity)
        except OSError as write_error:  # e.g. the disk is full: no record claims completion either way
            raise RunFolderError(f"run failed ({error}) and its failed summary could not be written in "
                                 f"{job_dir}: {write_error}") from e
        if isinstance(e, OSError):
            raise RunFolderError(f"run failed writing to {job_dir}: {error}") from e
        raise
    finally:
        logger.finish(status)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    with distributed.process_group(), PreemptionFlag() as preemption:
        job_dir = distributed.broadcast_object(Path(HydraConfig.get().runtime.output_dir))  # rank 0's folder
        try:
            rows = run_job(cfg, job_dir, preemption)
        except Preempted as e:
            log.warning("%s; rerun the same command with hydra.run.dir=%s to resume", e, job_dir)
            if not preemption.forward(e.signum):  # submitit's own handler requeues the job if present
                sys.exit(REQUEUE_EXIT_CODE)
            return
        except (ConfigError, RunFolderError) as e:
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise  # Hydra records the failed job, runs the others and exits non-zero at the end
            print(f"{'config' if isinstance(e, ConfigError) else 'output folder'} error: {e}", file=sys.stderr)
            sys.exit(2)
        if not distributed.is_main():
            return
    print(write_run_table(job_dir, rows, cfg.task))
    print(f"\nrun folder: {job_dir}")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    sys.exit(main())
