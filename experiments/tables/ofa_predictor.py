"""Which accuracy predictor a once-for-all search should trust: the variants of one supernet side by side.

Each variant is a job specialising the same trained supernet (`method.supernet_from`) with other predictor settings
(`method.predictor_link`, `method.predictor_ensemble`, `method.search.uncertainty_penalty`); the predictor is refitted
to the same measured sub-nets, so only the predictor and the search differ. Per target it shows the predicted and
the measured validation accuracy of the searched sub-net (their gap is how far the search exploited the predictor's
errors: the optimiser's curse), its test accuracy, and the test accuracy paired with OFA's own predictor (identity
link, one member, ranked by the mean) on the same supernet and seed.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from experiments.tables.build import Table, group
from experiments.tables.columns import ENERGY_METHOD
from experiments.tables.ofa import of_kind, points, shared
from experiments.tables.ofa_plots import ACC_POINTS
from experiments.tables.plots import _plt, bars_note, mean_std_n, save, style
from experiments.tables.spec import TABLES, Column, TableSpec

OFA_DEFAULT = "identity x1"  # mit-han-lab/once-for-all's predictor and search
PREDICTOR_ROW = "held-out sub-nets"


def variant(predictor: dict, penalty: float) -> str:
    """'identity x1', 'sigmoid x5 bootstrap, mean - 1 std', ...: the predictor's link, members (on bootstrap
    resamples or not) and the search's penalty."""
    label = f"{predictor.get('predictor/link') or 'identity'} x{predictor.get('predictor/ensemble') or 1}"
    label += " bootstrap" if predictor.get("predictor/bootstrap") else ""
    return label + (f", mean - {penalty:g} std" if penalty else "")


def supernet_of(row: dict) -> str:
    """The job folder that trained the row's supernet (its own, or `method.supernet_from`'s), resolved."""
    return str(Path(row.get("config", {}).get("method.supernet_from") or row.get("job_dir")).resolve())


def derive_predictor_variants(rows: list[dict]) -> list[dict]:
    predictors = {p.get("job_dir"): p for p in of_kind(rows, "predictor")}
    out, seen, penalties = [], set(), {}
    for t in of_kind(rows, "ofa_target"):
        if (p := predictors.get(t.get("job_dir"))) is None:
            continue
        penalty = t.get("search/uncertainty_penalty") or 0.0
        penalties.setdefault(t.get("job_dir"), set()).add(penalty)
        name = variant(p, penalty)
        key = (name, supernet_of(t), t.get("seed"), t.get("ofa/target_fraction"))
        if key in seen:  # the same variant of the same supernet twice (e.g. a source job and its copy): count once
            continue
        seen.add(key)
        predicted, val = points(t.get("acc/predicted_val")), points(t.get("acc/val"))
        out.append({**shared(t), "ofa/predictor_variant": name, "ofa/supernet": key[1],
                    "ofa/target_fraction": key[3], "acc/predicted": predicted,
                    "acc/predicted_std": points(t.get("acc/predicted_val_std")), "acc/val": val,
                    "acc/gap": None if predicted is None or val is None else predicted - val,
                    "acc/test": points(t.get("acc/test")), "flops/infer_per_sample": t.get("flops/infer_per_sample")})
    default = {(r["ofa/supernet"], r["seed"], r["ofa/target_fraction"]): r["acc/test"] for r in out
               if r["ofa/predictor_variant"] == OFA_DEFAULT}
    for r in out:
        base = default.get((r["ofa/supernet"], r["seed"], r["ofa/target_fraction"]))
        r["acc/diff"] = None if base is None else r["acc/test"] - base
    for job, p in predictors.items():  # each variant's held-out error, once per supernet and seed
        for penalty in sorted(penalties.get(job, ())) or [0.0]:
            key = (variant(p, penalty), supernet_of(p), p.get("seed"), PREDICTOR_ROW)
            if key not in seen:
                seen.add(key)
                out.append({**shared(p), "ofa/predictor_variant": key[0], "ofa/supernet": key[1],
                            "ofa/target_fraction": PREDICTOR_ROW,
                            "predictor/rmse_points": p.get("predictor/rmse_points"),
                            "predictor/kendall_tau": p.get("predictor/kendall_tau")})
    if not out:
        raise ValueError("no rows to tabulate: the runs hold no ofa_target row with its job's predictor row (run "
                         "`python -m experiments.run experiment=ofa_mnist1d method.supernet_from=JOB "
                         "method.predictor_ensemble=5 method.search.uncertainty_penalty=1 'method.baselines=[]'`)")
    return out


