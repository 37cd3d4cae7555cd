"""Coordinate systems: WGS-84 (what GPS and Telegram give) and GCJ-02 (China's "Mars" datum).

Chinese map data (Amap/高德, Tencent, most survey exports) is published in GCJ-02, a datum that
shifts every point by an obfuscating function of its position — in Beijing about 600 m east and
150 m north of WGS-84. gridbot keeps WGS-84 only, so a shared Telegram location meets the grid
polygons in the same datum; a registry given in GCJ-02 is converted on import
(core.registry.coordinates).

WGS-84 → GCJ-02 is the published formula (Krasovsky ellipsoid, the two trigonometric series),
as in the eviltransform library (googollee/eviltransform); it leaves points outside China as
they are. GCJ-02 → WGS-84 has no closed form: it is found by iteration, starting from the point
shifted back once and correcting by how far its forward transform misses, until the miss is
below about a millimetre.
"""

from __future__ import annotations

import math

# The ellipsoid GCJ-02 is defined on (Krasovsky 1940) and its first eccentricity squared.
KRASOVSKY_A = 6378245.0
KRASOVSKY_EE = 0.00669342162296594323
# The bounding box in which GCJ-02 shifts points (eviltransform's outOfChina).
CHINA_LON = (72.004, 137.8347)
CHINA_LAT = (0.8293, 55.8271)
INVERSE_TOLERANCE = 1e-9  # degrees, about 0.1 mm
INVERSE_STEPS = 30

WGS84 = "wgs84"
GCJ02 = "gcj02"
# Every name a registry may state its datum by, upper-cased and with "-" and "_" removed.
NAMES = {"WGS84": WGS84, "EPSG4326": WGS84, "CRS84": WGS84, "URN:OGC:DEF:CRS:OGC:1.3:CRS84": WGS84,
         "URN:OGC:DEF:CRS:EPSG::4326": WGS84, "GCJ02": GCJ02}


def crs_named(name: object) -> str | None:
    """wgs84 or gcj02 for a name a registry may use ("wgs84", "WGS-84", "GCJ-02", "EPSG:4326", the
    GeoJSON CRS84 URN); None for anything else."""
    if not isinstance(name, str):
        return None
    key = name.strip().upper().replace("-", "").replace("_", "")
    return NAMES.get(key) or NAMES.get(key.replace("EPSG:", "EPSG"))


def outside_china(lon: float, lat: float) -> bool:
    return not (CHINA_LON[0] <= lon <= CHINA_LON[1] and CHINA_LAT[0] <= lat <= CHINA_LAT[1])


def _shift(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02's offset (degrees of longitude, latitude) at a WGS-84 point."""
    x, y = lon - 105.0, lat - 35.0
    common = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    d_lat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
             + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
             + (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    d_lon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
             + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
             + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - KRASOVSKY_EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = d_lat * 180.0 / ((KRASOVSKY_A * (1 - KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = d_lon * 180.0 / (KRASOVSKY_A / sqrt_magic * math.cos(rad) * math.pi)
    return d_lon, d_lat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 (lon, lat) of a WGS-84 point; a point outside China is returned as it is."""
    if outside_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _shift(lon, lat)
    return lon + d_lon, lat + d_lat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """The WGS-84 (lon, lat) whose GCJ-02 is the given point (by iteration; exact to ~0.1 mm)."""
    if outside_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _shift(lon, lat)
    guess_lon, guess_lat = lon - d_lon, lat - d_lat
    for _ in range(INVERSE_STEPS):
        there_lon, there_lat = wgs84_to_gcj02(guess_lon, guess_lat)
        miss_lon, miss_lat = there_lon - lon, there_lat - lat
        if abs(miss_lon) < INVERSE_TOLERANCE and abs(miss_lat) < INVERSE_TOLERANCE:
            break
        guess_lon, guess_lat = guess_lon - miss_lon, guess_lat - miss_lat
    return guess_lon, guess_lat


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lon, lat) points (haversine, mean radius)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371008.8 * math.asin(math.sqrt(h))
