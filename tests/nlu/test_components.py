"""Unit tests of our Rasa NLU components (run in the rasa environment)."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.normalizer import ORIGINAL_TEXT, ChineseNormalizer, chinese_to_int, normalise_text
from nlu.places import LANDMARKS_FILE, PlaceEntityExtractor, extract_places


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("電梯又壞了，我媽八十歲了", "电梯又坏了,我妈八十岁了"),
        ("三號樓消防通道被堵", "3号楼消防通道被堵"),
        ("５栋２单元３０１室", "5栋2单元301室"),
        ("十二栋二单元", "12栋2单元"),
        ("楼下装修😡😡", "楼下装修😡😡"),
        ("  太吵了   吧 ", "太吵了 吧"),
    ],
)
def test_normalise_text(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected


def test_chinese_numbers() -> None:
    assert [chinese_to_int(x) for x in ("三", "十二", "二十", "一百零五", "x")] == [3, 12, 20, 105, None]


def test_normalizer_rewrites_messages_and_keeps_the_original() -> None:
    component = ChineseNormalizer()
    message = Message({TEXT: "櫻花園五號樓電梯壞了"})
    component.process([message])
    assert message.get(TEXT) == "樱花园5号楼电梯坏了"
    assert message.get(ORIGINAL_TEXT) == "櫻花園五號樓電梯壞了"
    plain = Message({TEXT: "电梯坏了"})
    component.process([plain])
    assert plain.get(TEXT) == "电梯坏了" and plain.get(ORIGINAL_TEXT) is None


def test_normalizer_rewrites_training_data() -> None:
    data = TrainingData([Message({TEXT: "暖氣不熱", "intent": "complaint_heating"})])
    ChineseNormalizer().process_training_data(data)
    assert data.training_examples[0].get(TEXT) == "暖气不热"


def _values(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    extractor = PlaceEntityExtractor({"landmarks_file": str(LANDMARKS_FILE)})
    message = Message({TEXT: text})
    extractor.process([message])
    for e in message.get(ENTITIES):
        assert text[e["start"]:e["end"]] == e["value"]
        assert e["extractor"] == "PlaceEntityExtractor"
        out.setdefault(e["entity"], []).append(e["value"])
    return out


def test_places_building_unit_room() -> None:
    assert _values("12号楼1单元302有人飞线充电") == {"building": ["12号楼"], "unit": ["1单元"], "room": ["302"]}
    assert _values("5栋2单元楼道灯不亮") == {"building": ["5栋"], "unit": ["2单元"], "landmark": ["楼道"]}
    assert _values("3号楼501室楼上漏水")["room"] == ["501室"]


def test_places_gate_landmark_and_time() -> None:
    values = _values("每天晚上10点东门口有人在地下车库入口摆摊")
    assert values["gate"] == ["东门口"]
    assert values["landmark"] == ["地下车库入口"]
    assert values["time"] == ["每天晚上10点"]
    assert _values("早上7点就开始装修")["time"] == ["早上7点"]
    assert _values("凌晨两点半还在施工")["time"] == ["凌晨两点半"]


def test_no_places_in_plain_text() -> None:
    assert _values("太吵了受不了") == {}
    assert extract_places("") == []
