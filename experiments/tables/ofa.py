"""Once-for-all paper tables (Cai et al. 2020) over the `ofa` task's rows (stored sweep conf/sweep/ofa_mnist1d.yaml).

The task writes one row per unit (`ofa/kind`); each table derives its own rows from them, one per configuration and
seed (a pair of runs and their difference, or the pipeline's cost at N targets), and states under the table whether
the published effect reproduces, computed from the numbers shown. Accuracies are in points (percent).

Pairing follows the rule of every table: jobs whose configs differ are separate rows. A pair (PS corner and scratch
corner, PS and no-PS supernet) is two rows of the same seed whose job configs agree on every key but the ones that
define the two sides (`SIDES`: e.g. method.training), and those named by `--pair KEY` (e.g. `--pair method.phases`
pairs a PS variant with the default no-PS job). Two job folders claiming one slot (same configuration, seed and
corner or target: a repeated run) are an error naming both, never a silent choice.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

from experiments.tables.build import Stat, Table, sort_key
from experiments.tables.columns import CARBON_SOURCE, ENERGY_METHOD
from experiments.tables.ofa_pairs import SIDES, partner, per_configuration, setting, shared, slots
from experiments.tables.ofa_plots import plot_cost, plot_paired_corners, plot_pareto, plot_search
from experiments.tables.spec import RUN_COLUMNS, TABLES, Column, TableSpec

PS, NO_PS, NO_PS_KD = "progressive", "no_ps", "no_ps_kd"
COST_NS = (1, 2, 4, 10, 40, 100)  # numbers of deployment targets the cost table is shown at
FIXED_KINDS = ("supernet", "latency_table", "predictor")  # OFA's one-off cost; each target then costs a search
COSTS = {"j": "energy/joules", "g": "carbon/g_co2e", "s": "time/wall_s"}


def points(x) -> float | None:
    return None if x is None else 100.0 * x


def of_kind(rows: list[dict], kind: str, training: str | None = None) -> list[dict]:
    return [r for r in rows if r.get("ofa/kind") == kind and (training is None or r.get("ofa/training") == training)]


def need(out: list[dict], what: str) -> list[dict]:
    """`out`, or a ValueError saying which rows the table needs (a table of nothing is never written)."""
    if not out:
        raise ValueError(f"no rows to tabulate: the runs hold no {what} (run the stored sweep: `python -m "
                         "experiments.run experiment=ofa_mnist1d sweep=ofa_mnist1d`)")
    return out


def mean_of(table: Table, key: str, where: Callable[[dict], bool] = lambda r: True) -> dict[tuple, float]:
    """{table row's group values: mean of `key`} over the table rows that have it."""
    return {tuple(r.get(k) for k in ("ofa/corner", "ofa/target_fraction")): r[key].mean
            for r in table.rows if isinstance(r.get(key), Stat) and where(r)}


def verdict(claim: str, ok: bool, found: str) -> str:
    return f"{claim}: {found}. " + ("Reproduces." if ok else "Does NOT reproduce at this scale.")


def estimated_note(rows: list[dict]) -> list[str]:
    methods = sorted({m for r in rows for m in str(r.get("energy/method") or "").split("; ") if "estimated" in m})
    return [f"Energy is ESTIMATED, not measured (energy/method: {', '.join(methods)}); CO2e follows it."] \
        if methods else []


# ---- a. PS sub-nets vs the same architectures from scratch ----------------------------------------------------

def derive_ps_vs_scratch(rows: list[dict], pair: tuple[str, ...] = ()) -> list[dict]:
    free = SIDES["scratch"]
    ps, scratch = slots(of_kind(rows, "ofa_corner", PS), "ofa/corner", free), slots(
        of_kind(rows, "scratch_corner"), "ofa/corner", (*free, *pair))
    return need(corner_pairs(ps, scratch, (*free, *pair)), "ofa_corner row of a progressive-shrinking job with a scratch_corner row "
                "of the same seed, corner and configuration (--pair KEY lets KEY differ)")


def corner_pairs(a_rows: dict[tuple, dict], b_rows: dict[tuple, dict], b_free: tuple[str, ...]) -> list[dict]:
    """One row per (configuration, seed, corner) of `a_rows` with a partner in `b_rows` (`b_rows` keyed with
    `b_free` left out): the two accuracies and their difference, in points."""
    return [{**shared(a, b), "ofa/corner": key[2], "flops/infer_per_sample": a.get("flops/infer_per_sample"),
             "acc/a": points(a["acc/test"]), "acc/b": points(b["acc/test"]),
             "acc/diff": points(a["acc/test"] - b["acc/test"])}
            for key, a in a_rows.items() if (b := partner(b_rows, a, key, b_free)) is not None]


def check_ps_vs_scratch(rows: list[dict], table: Table) -> list[str]:
    diffs = mean_of(table, "acc/diff")
    avg, (worst_key, worst) = statistics.fmean(diffs.values()), min(diffs.items(), key=lambda kv: kv[1])
    return [verdict("Published: sub-nets of the PS supernet match or beat the same architectures trained from "
                    "scratch. Goal here: within 1.0 point on average (mean difference >= -1.0), none more than 2.0 "
                    "below", avg >= -1.0 and worst >= -2.0,
                    f"mean difference {avg:+.2f} points over {len(diffs)} corners, worst {worst:+.2f} "
                    f"({worst_key[0]})"), *estimated_note(rows)]


def corner_table(a: str, b: str, labels: tuple[str, str], about: str, derive, checks) -> TableSpec:
    """A table of the 8 corners, `a` vs `b` paired by seed, ordered by FLOPs."""
    return TableSpec(
        sweep="ofa_mnist1d", group_by=["ofa/corner"], sort_by=["flops/infer_per_sample", "ofa/corner"],
        columns=[Column("ofa/corner", "corner (depth-expand-kernel)"),
                 Column("flops/infer_per_sample", "FLOPs", "{:.3g}"), Column("acc/a", f"{a} acc %", "{:.2f}"),
                 Column("acc/b", f"{b} acc %", "{:.2f}"), Column("acc/diff", f"{a} - {b} (points)", "{:+.2f}"),
                 ENERGY_METHOD],
        about=about, plot=lambda rows, path, title: plot_paired_corners(rows, path, title, labels),
        derive=derive, checks=per_configuration(checks))


TABLES.register("ofa_ps_vs_scratch")(corner_table(
    "PS", "scratch", ("PS sub-net", "from scratch"),
    "The 8 corner sub-nets (depth, expand ratio, kernel each at its min or max; largest resolution) taken from the "
    "progressive-shrinking supernet after BN recalibration, no fine-tuning, vs the same architecture trained alone "
    "from scratch (optim.epochs), test accuracy; the difference is paired by seed. Published (OFA, ImageNet): PS "
    "sub-nets match or beat the same architectures trained from scratch.",
    derive_ps_vs_scratch, check_ps_vs_scratch))


# ---- b. PS supernet vs no-PS supernet ------------------------------------------------------------------------

def derive_ps_vs(training: str):
    """Corner pairs of the PS supernet and the `training` supernet (no_ps, no_ps_kd) of the same seed."""
    def derive(rows: list[dict], pair: tuple[str, ...] = ()) -> list[dict]:
        free = SIDES["training"]
        ps = slots(of_kind(rows, "ofa_corner", PS), "ofa/corner", free)
        other = slots(of_kind(rows, "ofa_corner", training), "ofa/corner", (*free, *pair))
        return need(corner_pairs(ps, other, (*free, *pair)), f"ofa_corner rows of both method.training=progressive and {training} "
                    "jobs of the same seed and configuration (--pair KEY lets KEY differ)")
    return derive


def check_ps_vs_no_ps(rows: list[dict], table: Table) -> list[str]:
    diffs = mean_of(table, "acc/diff")
    flops = mean_of(table, "flops/infer_per_sample")
    smallest = min(diffs, key=lambda k: (flops.get(k, math.inf), k))
    avg = statistics.fmean(diffs.values())
    return [verdict("Published: progressive shrinking beats training every sub-net at once (72.4% -> 76.0% top-1 "
                    "at 230M MACs). Goal here: PS >= 2.0 points better on the smallest sub-net and >= 1.0 on "
                    "average over the corners, paired by seed", diffs[smallest] >= 2.0 and avg >= 1.0,
                    f"smallest ({smallest[0]}) {diffs[smallest]:+.2f} points, mean over {len(diffs)} corners "
                    f"{avg:+.2f}"), *estimated_note(rows)]


TABLES.register("ofa_ps_vs_no_ps")(corner_table(
    "PS", "no PS", ("PS supernet", "no-PS supernet"),
    "The 8 corner sub-nets (BN-recalibrated, test accuracy) of the progressive-shrinking supernet vs the no-PS "
    "supernet (every dimension elastic from the start, the same number of sub-net steps), paired by seed.",
    derive_ps_vs(NO_PS), check_ps_vs_no_ps))

TABLES.register("ofa_ps_vs_no_ps_kd")(corner_table(
    "PS", "no PS + KD", ("PS supernet", "no-PS supernet, full net first + KD"),
    "The 8 corner sub-nets of the progressive-shrinking supernet vs a no-PS supernet that trains the full net first "
    "(PS's first phase) and then every dimension at once distilled from it (`method.training=no_ps_kd`), the same "
    "number of sub-net steps, paired by seed: separates 'progressive' from 'distilled from a trained full net'.",
    derive_ps_vs(NO_PS_KD), check_ps_vs_no_ps))


# ---- c. searched sub-nets vs width multipliers; the predictor -------------------------------------------------

SEARCH, PREDICTOR = "searched sub-net vs width multiplier", "accuracy predictor (held-out sub-nets)"


def derive_search(rows: list[dict], pair: tuple[str, ...] = ()) -> list[dict]:
    free = SIDES["scratch"]
    found = slots(of_kind(rows, "ofa_target", PS), "ofa/target_fraction", free)
    width = slots(of_kind(rows, "width_multiplier", PS), "ofa/target_fraction", (*free, *pair))
    out = []
    for key, a in found.items():
        if (b := partner(width, a, key, (*free, *pair))) is None:
            continue
        error = a.get("latency/table_rel_error")
        clock = "latency/b1_cpu_ms" if a.get("latency/table_timer") == "thread_cpu" else "latency/b1_ms"
        out.append({**shared(a, b), "ofa/what": SEARCH, "ofa/target_fraction": key[2],
                    "acc/a": points(a["acc/test"]), "acc/predicted": points(a.get("acc/predicted_val")),
                    "acc/val": points(a.get("acc/val")),
                    "flops/a": a.get("flops/infer_per_sample"), "acc/b": points(b["acc/test"]),
                    "flops/b": b.get("flops/infer_per_sample"), "ofa/width_multiplier": b.get("ofa/width_multiplier"),
                    "acc/diff": points(a["acc/test"] - b["acc/test"]), "latency/b1_ms": a.get(clock),
                    "latency/b1_table_ms": a.get("latency/b1_table_ms"),
                    "latency/abs_error_pct": None if error is None else 100 * abs(error)})
    for p in slots(of_kind(rows, "predictor", PS), None).values():
        out.append({**shared(p), "ofa/what": PREDICTOR, "predictor/rmse_points": p.get("predictor/rmse_points"),
                    "predictor/kendall_tau": p.get("predictor/kendall_tau")})
    return need(out, "ofa_target / width_multiplier / predictor row of a progressive-shrinking job")


def check_search(rows: list[dict], table: Table) -> list[str]:
    diffs = {k[1]: v for k, v in mean_of(table, "acc/diff").items()}
    out = []
    if diffs:
        tight = sorted(diffs)[:2]
        out.append(verdict(
            "Published: searched sub-nets beat scaled-down models (OFA vs MobileNetV3 width multipliers). Goal "
            "here: search >= width multiplier at every target, >= 1 point better at the two tightest",
            all(d >= 0 for d in diffs.values()) and all(diffs[t] >= 1.0 for t in tight),
            ", ".join(f"{t:g} x full FLOPs: {diffs[t]:+.2f}" for t in sorted(diffs))))
    rmse, tau = (mean_of(table, k, lambda r: r.get("ofa/what") == PREDICTOR) for k in
                 ("predictor/rmse_points", "predictor/kendall_tau"))
    if rmse and tau:
        (r,), (t,) = rmse.values(), tau.values()
        out.append(verdict("Accuracy predictor on held-out sub-nets, goal RMSE <= 1 point and Kendall tau >= 0.6",
                           r <= 1.0 and t >= 0.6, f"RMSE {r:.2f} points, tau {t:.2f}"))
    predicted, measured = (mean_of(table, k) for k in ("acc/predicted", "acc/val"))
    if gaps := [predicted[k] - measured[k] for k in measured if k in predicted]:
        out.append(f"Searched sub-nets, predicted minus measured validation accuracy: mean {statistics.fmean(gaps):+.2f} "
                   "points (the search selects the predictor's over-estimates: the larger this is, the more it "
                   "optimised the predictor's error rather than the network).")
    errors = {k[1]: v for k, v in mean_of(table, "latency/abs_error_pct").items()}
    if errors:
        worst = max(errors, key=errors.get)
        out.append(verdict("Latency table (sum of per-block latencies) vs the measured exported sub-net at batch 1, "
                           "goal within 10% at every target", errors[worst] <= 10.0,
                           f"worst mean |error| {errors[worst]:.1f}% (target {worst:g})"))
    return out or ["Search: no target has both a searched sub-net and a width-multiplier model; nothing to check."]


TABLES.register("ofa_search")(TableSpec(
    sweep="ofa_mnist1d",
    group_by=["ofa/what", "ofa/target_fraction"],
    columns=[Column("ofa/what", "row"), Column("ofa/target_fraction", "FLOPs target (x full)", "{:g}"),
             Column("acc/a", "search acc %", "{:.2f}"), Column("acc/predicted", "predicted val acc %", "{:.2f}"),
             Column("acc/val", "measured val acc %", "{:.2f}"),
             Column("flops/a", "search FLOPs", "{:.3g}"), Column("acc/b", "width-mult. acc %", "{:.2f}"),
             Column("ofa/width_multiplier", "width mult.", "{:.3f}"), Column("flops/b", "width-mult. FLOPs", "{:.3g}"),
             Column("acc/diff", "search - width (points)", "{:+.2f}"),
             Column("latency/b1_ms", "latency ms (measured, b=1, the table's clock)", "{:.3g}"),
             Column("latency/b1_table_ms", "latency ms (table)", "{:.3g}"),
             Column("latency/abs_error_pct", "|table error| %", "{:.1f}"),
             Column("predictor/rmse_points", "predictor RMSE (points)", "{:.2f}"),
             Column("predictor/kendall_tau", "Kendall tau", "{:.2f}"), ENERGY_METHOD],
    about="Per FLOPs target (a fraction of the full net's FLOPs): the sub-net found by evolutionary search on the "
          "accuracy predictor, exported and tested without fine-tuning, vs the full net at the largest width "
          "multiplier of <= equal FLOPs trained from scratch; the predictor row is its error on held-out "
          "recalibrated sub-nets (validation split).",
    plot=plot_search,
    derive=derive_search,
    checks=per_configuration(check_search),
))


# ---- d. the cost of the OFA pipeline vs one model per target ---------------------------------------------------

def derive_cost(rows: list[dict]) -> list[dict]:
    """Per configuration, seed and N: the OFA pipeline (fixed units + N searches) vs N models trained from scratch
    (the mean width-multiplier training cost), in energy, CO2e and wall time, all from one job. Jobs that
    specialised another job's supernet (method.supernet_from) are left out: their pipeline did not pay for it."""
    reused = {r.get("job_dir") for r in of_kind(rows, "supernet") if r.get("ofa/supernet_from")}
    rows = [r for r in rows if r.get("job_dir") not in reused]
    out = []
    for _slot, supernet in sorted(slots(of_kind(rows, "supernet", PS), None).items(),
                                  key=lambda kv: (kv[0][0], sort_key(kv[0][1]))):
        mine = [r for r in rows if r.get("job_dir") == supernet.get("job_dir") and r.get("ofa/training") == PS]
        fixed = [r for k in FIXED_KINDS for r in of_kind(mine, k)[:1]]
        targets, scratch = of_kind(mine, "ofa_target"), of_kind(mine, "width_multiplier")
        if len(fixed) < len(FIXED_KINDS) or not targets or not scratch:
            continue
        parts = {f"cost/fixed_{u}": sum(r.get(k) or 0.0 for r in fixed) for u, k in COSTS.items()}
        parts |= {f"cost/ofa_per_target_{u}": statistics.fmean(r.get(k) or 0.0 for r in targets)
                  for u, k in COSTS.items()}
        parts |= {f"cost/scratch_per_target_{u}": statistics.fmean(r.get(k) or 0.0 for r in scratch)
                  for u, k in COSTS.items()}
        base = {**shared(*fixed, *targets, *scratch), "carbon/intensity_source": fixed[0].get("carbon/intensity_source")}
        for n in COST_NS:
            row = {**base, **parts, "ofa/targets_n": n}
            for u in COSTS:
                row[f"cost/ofa_{u}"] = parts[f"cost/fixed_{u}"] + n * parts[f"cost/ofa_per_target_{u}"]
                row[f"cost/scratch_{u}"] = n * parts[f"cost/scratch_per_target_{u}"]
            row["cost/ratio_j"] = row["cost/ofa_j"] / row["cost/scratch_j"] if row["cost/scratch_j"] else None
            out.append(row)
    return need(out, "progressive-shrinking job with its supernet, latency_table, predictor, ofa_target and "
                "width_multiplier rows")


def break_even(fixed: float, ofa_per_target: float, scratch_per_target: float) -> float:
    """The number of targets at which the OFA pipeline costs what per-target training does (inf: never)."""
    saving = scratch_per_target - ofa_per_target
    return fixed / saving if saving > 0 else math.inf


def cost_means(rows: list[dict]) -> dict[str, float]:
    """The seed means of the fixed, per-target OFA and per-target training energies (J)."""
    return {k: statistics.fmean(r[k] for r in rows) for k in ("cost/fixed_j", "cost/ofa_per_target_j",
                                                             "cost/scratch_per_target_j")}


def break_even_n(rows: list[dict]) -> float:
    m = cost_means(rows)
    return break_even(m["cost/fixed_j"], m["cost/ofa_per_target_j"], m["cost/scratch_per_target_j"])


def check_cost(rows: list[dict], table: Table) -> list[str]:
    means, n = cost_means(rows), break_even_n(rows)
    ratio40 = (means["cost/fixed_j"] + 40 * means["cost/ofa_per_target_j"]) / (40 * means["cost/scratch_per_target_j"])
    return [f"Break-even N (energy, from the seed means) = fixed {means['cost/fixed_j']:.4g} J / (per-target scratch "
            f"{means['cost/scratch_per_target_j']:.4g} J - per-target OFA {means['cost/ofa_per_target_j']:.4g} J) "
            f"= {n:.3g}.",
            verdict("Published (OFA Table 1): for 40 deployment scenarios OFA's design cost is ~16x lower than "
                    "per-target design. Goal here: break-even N <= 10 and OFA at N = 40 <= 1/4 of per-target "
                    "training", n <= 10 and ratio40 <= 0.25,
                    f"break-even N {n:.3g}, OFA / per-target at N = 40: {ratio40:.3f}"), *estimated_note(rows)]


TABLES.register("ofa_cost")(TableSpec(
    sweep="ofa_mnist1d",
    group_by=["ofa/targets_n"],
    columns=[Column("ofa/targets_n", "targets N"), Column("cost/ofa_j", "OFA energy J", "{:.4g}"),
             Column("cost/scratch_j", "per-target training J", "{:.4g}"),
             Column("cost/ratio_j", "OFA / per-target", "{:.3f}"), Column("cost/ofa_g", "OFA gCO2e", "{:.3g}"),
             Column("cost/scratch_g", "per-target gCO2e", "{:.3g}"), Column("cost/ofa_s", "OFA wall s", "{:.4g}"),
             Column("cost/scratch_s", "per-target wall s", "{:.4g}"), ENERGY_METHOD, CARBON_SOURCE],
    about="OFA Table 1 style, measured on this machine: the whole OFA pipeline (supernet with all its phases, "
          "latency table, predictor data and fit, then per target: search, export, test and deployment "
          "measurements) vs training one model per target from scratch (the mean cost of training one "
          "width-multiplier model), for N targets; corner evaluations and baselines are not pipeline costs. "
          "OFA(N) = fixed + N x per-target search; per-target(N) = N x one training.",
    plot=lambda rows, path, title: plot_cost(rows, path, title, break_even_n(rows)),
    derive=derive_cost,
    checks=check_cost,
))


# ---- e. accuracy vs FLOPs and vs energy per inference -----------------------------------------------------------

PARETO_KINDS = ("ofa_corner", "ofa_target", "scratch_corner", "width_multiplier")


def derive_pareto(rows: list[dict]) -> list[dict]:
    """Every sub-net of the PS jobs; a scratch corner gets the energy per inference measured on the OFA export of
    the same architecture (same static model, same cost), labelled so."""
    corners = slots(of_kind(rows, "ofa_corner", PS), "ofa/corner")
    for kind in PARETO_KINDS:  # one job per configuration, seed and sub-net
        slots(of_kind(rows, kind, PS), "ofa/corner" if "corner" in kind else "ofa/target_fraction")
    out = []
    for r in rows:
        if r.get("ofa/kind") not in PARETO_KINDS or r.get("ofa/training") != PS:
            continue
        d = {**shared(r), "ofa/kind": r["ofa/kind"], "acc/test": points(r.get("acc/test")),
             "ofa/name": r.get("ofa/corner") or f"target {r.get('ofa/target_fraction'):g}",
             **{k: r.get(k) for k in ("flops/infer_per_sample", "infer/joules_per_sample", "infer/energy_method",
                                      "latency/b1_ms", "ofa/target_fraction", "ofa/target_flops")}}
        twin = corners.get((setting(r), r.get("seed"), r.get("ofa/corner")))
        if r["ofa/kind"] == "scratch_corner" and twin and d["infer/joules_per_sample"] is None:
            d["infer/joules_per_sample"] = twin.get("infer/joules_per_sample")
            d["infer/energy_method"] = f"{twin.get('infer/energy_method')} (same architecture: the OFA corner's export)"
        out.append(d)
    return need(out, "sub-net row (ofa_corner, ofa_target, scratch_corner, width_multiplier) of a "
                "progressive-shrinking job")


def check_pareto(rows: list[dict], table: Table) -> list[str]:
    missing = sorted({r["ofa/kind"] for r in rows if r.get("infer/joules_per_sample") is None})
    methods = sorted({str(r["infer/energy_method"]).split(" (")[0] for r in rows if r.get("infer/energy_method")})
    return ([f"No energy per inference in the rows of: {', '.join(missing)} (left out of the energy panel)."]
            if missing else []) + ([f"Energy per inference is ESTIMATED, not measured ({', '.join(methods)})."]
                                   if any("estimated" in m for m in methods) else [])


TABLES.register("ofa_pareto")(TableSpec(
    sweep="ofa_mnist1d",
    group_by=["ofa/kind", "ofa/name"],
    sort_by=["ofa/kind", "flops/infer_per_sample"],
    columns=[Column("ofa/kind", "model"), Column("ofa/name", "sub-net"), Column("acc/test", "test acc %", "{:.2f}"),
             Column("flops/infer_per_sample", "FLOPs", "{:.3g}"),
             Column("infer/joules_per_sample", "J / inference", "{:.3g}"),
             Column("infer/energy_method", "J / inference method"),
             Column("latency/b1_ms", "latency ms (b=1)", "{:.3g}")],
    about="Every model of the PS jobs: the supernet's corners and searched sub-nets (no fine-tuning) vs the "
          "corner architectures and width-multiplier models trained from scratch; FLOPs analytic, energy per "
          "inference from meter (measured where a measured source exists, else labelled estimated).",
    plot=plot_pareto,
    derive=derive_pareto,
    checks=check_pareto,
))

RUN_COLUMNS.register("ofa")([
    Column("ofa/kind", "kind"), Column("ofa/corner", "corner"), Column("ofa/target_fraction", "target", "{:g}"),
    Column("acc/test", "test acc", "{:.3f}"), Column("acc/predicted_val", "predicted val acc", "{:.3f}"),
    Column("flops/infer_per_sample", "infer FLOPs", "{:.3g}"), Column("flops/train_total", "train FLOPs", "{:.3g}"),
    Column("latency/b1_ms", "latency ms", "{:.3g}"), Column("infer/joules_per_sample", "J/inference", "{:.3g}"),
    Column("predictor/rmse_points", "pred. RMSE pts", "{:.2f}"), Column("predictor/kendall_tau", "tau", "{:.2f}"),
    Column("energy/joules", "energy J", "{:.3g}"), ENERGY_METHOD, Column("carbon/g_co2e", "gCO2e", "{:.3g}"),
    Column("time/wall_s", "wall s", "{:.1f}"),
])
