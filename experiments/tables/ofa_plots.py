"""The once-for-all figures, over the rows `experiments.tables.ofa` derives (accuracies in points).

Every function has the `Plot` signature (rows, path, title) or is bound to it with a lambda/partial.
"""

from __future__ import annotations

import math
from pathlib import Path

from experiments.tables.build import group
from experiments.tables.plots import _plt, bars_note, log_ticks, mean_std_n, name, save, style

ACC_POINTS = "test accuracy (%)"


def plot_paired_corners(rows: list[dict], path: Path, title: str, labels: tuple[str, str]) -> None:
    """Two bars per corner (ordered by FLOPs), mean ± std over seeds, and the paired difference below."""
    fig, (top, bottom) = _plt().subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(2, 1))
    corners = [c for (c,), _ in sorted(group(rows, ["ofa/corner"]).items(),
                                       key=lambda kv: (mean_std_n([r.get("flops/infer_per_sample") for r in kv[1]])[0],
                                                       kv[0]))]
    counts = []
    for i, (key, label) in enumerate(zip(("acc/a", "acc/b"), labels)):
        stats = [mean_std_n([r[key] for r in rows if r["ofa/corner"] == c]) for c in corners]
        counts += [n for _, _, n in stats]
        top.bar([j + (i - 0.5) * 0.4 for j in range(len(corners))], [m for m, _, _ in stats], width=0.4,
                yerr=[s for _, s, _ in stats], capsize=3, label=name(rows[0], label), color=f"C{i}")
    diff = [mean_std_n([r["acc/diff"] for r in rows if r["ofa/corner"] == c]) for c in corners]
    bottom.bar(range(len(corners)), [m for m, _, _ in diff], yerr=[s for _, s, _ in diff], capsize=3, color="C2")
    bottom.axhline(0, color="black", lw=0.8)
    bottom.set_xticks(range(len(corners)), corners, rotation=20, ha="right", fontsize=8)
    top.set_ylim(bottom=max(0.0, min(v for r in rows for v in (r["acc/a"], r["acc/b"])) - 5))
    style(top, "", ACC_POINTS)
    style(bottom, "corner sub-net (depth-expand-kernel at min/max; by FLOPs)",
          f"{labels[0]} - {labels[1]}\n(points, paired)")
    save(fig, path, title, bars_note(counts))


def plot_search(rows: list[dict], path: Path, title: str) -> None:
    """Test accuracy against the FLOPs target: searched sub-net, its predicted validation accuracy, the
    width-multiplier model of <= equal FLOPs."""
    fig, ax = _plt().subplots(figsize=(6.5, 4.5))
    searched = [r for r in rows if r.get("ofa/target_fraction") is not None]
    counts = []
    for key, label, fmt in (("acc/a", "searched sub-net (test)", "-o"), ("acc/predicted", "predicted (validation)",
                                                                          ":x"),
                            ("acc/b", "width multiplier, from scratch (test)", "--s")):
        points = sorted((t, mean_std_n([m.get(key) for m in ms])) for (t,), ms in
                        group(searched, ["ofa/target_fraction"]).items())
        points = [(t, s) for t, s in points if s[2]]
        counts += [n for _, (_, _, n) in points]
        ax.errorbar([t for t, _ in points], [m for _, (m, _, _) in points], yerr=[s for _, (_, s, _) in points],
                    fmt=fmt, capsize=3, label=name(searched[0], label) if searched else label)
    ax.set_xticks(sorted({r["ofa/target_fraction"] for r in searched}))
    style(ax, "FLOPs target (fraction of the full network's FLOPs)", ACC_POINTS)
    save(fig, path, title, bars_note(counts))


def plot_cost(rows: list[dict], path: Path, title: str, break_even: float | None = None) -> None:
    """Energy of the OFA pipeline vs one training per target against the number of targets (log-log), the
    break-even N as a dotted line."""
    fig, ax = _plt().subplots(figsize=(6.5, 4.5))
    counts, values = [], []
    for key, label, fmt in (("cost/ofa_j", "OFA: supernet + predictor + N searches", "-o"),
                            ("cost/scratch_j", "one model trained per target", "--s")):
        points = sorted((n, mean_std_n([m[key] for m in ms])) for (n,), ms in group(rows, ["ofa/targets_n"]).items())
        counts += [c for _, (_, _, c) in points]
        values += [m for _, (m, _, _) in points]
        ax.errorbar([n for n, _ in points], [m for _, (m, _, _) in points], yerr=[s for _, (_, s, _) in points],
                    fmt=fmt, capsize=3, label=name(rows[0], label))
    if break_even is not None and math.isfinite(break_even):
        ax.axvline(break_even, color="grey", ls=":", label=f"break-even N = {break_even:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    log_ticks(ax.xaxis, [r["ofa/targets_n"] for r in rows])
    log_ticks(ax.yaxis, values, "J")
    estimated = any("estimated" in str(r.get("energy/method")) for r in rows)
    style(ax, "number of deployment targets N (log scale)",
          f"{'estimated' if estimated else 'measured'} energy (J, log scale)")
    save(fig, path, title, bars_note(counts))


PARETO_SERIES = {"ofa_corner": ("OFA corner sub-nets", "o"), "ofa_target": ("OFA searched sub-nets (targets)", "*"),
                 "scratch_corner": ("corners from scratch", "s"), "width_multiplier": ("width multiplier, scratch", "D")}


def plot_pareto(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy against FLOPs (left) and against energy per inference (right), one marker per model kind, the
    FLOPs targets as dotted lines; a kind without energy-per-inference rows is left out of the right panel."""
    fig, axes = _plt().subplots(1, 2, figsize=(12, 4.8))
    counts = []
    estimated = any("estimated" in str(r.get("infer/energy_method")) for r in rows)
    for ax, x_key, unit in ((axes[0], "flops/infer_per_sample", "FLOP"), (axes[1], "infer/joules_per_sample", "J")):
        xs = []
        for i, (kind, (label, marker)) in enumerate(PARETO_SERIES.items()):
            members = [r for r in rows if r["ofa/kind"] == kind and r.get(x_key) is not None]
            points = [(mean_std_n([m[x_key] for m in ms]), mean_std_n([m["acc/test"] for m in ms]))
                      for ms in group(members, ["ofa/name"]).values()]
            if not points:
                continue
            counts += [n for _, (_, _, n) in points]
            xs += [x for (x, _, _), _ in points]
            ax.errorbar([x for (x, _, _), _ in points], [y for _, (y, _, _) in points],
                        xerr=[s for (_, s, _), _ in points], yerr=[s for _, (_, s, _) in points], fmt=marker,
                        color=f"C{i}", capsize=2, markersize=9 if marker == "*" else 6, label=name(members[0], label))
        ax.set_xscale("log")
        log_ticks(ax.xaxis, xs, unit)
    targets = [r for r in rows if r.get("ofa/target_flops") is not None]
    for (_,), ms in group(targets, ["ofa/target_fraction"]).items():
        axes[0].axvline(mean_std_n([m["ofa/target_flops"] for m in ms])[0], color="grey", ls=":", lw=0.8)
    style(axes[0], "inference FLOPs per sample (analytic, log scale; dotted: the FLOPs targets)", ACC_POINTS)
    style(axes[1], f"energy per inference (J, {'ESTIMATED' if estimated else 'measured'}, log scale)", ACC_POINTS)
    save(fig, path, title, bars_note(counts))
