"""Energy and CO2e from published inputs, so published models can sit beside measured runs.

- Patterson et al. 2021, "Carbon Emissions and Large Neural Network Training" (arXiv:2104.10350), eq. 1-2:
  MWh = hours x processors x average power per processor (W) x PUE / 10^6;  tCO2e = MWh x tCO2e/MWh.
- Strubell, Ganesh & McCallum 2019, "Energy and Policy Considerations for Deep Learning in NLP" (ACL), sec. 3:
  p_t = 1.58 x t x (p_c + p_r + g x p_g) / 1000 kWh (t hours; p_c, p_r, p_g average CPU, DRAM and per-GPU
  watts; g GPUs; 1.58 = the 2018 industry-average PUE they used); CO2e = 0.954 x p_t lb (US EPA average).
"""

from __future__ import annotations

import math

LB_PER_KG = 2.20462


def _pos(name: str, v: float, allow_zero: bool = True) -> float:
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}={v!r}: must be a finite number {'>=' if allow_zero else '>'} 0")
    return float(v)


def patterson(hours: float, processors: int, avg_power_w: float, pue: float, t_co2e_per_mwh: float) -> dict:
    """Patterson et al. 2021: returns {"mwh", "kwh", "t_co2e", "g_co2e"}."""
    mwh = _pos("hours", hours) * _pos("processors", processors) * _pos("avg_power_w", avg_power_w) \
        * _pos("pue", pue, allow_zero=False) / 1e6
    t = mwh * _pos("t_co2e_per_mwh", t_co2e_per_mwh)
    return {"mwh": mwh, "kwh": mwh * 1e3, "t_co2e": t, "g_co2e": t * 1e6}


def strubell(hours: float, cpu_w: float, dram_w: float, gpu_w: float, gpus: int, pue: float = 1.58,
             lb_co2e_per_kwh: float = 0.954) -> dict:
    """Strubell et al. 2019: returns {"kwh", "lb_co2e", "g_co2e"} (defaults are the paper's constants)."""
    kwh = _pos("pue", pue, allow_zero=False) * _pos("hours", hours) * (
        _pos("cpu_w", cpu_w) + _pos("dram_w", dram_w) + _pos("gpus", gpus) * _pos("gpu_w", gpu_w)) / 1000
    lb = kwh * _pos("lb_co2e_per_kwh", lb_co2e_per_kwh)
    return {"kwh": kwh, "lb_co2e": lb, "g_co2e": lb / LB_PER_KG * 1000}
