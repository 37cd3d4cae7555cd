"""Normalise Chinese text the way residents type it.

Traditional characters become simplified (OpenCC), full-width digits and
letters become ASCII (NFKC), and Chinese numerals in front of a place word
(三号楼, 十二栋, 二单元) become Arabic digits, so that routing compares like
with like.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_PLACE_WORDS = "号楼|号院|栋|幢|座|单元|号|层|楼|室|期|区"
_CN_NUMBER = re.compile(rf"([零〇一二两三四五六七八九十百千]+)(?=({_PLACE_WORDS}))")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def chinese_to_int(text: str) -> int | None:
    """三 → 3, 十二 → 12, 二十 → 20, 一百零五 → 105, 一二 → 12 (digit by digit)."""
    if not text:
        return None
    if all(ch in _DIGITS for ch in text):
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        elif ch in _UNITS:
            total += (current or 1) * _UNITS[ch]
            current = 0
        else:
            return None
    return total + current


def _replace_numeral(match: re.Match[str]) -> str:
    value = chinese_to_int(match.group(1))
    return match.group(1) if value is None else str(value)


def to_simplified(text: str) -> str:
    return str(_t2s().convert(text))


def normalise(text: str) -> str:
    """Simplified, half-width, Arabic-numbered, whitespace-collapsed text."""
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text)
    text = _CN_NUMBER.sub(_replace_numeral, text)
    return re.sub(r"\s+", " ", text).strip()
