"""Split text into Telegram-sized messages (4,096 characters) at natural breaks.

Telegram counts UTF-16 code units, not characters: an emoji or a rarer CJK character outside
the Basic Multilingual Plane counts twice, so a piece is measured with `utf16_len`.
"""

from __future__ import annotations

TELEGRAM_LIMIT = 4096


def utf16_len(text: str) -> int:
    """The length Telegram measures: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _fitting(text: str, limit: int) -> str:
    """The longest start of `text` whose UTF-16 length is at most `limit`."""
    window = text[:limit]
    while (excess := utf16_len(window) - limit) > 0:
        window = window[:len(window) - max(1, excess // 2)]
    return window


def split_message(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or sentence end when possible."""
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        window = _fitting(rest, limit)
        limit_here = len(window)
        cut = -1
        for sep in ("\n\n", "\n", "。", "！", "？", "；", "，", " "):
            at = window.rfind(sep)
            if at >= limit_here // 2:
                cut = at + len(sep)
                break
        if cut <= 0:
            cut = limit_here
        pieces.append(rest[:cut].rstrip("\n"))
        rest = rest[cut:].lstrip("\n")
    if rest or not pieces:
        pieces.append(rest)
    return pieces
