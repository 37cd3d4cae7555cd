"""Rasa component: extract places and times from Chinese complaint text.

Rules, not learning: residents name places in a handful of fixed shapes
(3号楼, 5栋2单元, 302室, 东门, 地下车库) and times likewise (早上7点, 半夜,
昨天). A rule extractor is exact where it fires, needs no annotated
training data and keeps DIET's job to intent classification. Runs after the
normaliser, so numbers are already Arabic and characters simplified.

Entities: building, unit, room, gate, landmark, time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

LANDMARKS_FILE = Path(__file__).parent / "dictionaries" / "landmarks.txt"

_CN_NUM = "零〇一二两三四五六七八九十百"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("building", re.compile(r"\d{1,3}\s*(?:号楼|号院|栋|幢|座|#楼?)")),
    ("unit", re.compile(r"\d{1,2}\s*单元")),
    ("room", re.compile(r"(?<=单元)\s*\d{3,4}(?:室|号)?|\d{3,4}\s*室")),
    ("gate", re.compile(r"(?:东|西|南|北|正|侧|后|前)\s*(?:大)?门(?:口)?|大门(?:口)?")),
    ("time", re.compile(
        rf"(?:今天|昨天|前天|明天|每天|天天|最近|这几天|周末|周[一二三四五六日天]|星期[一二三四五六日天])?"
        rf"(?:早上|上午|中午|下午|晚上|夜里|半夜|凌晨|清早|傍晚)?"
        rf"(?:[\d{_CN_NUM}]{{1,3}}\s*(?:点|:|：)\s*(?:[\d{_CN_NUM}]{{1,2}}\s*分?|半|钟)?)"
        rf"|今天|昨天|前天|昨晚|昨夜|今早|今晚|半夜|凌晨|深夜|每天晚上|每天早上|周末"
    )),
]


def _load_landmarks(path: Path) -> re.Pattern[str] | None:
    if not path.exists():
        return None
    words = [w.strip() for w in path.read_text(encoding="utf-8").splitlines()
             if w.strip() and not w.startswith("#")]
    if not words:
        return None
    words.sort(key=len, reverse=True)  # longest first: 地下车库入口 before 地下车库
    return re.compile("|".join(re.escape(w) for w in words))


def extract_places(text: str, landmarks: re.Pattern[str] | None = None) -> list[dict[str, Any]]:
    """Non-overlapping entities, earliest and longest first."""
    found: list[dict[str, Any]] = []
    patterns = list(_PATTERNS)
    if landmarks is not None:
        patterns.append(("landmark", landmarks))
    for entity, pattern in patterns:
        for m in pattern.finditer(text):
            value = m.group(0).strip()
            if not value:
                continue
            start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
            found.append({"entity": entity, "start": start, "end": start + len(value), "value": value})
    found.sort(key=lambda e: (e["start"], -(e["end"] - e["start"])))
    kept: list[dict[str, Any]] = []
    for e in found:
        if all(e["start"] >= k["end"] or e["end"] <= k["start"] for k in kept):
            kept.append(e)
    return kept


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class PlaceEntityExtractor(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"landmarks_file": str(LANDMARKS_FILE)}

    def __init__(self, config: dict[str, Any]) -> None:
        self._landmarks = _load_landmarks(Path(config["landmarks_file"]))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> PlaceEntityExtractor:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            entities = extract_places(text, self._landmarks)
            for e in entities:
                e["extractor"] = self.__class__.__name__
                e["confidence_entity"] = 1.0
            message.set(ENTITIES, message.get(ENTITIES, []) + entities, add_to_output=True)
        return messages
