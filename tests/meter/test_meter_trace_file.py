"""Every bad carbon-intensity trace is one TraceError line naming the file (and line) and what is allowed, raised
by MeterConfig validation; through the runner it exits non-zero with no traceback and no training."""

import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from meter import MeterConfig
from meter.config import TraceError
from meter.intensity import TraceIntensity, resolve

ROOT = Path(__file__).resolve().parents[2]
HEAD = "timestamp,gco2_per_kwh\n"


def _hours(*values):
    t0 = datetime(2022, 1, 1, tzinfo=timezone.utc)
    return "".join(f"{(t0 + timedelta(hours=i)).isoformat()},{v}\n" for i, v in enumerate(values))


# kind -> (file text, line named in the error or None, words the message must hold)
BAD = {
    "empty": ("", None, "the file is empty"),
    "header_only": (HEAD, None, "no data rows"),
    "wrong_header": ("time,intensity\n" + _hours(1, 2), 1, "header is 'time,intensity'"),
    "one_column_header": ("timestamp\n" + _hours(1, 2), 1, "header is 'timestamp'"),
    "non_numeric": (HEAD + _hours(100, "high", 300), 3, "value 'high' is not a number"),
    "negative": (HEAD + _hours(100, -5), 3, "value '-5' is out of range"),
    "nan": (HEAD + _hours(100, "nan"), 3, "value 'nan' is out of range"),
    "inf": (HEAD + _hours("inf", 100), 2, "value 'inf' is out of range"),
    "too_large": (HEAD + _hours(100, 2500), 3, "value '2500' is out of range"),
    "bad_timestamp": (HEAD + "2022-01-01T00:00:00Z,1\nyesterday,2\n", 3, "timestamp 'yesterday' is not ISO 8601"),
    "duplicate": (HEAD + _hours(1, 2) + "2022-01-01T01:00:00Z,3\n", 4, "repeats the one on line 3"),
    "off_grid": (HEAD + _hours(1, 2, 3) + "2022-01-01T03:30:00Z,4\n", 5, "regular 3600 s grid"),
    "multi_day_gap": (HEAD + _hours(1, 2) + "2022-01-04T00:00:00Z,3\n", 4, "71 h without a value after line 3"),
    "empty_values_over_a_day": (HEAD + _hours(1, *[""] * 25, 3), 28, "26 h without a value after line 2"),
    "all_empty": (HEAD + _hours("", ""), None, "every value is empty"),
    "binary": (None, None, "not a UTF-8 text file"),
}


def _write(tmp_path, kind):
    text = BAD[kind][0]
    p = tmp_path / f"{kind}.csv"
    if text is None:
        p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    else:
        p.write_text(text)
    return p


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_trace_is_one_line_naming_file_line_and_format(tmp_path, kind):
    p = _write(tmp_path, kind)
    with pytest.raises(TraceError) as e:
        MeterConfig(intensity_trace=str(p))
    msg = str(e.value)
    _, line, words = BAD[kind]
    where = f"meter.intensity_trace={p}" + (f":{line}:" if line else ":")
    assert msg.startswith(where) and words in msg, msg
    assert "allowed: CSV with header 'timestamp,gco2_per_kwh'" in msg and "\n" not in msg
    assert e.value.line == line and e.value.path == str(p)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("value", ["", "does/not/exist.csv", "."])
def test_missing_or_empty_path(value):
    with pytest.raises(TraceError, match="no file given|no such file|not a file"):
        MeterConfig(intensity_trace=value)


def test_unordered_trace_is_sorted_with_a_warning(tmp_path, caplog):
    p = tmp_path / "shuffled.csv"
    p.write_text(HEAD + "2022-01-01T02:00:00Z,300\n2022-01-01T00:00:00Z,100\n2022-01-01T01:00:00Z,200\n")
    with caplog.at_level(logging.WARNING):
        cfg = MeterConfig(intensity_trace=str(p))
    assert f"{p}: rows are not in time order (first at line 3); sorted" in caplog.text
    tr = resolve(cfg)
    assert list(tr.values) == [100, 200, 300]


