"""Equivalents people understand, next to grams; each factor with its source."""

from __future__ import annotations

# US EPA, "Greenhouse Gas Emissions from a Typical Passenger Vehicle" (EPA-420-F-18-008): ~400 g CO2 per mile.
G_CO2_PER_KM_CAR = 400.0 / 1.609344
# US EPA Greenhouse Gas Equivalencies Calculator (2018-2021 editions): 8.22e-6 t CO2 per smartphone charged.
G_CO2_PER_PHONE_CHARGE = 8.22


def equivalents(g_co2e: float) -> dict[str, float]:
    """{"carbon/eq_km_car": ..., "carbon/eq_phone_charges": ...} for `g_co2e` grams."""
    return {"carbon/eq_km_car": g_co2e / G_CO2_PER_KM_CAR, "carbon/eq_phone_charges": g_co2e / G_CO2_PER_PHONE_CHARGE}
