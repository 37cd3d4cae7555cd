"""The catalogue of Chinese texts the bot sends (data/messages/zh.yml)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from core.config import PROJECT_ROOT

CATALOGUE = PROJECT_ROOT / "data" / "messages" / "zh.yml"


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected a mapping of message keys to texts")
    return data


def t(key: str, path: Path = CATALOGUE, **values: Any) -> str:
    """The text for `key`, with {placeholders} filled in; a missing key is a programming error."""
    texts = _load(path)
    if key not in texts:
        raise KeyError(f"message {key!r} is not in {path}")
    return texts[key].format(**values) if values else texts[key]
