import csv
import json

from experiments.records import atomic_write_json
from experiments.tables import aggregate, load_runs, main, render


def write_summary(job, status, records, error=None):
    """summary.json with fixture rows that carry only the keys a table reads (records.write_summary would refuse
    them as incomplete)."""
    atomic_write_json(job / "summary.json", {"status": status, "error": error, "records": records})


def _job(root, name, status, acc, seed):
    job = root / name
    job.mkdir(parents=True)
    (job / "config.yaml").write_text("x: 1\n")
    if status is not None:
        write_summary(job, status, [{"lth/level": 1, "lth/kind": "ticket", "acc/test": acc, "seed": seed}] if status == "completed" else [],
                      error=None if status == "completed" else "boom")


def test_failed_and_unfinished_runs_are_missing_not_zero(tmp_path, capsys):
    _job(tmp_path, "a", "completed", 0.5, 0)
    _job(tmp_path, "b", "completed", 0.7, 1)
    _job(tmp_path, "c", "failed", None, 2)
    _job(tmp_path, "d", None, None, 3)
    rows, missing = load_runs([tmp_path])
    assert sorted(r["acc/test"] for r in rows) == [0.5, 0.7]
    assert len(missing) == 2 and any("failed: boom" in m for m in missing) and any("unfinished" in m for m in missing)
    agg = aggregate(rows, ["lth/level", "lth/kind"], ["acc/test"])
    assert agg == [{"lth/level": 1, "lth/kind": "ticket", "acc/test": "0.6 ± 0.14 (n=2)"}]
    assert main(["--runs", str(tmp_path), "--format", "csv", "--columns", "acc/test"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0] == "acc/test" and "missing:" in out.err


def test_render_formats():
    rows = [{"a": 1.23456, "b": "x%"}]
    cols = [("a", "A", "{:.2f}"), ("b", "B", "{}")]
    assert render(rows, cols, "md").splitlines()[2] == "| 1.23 | x% |"
    assert "x\\%" in render(rows, cols, "latex")
    assert json.dumps(render(rows, cols, "csv")) == json.dumps("A,B\r\n1.23,x%\r\n")


def test_named_table_writes_files_and_plot(tmp_path):
    for seed, (dense, ticket) in enumerate([(0.60, 0.66), (0.62, 0.64)]):
        job = tmp_path / "sweep" / f"{seed}"
        job.mkdir(parents=True)
        write_summary(job, "completed", [
            {"lth/level": 0, "lth/kind": "ticket", "lth/percent_remaining": 100.0, "acc/test": dense, "seed": seed},
            {"lth/level": 1, "lth/kind": "ticket", "lth/percent_remaining": 80.0, "acc/test": ticket, "seed": seed},
        ])
    out = tmp_path / "results"
    assert main(["lth_mnist1d_curve", "--runs", str(tmp_path / "sweep"), "--out", str(out)]) == 0
    table = (out / "table.csv").read_text().splitlines()
    assert table[2].startswith("1,ticket,80 ± 0 (n=2),0.65 ± 0.014 (n=2)")
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_moe_charlm_table_keeps_dense_runs_of_different_length_apart(tmp_path):
    def row(ffn, e, k, steps, bpc, seed):
        curve = [{"step": s, "flops_train": 10 * s, "bpc/val": bpc + 1 / s} for s in (steps // 2, steps)]
        return {"moe/ffn": ffn, "moe/d_ff": 256, "moe/num_experts": e, "moe/top_k": k, "train/steps": steps,
                "bpc/test": bpc, "energy/joules": 5.0 * steps, "curve/val": curve, "seed": seed}

    for seed in (0, 1):
        for i, r in enumerate([row("dense", 0, 0, 2000, 2.8, seed), row("dense", 0, 0, 3600, 2.6, seed),
                               row("moe", 16, 1, 2000, 2.7, seed)]):
            job = tmp_path / "sweep" / f"{seed}_{i}"
            job.mkdir(parents=True)
            write_summary(job, "completed", [r])
    out = tmp_path / "results"
    assert main(["moe_charlm", "--runs", str(tmp_path / "sweep"), "--out", str(out)]) == 0
    table = list(csv.DictReader((out / "table.csv").read_text().splitlines()))
    assert [(r["ffn"], r["steps"], r["test bpc"]) for r in table] == [
        ("dense", "2000", "2.8 ± 0 (n=2)"), ("dense", "3600", "2.6 ± 0 (n=2)"), ("moe", "2000", "2.7 ± 0 (n=2)")]
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
