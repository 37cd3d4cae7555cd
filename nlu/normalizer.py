"""Rasa component: normalise Chinese text before tokenising.

Residents type traditional characters, full-width digits and Chinese
numerals; the model is trained on simplified text only. This component
rewrites the message text (OpenCC t2s, NFKC, 三号楼 → 3号楼) in training and
at prediction, and keeps the original under `original_text`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

import opencc
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

ORIGINAL_TEXT = "original_text"

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_PLACE_WORDS = "号楼|号院|栋|幢|座|单元|号|层|室|期|区"
_CN_NUMBER = re.compile(rf"([零〇一二两三四五六七八九十百千]+)(?=({_PLACE_WORDS}))")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def chinese_to_int(text: str) -> int | None:
    """三 → 3, 十二 → 12, 二十 → 20, 一百零五 → 105."""
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


def normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = str(_t2s().convert(text))

    def numeral(match: re.Match[str]) -> str:
        value = chinese_to_int(match.group(1))
        return match.group(1) if value is None else str(value)

    text = _CN_NUMBER.sub(numeral, text)
    return re.sub(r"\s+", " ", text).strip()


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class ChineseNormalizer(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseNormalizer:
        return cls()

    @staticmethod
    def required_packages() -> list[str]:
        return ["opencc"]

    def _normalise(self, message: Message) -> None:
        text = message.get(TEXT)
        if not text:
            return
        normalised = normalise_text(text)
        if normalised != text:
            message.set(ORIGINAL_TEXT, text)
            message.set(TEXT, normalised)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            self._normalise(example)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            self._normalise(message)
        return messages
