"""The registry's coordinate system: `crs:` in a YAML file (or a GeoJSON file's "crs" member).

gridbot stores WGS-84 only (core.places.crs says why). A registry states the datum its
coordinates are in — `crs: wgs84` (the default when nothing is stated) or `crs: gcj02`; the
names "WGS-84" and "GCJ-02" (any case) and GeoJSON's CRS84 / EPSG:4326 are accepted too. One
import is one registry: every file that states a datum must state the same one, and it applies
to all coordinates of the input (CSV files cannot state one). Anything else is a problem with
its file and line, and nothing is imported.

A GCJ-02 registry is converted before validation, so the checks (a building inside its grid)
and everything stored — grid polygons, the lat/lon of buildings, landmarks, units,
organisations and service centres — are WGS-84. Values that are not numbers are left for
validation to report. Converted values are rounded to RESULT_DIGITS (about a centimetre), so
importing the same files again changes nothing.
"""

from __future__ import annotations

from typing import Any

from core.places.crs import GCJ02, WGS84, crs_named, gcj02_to_wgs84
from core.registry.reading import CrsSetting, Problem, RegistryInput

RESULT_DIGITS = 7
POINT_SECTIONS = ("buildings", "landmarks", "units", "organisations", "service_centres")


def _named(setting: CrsSetting) -> str | None:
    value = setting.value
    if isinstance(value, dict):  # GeoJSON 2008: {"type": "name", "properties": {"name": "urn:…:CRS84"}}
        value = (value.get("properties") or {}).get("name") if value.get("type") == "name" else None
    return crs_named(value)


def registry_crs(data: RegistryInput) -> tuple[str, list[Problem]]:
    """The datum the input states (WGS84 when none does) and the problems with its statements."""
    problems: list[Problem] = []
    chosen: tuple[str, CrsSetting] | None = None
    for setting in data.crs:
        name = _named(setting)
        if name is None:
            problems.append(Problem(setting.file, setting.line,
                                    f"unknown coordinate system {setting.value!r} in crs "
                                    f"(use wgs84 or gcj02; WGS-84 and GCJ-02 are read too)"))
        elif chosen is None:
            chosen = (name, setting)
        elif chosen[0] != name:
            first = chosen[1]
            where = f"{first.file}:{first.line}" if first.line else first.file
            problems.append(Problem(setting.file, setting.line,
                                    f"crs {name} here but {chosen[0]} at {where}: one registry, one coordinate system"))
    return (chosen[0] if chosen else WGS84), problems


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _converted(lon: float, lat: float) -> tuple[float, float]:
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    return round(wlon, RESULT_DIGITS), round(wlat, RESULT_DIGITS)


def _positions(value: Any) -> Any:
    """GeoJSON coordinates with each [lon, lat, …] position converted; anything else kept."""
    if not isinstance(value, list):
        return value
    if len(value) >= 2 and all(not isinstance(v, (list, dict)) for v in value):
        lon, lat = _number(value[0]), _number(value[1])
        if lon is None or lat is None:
            return value
        return [*_converted(lon, lat), *value[2:]]
    return [_positions(v) for v in value]


def to_wgs84(data: RegistryInput) -> int:
    """Convert a GCJ-02 input in place to WGS-84; how many points were converted."""
    points = 0
    for section in POINT_SECTIONS:
        for record in data.records.get(section, []):
            lon, lat = _number(record.get("lon")), _number(record.get("lat"))
            if lon is None or lat is None:
                continue
            record.data["lon"], record.data["lat"] = _converted(lon, lat)
            points += 1
    for polygon in data.polygons:
        geometry = polygon.geometry
        if isinstance(geometry, dict) and "coordinates" in geometry:
            polygon.geometry = {**geometry, "coordinates": _positions(geometry["coordinates"])}
            points += 1
    return points


def normalise(data: RegistryInput) -> list[Problem]:
    """Bring the input to WGS-84 as its `crs` says; the problems with the statement (then nothing
    is converted)."""
    crs, problems = registry_crs(data)
    if not problems and crs == GCJ02:
        to_wgs84(data)
    return problems
