"""How the OFA tables pair runs: within one configuration and seed, never by a silent choice.

A job's configuration is its config.yaml without the seed and the sweep folder. Two rows pair when their seeds and
items (corner, target) match and their configurations agree on every key but the ones that define the two sides
(`SIDES`) and those the user frees with `--pair KEY`. A slot held by two job folders is an error naming both.
"""

from __future__ import annotations

from experiments.tables.build import Table

# Config keys in which the two sides of a pair differ by design (a PS job lists baselines, a no-PS job does not).
SIDE_KEYS = ("method.baselines",)
SIDES = {"scratch": SIDE_KEYS, "training": ("method.training", *SIDE_KEYS)}
NOT_A_SETTING = ("sweep",)  # where a job ran, not what it computed


def setting(row: dict, free: tuple[str, ...] = ()) -> str:
    """The configuration a row's job ran, as text, without the keys `free` lets differ."""
    config = row.get("config", {})
    return repr(sorted((k, repr(v)) for k, v in config.items() if k not in free and k not in NOT_A_SETTING))


def slots(rows: list[dict], key: str | None, free: tuple[str, ...] = ()) -> dict[tuple, dict]:
    """{(configuration, seed, row[key]): row}. One job's repeated row counts once; two job folders claiming one slot
    (the same configuration and seed twice, e.g. a run copied or repeated under --runs) are a ValueError naming
    both."""
    out: dict[tuple, dict] = {}
    for r in rows:
        slot = (setting(r, free), r.get("seed"), r.get(key) if key else None)
        first = out.setdefault(slot, r)
        if first.get("job_dir") != r.get("job_dir"):
            what = f"{r.get('ofa/kind')} {key}={r.get(key)}" if key else str(r.get("ofa/kind"))
            raise ValueError(f"two jobs claim one slot (seed {r.get('seed')}, {what}, the same configuration): "
                             f"{first.get('job_dir')} and {r.get('job_dir')}; pass only one of them in --runs")
    return out


def shared(*rows: dict) -> dict:
    """What a derived row carries from the runs it pairs: the first (the subject's) job config, so that pairs of
    different configurations stay separate rows, the seed, the energy method (`; `-joined when they differ), the
    first job folder, and the defaults filled in for runs that predate a key (experiments.tables.defaults)."""
    methods = sorted({r["energy/method"] for r in rows if r.get("energy/method")})
    defaulted = {k: v for r in rows for k, v in (r.get("config_defaulted") or {}).items()}
    jobs = sorted({str(r.get("job_dir")) for r in rows if r.get("config_defaulted")})
    return {"seed": rows[0].get("seed"), "job_dir": rows[0].get("job_dir"), "config": dict(rows[0].get("config", {})),
            "energy/method": "; ".join(methods) or None, "config_defaulted": defaulted, "jobs_defaulted": jobs}


def per_configuration(check):
    """A table's checks run once per configuration (the config keys that split its rows), each statement prefixed
    with that configuration, so a verdict never mixes two configurations' numbers."""
    def checks(rows: list[dict], table: Table) -> list[str]:
        if not table.split_by:
            return check(rows, table)
        out = []
        for values in dict.fromkeys(tuple(r.get(k) for k in table.split_by) for r in table.rows):
            mine = [r for r in table.rows if tuple(r.get(k) for k in table.split_by) == values]
            label = ", ".join(f"{k}={v}" for k, v in zip(table.split_by, values))
            sub = Table(table.columns, mine, table.aggregated, [], table.warnings, table.noted)
            out.extend(f"[{label}] {line}" for line in check(rows, sub))
        return list(dict.fromkeys(out))
    return checks


def partner(b_rows: dict[tuple, dict], a: dict, key: tuple, b_free: tuple[str, ...]) -> dict | None:
    """The b row of a's slot: same seed and item, a configuration equal to a's but for the keys `b_free` frees."""
    return b_rows.get((setting(a, b_free), key[1], key[2]))