def test_a_day_of_missing_values_is_still_filled(tmp_path):
    p = tmp_path / "gappy.csv"
    p.write_text(HEAD + _hours(0, *[""] * 23) + "2022-01-02T00:00:00Z,240\n")  # 23 empty hours: 24 h apart
    tr = TraceIntensity.from_csv(p)
    assert tr.filled == 23
    np.testing.assert_allclose(tr.values, np.arange(25) * 10.0)


def test_trace_edited_after_a_check_is_read_again(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(HEAD + _hours(100, 200))
    MeterConfig(intensity_trace=str(p))
    p.write_text(HEAD + _hours(100, "x", 300))  # same path, new content: the cache must not hide it
    with pytest.raises(TraceError, match="t.csv:3"):
        MeterConfig(intensity_trace=str(p))


def _run(tmp_path, trace):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "CI": "1"}
    return subprocess.run([sys.executable, "-m", "experiments.run", "debug=fast", "progress=false",
                           f"meter.intensity_trace={trace}", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _assert_refused(tmp_path, kind, shown):
    proc = _run(tmp_path, shown)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert shown in proc.stderr and BAD.get(kind, (None, None, ""))[2] in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no training started


def test_runner_refuses_bad_trace_before_training(tmp_path):
    _assert_refused(tmp_path, "duplicate", str(_write(tmp_path, "duplicate")))


def _assert_refused_in_process(tmp_path, monkeypatch, capsys, kind, shown):
    """The same refusal through the console entry in this process (the check runs before Hydra starts, so one
    subprocess above covers the CLI path and these stay fast)."""
    import experiments.run as runner

    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # main() sets it to 1 for Hydra; restored after the test
    monkeypatch.setattr(sys, "argv", ["leanlab", "debug=fast", "progress=false", f"meter.intensity_trace={shown}",
                                      f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as e:
        runner.main()
    err = capsys.readouterr().err
    assert e.value.code == 4  # an unusable input file: input error
    assert "Traceback" not in err and shown in err and BAD.get(kind, (None, None, ""))[2] in err
    assert not (tmp_path / "run").exists()  # refused before any run folder is touched


@pytest.mark.parametrize("kind", sorted(set(BAD) - {"duplicate"}))
def test_runner_refuses_every_bad_trace(tmp_path, monkeypatch, capsys, kind):
    _assert_refused_in_process(tmp_path, monkeypatch, capsys, kind, str(_write(tmp_path, kind)))


def test_runner_refuses_missing_trace(tmp_path, monkeypatch, capsys):
    _assert_refused_in_process(tmp_path, monkeypatch, capsys, "missing", str(tmp_path / "nope.csv"))


def test_every_config_field_has_one_line_help_and_defaults_are_unchanged():
    import dataclasses

    fields = dataclasses.fields(MeterConfig)
    assert all(f.metadata.get("help") and "\n" not in f.metadata["help"] for f in fields)
    defaults = {f.name: getattr(MeterConfig(), f.name) for f in fields}
    assert defaults == {
        "enabled": True, "sources": ["nvml", "rapl", "estimate"], "sample_period_s": 0.1, "flush_period_s": 5.0,
        "pue": 1.0, "intensity_g_per_kwh": None, "intensity_trace": None, "intensity_kind": "average",
        "trace_align": "shift_year", "region": None, "cpu_w_per_core_idle": 0.74, "cpu_w_per_core_max": 3.5,
        "cpu_cores": None, "ram_w_per_gb": 0.392, "rapl_root": "/sys/class/powercap", "cuda_sync": True,
        "short_window_factor": 10.0, "emissions_csv": False, "schedule_mode": None, "schedule_window_h": 24,
        "schedule_span_factor": 2.0, "schedule_duration_h": 1.0}
