"""What an Open311 GET may publish: descriptions with personal data masked, and places no
finer than the registry.

`mask` replaces e-mail addresses, ID numbers (居民身份证, 18 or 15 digits), phone numbers
(mobiles, landlines with or without area code, 400/800 numbers, seven or more digits written
as Chinese numerals) and licence plates (京A12345, 京AD12345, 粤B·1234学) with a placeholder
from the message catalogue. Full-width digits and letters are read as ASCII first, so
１３９… is caught too. Names inside a description cannot be found reliably and are not
masked; reporters' names and contacts are never published at all.

`public_place` is the point and address a request is published with: the building's
registry point and address, else the landmark's, else the grid's (a point inside its
polygon, and its name); never the point or words the reporter gave, which may be a door.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from shapely.geometry import shape

from core.messages import t

_WIDE = {**{0xFF10 + i: 0x30 + i for i in range(10)},
         **{0xFF21 + i: 0x41 + i for i in range(26)}, **{0xFF41 + i: 0x61 + i for i in range(26)},
         0xFF0D: 0x2D, 0x3000: 0x20, 0xFF0B: 0x2B}

_EMAIL = re.compile(r"(?a:[\w.+-]+@[\w-]+(?:\.[\w-]+)+)")
_ID = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
_PHONE = re.compile(
    r"(?<![\d])(?:"
    r"(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}"  # mobile, 139 1234 5678
    r"|0\d{2,3}[\s-]?\d{7,8}(?:-\d{1,5})?"  # landline with area code (and extension)
    r"|[48]00[\s-]?\d{3}[\s-]?\d{4}"  # 400 / 800 service numbers
    r"|\d{7,8}"  # a local number written whole
    r"|\d{3,4}[\s-]\d{4}"  # … or in two groups: 6512 3456
    r")(?![\d])")
_CN_DIGITS = re.compile(r"[零〇一二三四五六七八九幺]{7,}")
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"
_PLATE = re.compile(rf"[{_PROVINCES}]\s?[A-Za-z]\s?[·•.\-]?\s?[A-Za-z0-9]{{4,6}}[挂学警港澳]?(?![A-Za-z0-9])")


_PERSONAL = re.compile("|".join(f"(?P<{name}>{pattern.pattern})" for name, pattern in (
    ("email", _EMAIL), ("id", _ID), ("plate", _PLATE), ("phone", _PHONE), ("cn_phone", _CN_DIGITS))))
_PLACEHOLDER = {"email": "open311.masked.email", "id": "open311.masked.id", "plate": "open311.masked.plate",
                "phone": "open311.masked.phone", "cn_phone": "open311.masked.phone"}


def _placeholder(match: re.Match[str]) -> str:
    return t(_PLACEHOLDER[match.lastgroup or "phone"])


def mask(text: str) -> str:
    """One pass: where two kinds could start at the same place, the earlier in the list wins
    (an e-mail before the phone number in it, an ID number before a phone)."""
    return _PERSONAL.sub(_placeholder, text.translate(_WIDE))


@dataclass(frozen=True)
class Place:
    lat: float | None
    lon: float | None
    address: str | None
    address_id: str | None  # the building's registry code


def _rounded(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


@lru_cache(maxsize=1024)
def _grid_point(polygon: tuple) -> tuple[float, float] | None:
    geometry = shape({"type": polygon[0], "coordinates": polygon[1]})
    if geometry.is_empty:
        return None
    point = geometry.representative_point()  # inside the polygon, unlike a centroid
    return round(point.y, 6), round(point.x, 6)


def _freeze(value: object) -> object:
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def grid_point(polygon: dict | None) -> tuple[float, float] | None:
    """(lat, lon) of a point inside the grid's GeoJSON polygon; None without one."""
    if not polygon or "coordinates" not in polygon:
        return None
    frozen = (polygon.get("type"), _freeze(polygon["coordinates"]))
    return _grid_point(frozen)


def public_place(*, building: tuple[str, str, float | None, float | None] | None,
                 landmark: tuple[str, float | None, float | None] | None,
                 grid: tuple[str, tuple[float, float] | None] | None) -> Place:
    """building = (code, address, lat, lon), landmark = (name, lat, lon), grid = (name, its
    `grid_point`)."""
    grid_lat, grid_lon = grid[1] if grid is not None and grid[1] is not None else (None, None)
    if building is not None:
        code, address, lat, lon = building
        if lat is None or lon is None:
            lat, lon = grid_lat, grid_lon
        return Place(_rounded(lat), _rounded(lon), address, code)
    if landmark is not None:
        name, lat, lon = landmark
        if lat is None or lon is None:
            lat, lon = grid_lat, grid_lon
        return Place(_rounded(lat), _rounded(lon), name, None)
    if grid is not None:
        return Place(grid_lat, grid_lon, grid[0], None)
    return Place(None, None, None, None)
