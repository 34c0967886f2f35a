"""Entry point: `python -m experiments.run experiment=<name> [overrides]` (console script `leanlab`).

Composes the config, validates it before any work, runs the task with the meter and loggers around it, and
writes the run record (config.yaml, metrics.jsonl, energy.csv, and summary.json last).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

# `allocator` must be imported before anything imports torch (tests/test_allocator.py checks it still is).
from experiments import allocator, cli_help, debug, distributed, preflight, suggest  # noqa: F401
from experiments import checkpoint as ckpt
from experiments.config import ConfigError, config_hash, register_configs, validate
from experiments.context import RunContext, seed_everything
from experiments.errors import InputError, RunFolderError, from_output_folder, kind_of, report
from experiments.inputs import check_inputs
from experiments.lock import RunLock
from experiments.loggers import NullLogger, build_logger
from experiments.preemption import NEVER, REQUEUE_EXIT_CODE, Preempted, PreemptionFlag
from experiments.progress import JobProgress
from experiments.records import atomic_write_json, read_json, write_summary
from experiments.runtime import Runtime
from experiments.tables import write_run_table
from experiments.tasks.registry import TASKS
from meter import Meter
from meter.schedule import plan_from_config

log = logging.getLogger(__name__)
register_configs()
CONF_DIR = preflight.CONF_DIR  # an absolute path: found from any cwd and by the installed console script
__all__ = ["ConfigError", "InputError", "RunFolderError", "main", "run_job"]


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


def _completed(job_dir: Path) -> bool:
    try:
        return read_json(job_dir / "summary.json").get("status") == "completed"
    except (OSError, ValueError):
        return False


def run_job(cfg: DictConfig, job_dir: Path, preemption: PreemptionFlag = NEVER) -> list[dict]:
    """Run one job into `job_dir` (debug caps already applied to `cfg`); raises on any error.

    Config and input errors are raised before `job_dir` is touched. A failure during the run writes a `failed`
    summary, unless the folder already holds a completed one (a finished run's records are never replaced). A
    preempted run writes no summary (it is unfinished, and resumes when rerun in the same folder).
    """
    main = distributed.is_main()  # under torchrun only rank 0 writes the record
    typed = validate(cfg)  # ConfigError before any work
    distributed.check_global_batch(typed)  # ConfigError: optim.batch_size does not divide over the ranks
    runtime = Runtime.from_config(typed)  # ConfigError for a device or precision this machine lacks
    check_inputs(typed)  # InputError naming the file
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"cannot create the output folder {job_dir}: {e}") from e
    with RunLock(job_dir) if main else contextlib.nullcontext():
        if main:
            ckpt.remove_stale_temps(job_dir)  # interrupted atomic writes; no other run uses the folder now
        return _run_locked(cfg, typed, job_dir, preemption, main, runtime)


def _run_locked(cfg: DictConfig, typed, job_dir: Path, preemption: PreemptionFlag, main: bool,
                runtime: Runtime) -> list[dict]:
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
                     carbon_plan=plan_from_config(typed.meter, time.time(), typed.meter.schedule_duration_h),
                     runtime=runtime)
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
            if main and not _completed(job_dir):
                write_summary(job_dir, "failed", ctx.rows, error=error, **identity)
        except OSError as write_error:  # e.g. the disk is full: no record claims completion either way
            raise RunFolderError(f"run failed ({error}) and its failed summary could not be written in "
                                 f"{job_dir}: {write_error}") from e
        if isinstance(e, OSError):
            raise RunFolderError(f"run failed writing to {job_dir}: {error}") from e
        raise
    finally:
        logger.finish(status)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    debug.apply(cfg, hydra_cfg.overrides.task)
    with distributed.process_group(), PreemptionFlag() as preemption:
        job_dir = distributed.broadcast_object(Path(hydra_cfg.runtime.output_dir))  # rank 0's folder
        try:
            rows = run_job(cfg, job_dir, preemption)
        except Preempted as e:
            log.warning("%s; rerun the same command with hydra.run.dir=%s to resume", e, job_dir)
            preemption.forward(e.signum)  # submitit's own handler requeues the job (on its first task) if present
            sys.exit(REQUEUE_EXIT_CODE)  # every rank: the run is unfinished
        except Exception as e:
            if hydra_cfg.mode == RunMode.MULTIRUN and kind_of(e) is not None:
                log.error("job %s failed: %s", hydra_cfg.job.num, e)  # Hydra runs the others, then re-raises
            raise
        if not distributed.is_main():
            return
    print(write_run_table(job_dir, rows, cfg.task))
    print(f"\nrun folder: {job_dir}")


def main() -> None:
    """Console entry: help, then the preflight checks, then Hydra; any error ends in one line and its exit code."""
    args = get_args_parser().parse_args()
    if args.help:
        print(cli_help.render())
        return
    verbose = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; the report below is the last line either way
    try:
        if not (args.hydra_help or args.info or args.shell_completion):
            preflight.check(args.overrides, multirun=args.multirun, config_only=bool(args.cfg))
        _hydra_main()
    except Exception as e:
        error = suggest.from_hydra(e) or from_output_folder(e) or e
        if verbose or kind_of(error) is None:
            traceback.print_exception(e)
        sys.exit(report(error))


if __name__ == "__main__":
    main()
