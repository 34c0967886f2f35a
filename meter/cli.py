"""`python -m meter {check,estimate,schedule,model-card}`: the meter's tools outside a training run."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from meter.config import MeterConfig
from meter.exports import equivalents
from meter.intensity import TraceIntensity, table_lookup
from meter.meter import Meter

REGION_HELP = ("instead of a grid intensity: a country (ISO3 code or name, e.g. FRA) or cloud region "
               "(gcp:us-central1) from the bundled table")


def _median_us(fn, n: int = 200) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def cmd_check(args) -> int:
    cfg = MeterConfig(sample_period_s=args.sample_period_s)
    meter = Meter(cfg)
    print("energy sources (priority order):")
    for name, state, detail in meter.sources_report():
        print(f"  {name:9s} {state:12s} {detail}")
    with meter:
        for s in meter._sources or []:
            print(f"  {s.name}: counter update period {s.update_period_s * 1e3:g} ms; "
                  f"read latency {_median_us(s.read):.1f} us (median of 200)")
        print(f"sampler tick (poll + read + ledger): {_median_us(meter._tick, 100):.1f} us; "
              f"period {cfg.sample_period_s * 1e3:g} ms")
        print(f"window edge (ledger snapshot): {_median_us(meter._snapshot):.1f} us")
    print(f"carbon intensity: {meter.intensity.mean(time.time(), time.time() + 1):.1f} g/kWh from "
          f"{meter.intensity.source}")
    return 0


def cmd_estimate(args) -> int:
    from meter import published

    g_per_kwh = None
    if args.region:
        g_per_kwh, source = table_lookup(args.region)
        print(f"grid intensity {g_per_kwh:g} g/kWh from {source}")
    if args.method == "patterson":
        t_per_mwh = g_per_kwh / 1000 if g_per_kwh is not None else args.t_per_mwh  # 1 g/kWh = 0.001 t/MWh
        r = published.patterson(args.hours, args.processors, args.avg_power_w, args.pue, t_per_mwh)
        print(f"Patterson et al. 2021: {r['mwh']:.6g} MWh, {r['t_co2e']:.6g} tCO2e")
    else:
        lb_per_kwh = g_per_kwh / 1000 * published.LB_PER_KG if g_per_kwh is not None else args.lb_per_kwh
        r = published.strubell(args.hours, args.cpu_w, args.dram_w, args.gpu_w, args.gpus, args.pue, lb_per_kwh)
        print(f"Strubell et al. 2019: {r['kwh']:.6g} kWh, {r['lb_co2e']:.6g} lb CO2e")
    eq = equivalents(r["g_co2e"])
    print(f"= {r['g_co2e']:.6g} g CO2e ~ {eq['carbon/eq_km_car']:.4g} km by car, "
          f"{eq['carbon/eq_phone_charges']:.4g} smartphone charges")
    return 0


def _traces(paths: list[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.csv")) if p.is_dir() else [p]
    if not out:
        raise ValueError(f"--trace {paths}: no CSV files")
    return out


def cmd_schedule(args) -> int:
    from meter import schedule

    window_h = int(round(schedule.parse_hours(args.window)))
    if args.run:
        profile = schedule.Profile.from_energy_csv(Path(args.run) / "energy.csv")
    elif args.duration and args.power_w is not None:
        profile = schedule.Profile.planned(schedule.parse_hours(args.duration), args.power_w)
    else:
        raise ValueError("schedule needs --run <folder with energy.csv> or --duration and --power-w")
    if args.start == "run":
        start = profile.start_unix if profile.start_unix is not None else time.time()
    elif args.start == "now":
        start = time.time()
    else:
        start = datetime.fromisoformat(args.start).replace(tzinfo=timezone.utc).timestamp()
    when = datetime.fromtimestamp(start, tz=timezone.utc).isoformat(timespec="seconds")
    print(f"job: {format_duration(profile.seconds)} active, {profile.hourly_kwh.sum() * 1e3:.4g} Wh; start {when}; "
          f"Flexible Start window {window_h} h; Pause and Resume span <= {args.span_factor:g} x duration "
          f"(delays and pauses move whole hours, the trace's resolution)")
    head = ("| region | baseline g | FS delay h | FS g | FS saved % | P&R span h | P&R g | P&R saved % |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|")
    print(head)
    notes = []
    for path in _traces(args.trace):
        trace = TraceIntensity.from_csv(path)
        r = schedule.simulate(profile, trace, start, window_h, args.span_factor)
        region = path.name.split("_")[0]
        print(f"| {region} | {r.baseline_g:.4g} | {r.fs_delay_h} | {r.fs_g:.4g} | {100 * r.fs_saving:.1f} | "
              f"{r.span_h} | {r.pr_g:.4g} | {100 * r.pr_saving:.1f} |")
        if trace.shifted or trace.filled:
            notes.append(f"{region}: {trace.source}")
    for n in notes:
        print(f"note: {n}")
    return 0


def format_duration(seconds: float) -> str:
    """'45 s', '7.0 min', '2.50 h': the real duration, in the unit that reads best."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def cmd_model_card(args) -> int:
    from meter.model_card import model_card

    text, runs = model_card(args.folder, args.training_type, args.location, args.hardware, args.allow_overlap)
    print(text, end="")
    notes = [f"{runs.records} records from {runs.runs} run(s) summed"]
    if runs.failed:
        notes.append(f"{runs.failed} of them failed (their records up to the failure are included)")
    if runs.estimated_joules > 0:
        notes.append("energy was (partly) ESTIMATED, not measured: see `source`")
    if "geographical_location: \"\"" in text:
        notes.append("geographical_location is empty: pass --location (or run with meter.region or a trace)")
    if not (args.hardware or runs.hardware):
        notes.append("hardware_used is empty: pass --hardware (or run with meter.emissions_csv=true)")
    print("note: " + "; ".join(notes), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m meter", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="live energy sources, why others are not, update period, read latency")
    c.add_argument("--sample-period-s", type=float, default=0.1, help="sampler period, s (default 0.1)")
    c.set_defaults(fn=cmd_check)
    e = sub.add_parser("estimate", help="energy and CO2e from published inputs (Patterson 2021, Strubell 2019)")
    es = e.add_subparsers(dest="method", required=True)
    pa = es.add_parser("patterson", help="MWh = hours x processors x avg W x PUE; tCO2e = MWh x t/MWh")
    pa.add_argument("--hours", type=float, required=True, help="training time, hours")
    pa.add_argument("--processors", type=int, required=True, help="number of accelerators (or CPUs) used")
    pa.add_argument("--avg-power-w", type=float, required=True, help="average power per processor, W")
    pa.add_argument("--pue", type=float, default=1.0, help="data-centre PUE (default 1.0)")
    grid = pa.add_mutually_exclusive_group(required=True)
    grid.add_argument("--t-per-mwh", type=float, help="grid intensity, tCO2e per MWh")
    grid.add_argument("--region", help=REGION_HELP)
    st = es.add_parser("strubell", help="p = 1.58 t (p_cpu + p_dram + g p_gpu)/1000 kWh; 0.954 lb/kWh")
    st.add_argument("--hours", type=float, required=True, help="training time, hours")
    st.add_argument("--cpu-w", type=float, default=0.0, help="average CPU power, W")
    st.add_argument("--dram-w", type=float, default=0.0, help="average DRAM power, W")
    st.add_argument("--gpu-w", type=float, default=0.0, help="average power per GPU, W")
    st.add_argument("--gpus", type=int, default=0, help="number of GPUs")
    st.add_argument("--pue", type=float, default=1.58, help="PUE (default 1.58, the paper's 2018 average)")
    grid = st.add_mutually_exclusive_group()
    grid.add_argument("--lb-per-kwh", type=float, default=0.954,
                      help="grid intensity, lb CO2e per kWh (default 0.954, the paper's US EPA average)")
    grid.add_argument("--region", help=REGION_HELP)
    for sp in (pa, st):
        sp.set_defaults(fn=cmd_estimate)
    s = sub.add_parser("schedule", help="Flexible Start / Pause and Resume savings per region")
    s.add_argument("--trace", action="append", required=True, help="intensity CSV or a folder of them; repeatable")
    s.add_argument("--run", help="run folder with energy.csv (its power profile and start time)")
    s.add_argument("--duration", help="planned duration, e.g. 6h (with --power-w)")
    s.add_argument("--power-w", type=float, help="planned average power, W")
    s.add_argument("--window", default="24h", help="Flexible Start window, e.g. 24h")
    s.add_argument("--span-factor", type=float, default=2.0, help="Pause and Resume: span <= F x duration")
    s.add_argument("--start", default="run", help="'run' (the run's own start; else now), 'now', or ISO UTC")
    s.set_defaults(fn=cmd_schedule)
    m = sub.add_parser("model-card", help="Hugging Face model-card co2_eq_emissions YAML for a run or a sweep")
    m.add_argument("folder", help="a run folder (with summary.json) or a sweep folder holding many")
    m.add_argument("--training-type", default="pre-training", choices=["pre-training", "fine-tuning"],
                   help="what the runs were (default pre-training)")
    m.add_argument("--location", default="",
                   help="geographical_location; default: the region or trace the intensity came from")
    m.add_argument("--hardware", default="",
                   help="hardware_used; default: CPU and GPU models from the runs' emissions.csv")
    m.add_argument("--allow-overlap", action="store_true",
                   help="sum records metered beside other jobs on one host (joblib) as an upper bound")
    m.set_defaults(fn=cmd_model_card)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="note: %(message)s", level=logging.WARNING)
    if args.cmd == "check":  # the report below already says why sources are unavailable
        logging.getLogger("meter.meter").setLevel(logging.ERROR)
    try:
        return args.fn(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
