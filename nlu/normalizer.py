"""Rasa component: normalise Chinese text before tokenising.

Residents type traditional characters, full-width digits and Chinese
numerals; the model is trained on simplified text only. This component
rewrites the message text (OpenCC t2s, NFKC, 三号楼 → 3号楼; core.text) in
training and at prediction, and keeps the original under `original_text`.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from core.text import chinese_to_int, normalise

__all__ = ["ORIGINAL_TEXT", "ChineseNormalizer", "chinese_to_int", "normalise_text"]

ORIGINAL_TEXT = "original_text"

# One normaliser for the whole project: routing (core) and the model (here)
# must see the same text. core.text depends on OpenCC only, not on the app env.
normalise_text = normalise

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
