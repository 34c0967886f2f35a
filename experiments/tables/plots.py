"""The figures of the paper tables: axis labels in words with units, readable ticks, a title, and a line under
the axes saying what the error bars are. Every function has the `Plot` signature (rows, path, title)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path

from experiments.tables.build import group, number

# Row keys -> axis labels in words, with units.
LABELS = {
    "acc/test": "test accuracy (fraction correct)",
    "acc/test_at_early_stop": "test accuracy at early stop (fraction correct)",
    "map/test": "test mAP (mean average precision)",
    "bpc/test": "test loss (bits per character)",
    "mse/test": "test mean squared error",
    "energy/joules": "measured or estimated energy (J)",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def name(row: dict, base: str) -> str:
    """A series label; the config values that split the table's rows (row["variant"]) are appended."""
    return f"{base} ({row['variant']})" if row.get("variant") else base


def mean_std_n(values: list) -> tuple[float, float, int]:
    xs = [x for v in values if (x := number(v)) is not None]
    if not xs:  # e.g. a column older runs lack: n = 0, which callers skip
        return math.nan, 0.0, 0
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0, len(xs)


def bars_note(counts: list[int]) -> str:
    """What the error bars are, for the caption line under the axes."""
    lo, hi = min(counts, default=0), max(counts, default=0)
    if hi <= 1:
        return "One run per point: no error bars."
    n = f"{lo}" if lo == hi else f"{lo} to {hi}"
    return f"Points: mean over n = {n} seeds; error bars: ±1 sample standard deviation over those seeds."