def check_predictor_variants(rows: list[dict], table: Table) -> list[str]:
    """Per variant, over every (seed, target): the mean predicted - measured gap and the paired test difference."""
    out = []
    for (name,), members in sorted(group([r for r in rows if r["ofa/target_fraction"] != PREDICTOR_ROW],
                                         ["ofa/predictor_variant"]).items()):
        gaps = [r["acc/gap"] for r in members if r["acc/gap"] is not None]
        diffs = [r["acc/diff"] for r in members if r["acc/diff"] is not None]
        line = f"{name}: test accuracy {statistics.fmean(r['acc/test'] for r in members):.2f} %"
        if gaps:
            line += f", predicted - measured validation accuracy {statistics.fmean(gaps):+.2f} points"
        if diffs and name != OFA_DEFAULT:
            line += (f", test vs OFA's predictor on the same supernet {statistics.fmean(diffs):+.2f} points "
                     f"(paired, n={len(diffs)}; better at {sum(d > 0 for d in diffs)}, worse at "
                     f"{sum(d < 0 for d in diffs)})")
        out.append(line + f" over {len(members)} searches.")
    return out


def plot_predictor_variants(rows: list[dict], path: Path, title: str) -> None:
    """Per target: each variant's searched test accuracy (top) and its predicted - measured val gap (bottom)."""
    fig, (top, bottom) = _plt().subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(2, 1))
    searched = [r for r in rows if r["ofa/target_fraction"] != PREDICTOR_ROW]
    counts = []
    for i, ((name,), members) in enumerate(sorted(group(searched, ["ofa/predictor_variant"]).items())):
        for ax, key in ((top, "acc/test"), (bottom, "acc/gap")):
            pts = sorted((t, mean_std_n([m.get(key) for m in ms])) for (t,), ms in
                         group(members, ["ofa/target_fraction"]).items())
            pts = [(t, s) for t, s in pts if s[2]]
            counts += [n for _, (_, _, n) in pts]
            ax.errorbar([t + 0.006 * i for t, _ in pts], [m for _, (m, _, _) in pts],
                        yerr=[s for _, (_, s, _) in pts], fmt="-o", capsize=3, color=f"C{i}",
                        label=name if ax is top else None)
    bottom.axhline(0, color="black", lw=0.8)
    style(top, "", ACC_POINTS)
    style(bottom, "target (fraction of the full network's cost)", "predicted - measured\nval accuracy (points)")
    save(fig, path, title, bars_note(counts))


TABLES.register("ofa_predictor")(TableSpec(
    sweep="ofa_mnist1d",
    group_by=["ofa/predictor_variant", "ofa/target_fraction"],
    pool=["method.supernet_from", "method.predictor_link", "method.predictor_ensemble", "method.predictor_bootstrap",
          "method.search.uncertainty_penalty"],
    columns=[Column("ofa/predictor_variant", "predictor (link x members, search rank)"),
             Column("ofa/target_fraction", "target (x full)", "{}"),
             Column("acc/test", "searched test acc %", "{:.2f}"), Column("acc/diff", "vs OFA's predictor", "{:+.2f}"),
             Column("acc/predicted", "predicted val %", "{:.2f}"), Column("acc/predicted_std", "ensemble std",
                                                                         "{:.2f}"),
             Column("acc/val", "measured val %", "{:.2f}"), Column("acc/gap", "predicted - measured", "{:+.2f}"),
             Column("flops/infer_per_sample", "FLOPs", "{:.3g}"),
             Column("predictor/rmse_points", "held-out RMSE (points)", "{:.2f}"),
             Column("predictor/kendall_tau", "Kendall tau", "{:.2f}"), ENERGY_METHOD],
    about="Accuracy-predictor variants searching one trained supernet (method.supernet_from): OFA's MLP (identity "
          "x1) against a sigmoid-bounded MLP and deep ensembles ranked by mean - penalty x std, each refitted to the "
          "same measured sub-nets; the searched sub-net is exported and tested without fine-tuning.",
    plot=plot_predictor_variants,
    derive=derive_predictor_variants,
    checks=check_predictor_variants,
))