def log_ticks(axis, values: list[float], unit: str = "") -> None:
    """Log axis whose ticks carry plain numbers (1, 2, 5, 10 ...; SI prefixes with a unit), never only 10^k."""
    from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v and v > 0]
    span = math.log10(max(positive) / min(positive)) if positive else 3.0
    subs = (1.0,) if span > 2.5 else (1.0, 2.0, 5.0) if span > 0.8 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(EngFormatter(unit=unit, places=None) if unit else FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def percent_ticks(ax, percents: list[float], most: int = 8) -> None:
    """Explicit x ticks at (every k-th of) the sparsities that were run: 100, 51, 26, 13, 6.9, 3.6 ..."""
    from matplotlib.ticker import NullFormatter, NullLocator

    values = sorted(set(percents), reverse=True)
    ticks = values[::math.ceil(len(values) / most)] if values else []
    ax.set_xticks(ticks, [f"{t:.2g}" if t < 10 else f"{t:.0f}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def style(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def save(fig, path: Path, title: str, note: str) -> None:
    """Title above, the error-bar note below the axes; write the PNG and close."""
    fig.suptitle(title, fontsize=10)
    fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    _plt().close(fig)


def by_kind(row: dict) -> str:
    return str(row.get("lth/kind"))


def plot_accuracy_vs_sparsity(rows: list[dict], path: Path, title: str, metric: str = "acc/test",
                              series: Callable[[dict], str] = by_kind) -> None:
    """`metric` against % weights remaining (log x, decreasing), one line per `series` value; a series that
    has no dense run (the baselines) starts from the dense run of its variant."""
    fig, ax = _plt().subplots(figsize=(6.5, 4.5))
    label = {id(r): name(r, series(r)) for r in rows}
    counts = []
    for line in sorted(set(label.values())):
        members = [r for r in rows if label[id(r)] == line]
        if not any(r.get("lth/level") == 0 for r in members):
            members += [r for r in rows if r.get("lth/level") == 0 and r.get("variant") == members[0].get("variant")]
        points = sorted(((pct, mean_std_n([m.get(metric) for m in ms])) for (pct,), ms in
                         group(members, ["lth/percent_remaining"]).items()), reverse=True)
        counts += [n for _, (_, _, n) in points]
        ax.errorbar([p for p, _ in points], [m for _, (m, _, _) in points], yerr=[s for _, (_, s, _) in points],
                    marker="o", capsize=3, label=line)
    ax.set_xscale("log")
    percent_ticks(ax, [r["lth/percent_remaining"] for r in rows])
    ax.invert_xaxis()
    style(ax, "weights remaining (% of dense, log scale)", LABELS.get(metric, metric))
    save(fig, path, title, bars_note(counts))


def plot_af_pareto(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy (or mAP) against mean GFLOPs per video, one series per method, mean ± std over seeds."""
    metric = "acc/test" if any(r.get("acc/test") is not None for r in rows) else "map/test"

    def series(r: dict) -> str:  # uniform sampling is one curve per resolution (k varies along it)
        base = r["af/method"]
        if base == "uniform" and "@" in str(r.get("af/setting")):
            base = f"uniform @{r['af/setting'].split('@')[1]}px"
        return name(r, base)

    fig, ax = _plt().subplots(figsize=(6.5, 4.5))
    counts = []
    for line in sorted({series(r) for r in rows}):
        points = sorted((mean_std_n([m["gflops/mean"] for m in ms]), mean_std_n([m.get(metric) for m in ms]))
                        for ms in group([r for r in rows if series(r) == line], ["af/setting"]).values())
        counts += [n for _, (_, _, n) in points]
        ax.errorbar([x for (x, _, _), _ in points], [y for _, (y, _, _) in points],
                    yerr=[s for _, (_, s, _) in points], fmt="-o" if line.startswith(("learned", "uniform")) else "o",
                    capsize=3, label=line, alpha=0.85)
    ax.set_xscale("log")
    log_ticks(ax.xaxis, [r["gflops/mean"] for r in rows])
    style(ax, "compute per video (GFLOPs = 2 x GMACs, mean over test videos, log scale)", LABELS[metric])
    save(fig, path, title, bars_note(counts))


def moe_label(r: dict) -> str:
    if r["moe/ffn"] == "dense":
        return name(r, f"dense d_ff={r.get('moe/d_ff')}, {r.get('train/steps')} steps")
    return name(r, f"MoE E={r['moe/num_experts']} top-{r['moe/top_k']}")


def moe_order(r: dict) -> tuple:
    return r["moe/ffn"] != "dense", r.get("moe/num_experts") or 0, r.get("moe/top_k") or 0, \
        r.get("moe/d_ff") or 0, r.get("train/steps") or 0, r.get("variant") or ""


def plot_moe_bars(rows: list[dict], path: Path, title: str, metric: str = "mse/test") -> None:
    """Two bar panels, one bar per model (mean ± std over seeds): the test metric, and the energy."""
    fig, axes = _plt().subplots(1, 2, figsize=(11, 4.5))
    names = list(dict.fromkeys(moe_label(r) for r in sorted(rows, key=moe_order)))
    counts = []
    for ax, key in zip(axes, (metric, "energy/joules")):
        stats = [mean_std_n([r.get(key) for r in rows if moe_label(r) == n]) for n in names]
        counts += [n for _, _, n in stats]
        ax.bar(range(len(names)), [m for m, _, _ in stats], yerr=[s for _, s, _ in stats], capsize=4,
               color=[f"C{i}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        style(ax, "model (FFN kind, width or experts)", LABELS.get(key, key))
    save(fig, path, title, bars_note(counts))


def plot_moe_scaling(rows: list[dict], path: Path, title: str) -> None:
    """Switch-style figure: validation bpc against training FLOPs (one curve per model, mean over seeds at the
    evaluation steps they share), and final test bpc against energy (one point per model, ± std both ways)."""
    fig, (left, right) = _plt().subplots(1, 2, figsize=(12, 4.8))
    names = list(dict.fromkeys(moe_label(r) for r in sorted(rows, key=moe_order)))
    counts, flops, joules = [], [], []
    for i, line in enumerate(names):  # one colour per model in both panels
        members = [r for r in rows if moe_label(r) == line]
        curves = [{p["step"]: p for p in r["curve/val"]} for r in members if r.get("curve/val")]
        if curves:
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            xs = [statistics.mean(c[s]["flops_train"] for c in curves) for s in steps]
            ys = [statistics.mean(c[s]["bpc/val"] for c in curves) for s in steps]
            flops += xs
            left.plot(xs, ys, "--" if line.startswith("dense") else "-", color=f"C{i}", marker=".", label=line)
        (ex, es, en), (bx, bs, bn) = (mean_std_n([r.get(k) for r in members]) for k in ("energy/joules", "bpc/test"))
        if en:
            joules.append(ex)
            counts.append(min(en, bn))
            right.errorbar(ex, bx, xerr=es, yerr=bs, fmt="o", capsize=3, color=f"C{i}", label=line)
    for ax, values, unit in ((left, flops, "FLOP"), (right, joules, "J")):
        ax.set_xscale("log")
        log_ticks(ax.xaxis, values, unit)
    style(left, "training compute so far (FLOPs counted, log scale)", "validation loss (bits per character)")
    style(right, "training + evaluation energy (J, log scale)", LABELS["bpc/test"])
    save(fig, path, title, "Curves: mean over seeds. " + bars_note(counts))
