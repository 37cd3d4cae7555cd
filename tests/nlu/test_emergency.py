"""The emergency safety net: dangers now are emergencies; past events and hazards are not."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from nlu.emergency import EmergencyGuard, assess


@pytest.mark.parametrize(
    "text",
    [
        "5号楼3单元着火了",
        "楼道里电动车烧起来了",
        "家里好大一股煤气味",
        "有个老人晕倒在小区门口",
        "电梯卡住了里面有人被困",
        "楼下有人拿着刀追人",
        "有人站在楼顶要跳楼",
        "小孩掉进水里了",
        "邻居家冒黑烟了",
        "有人触电了",
    ],
)
def test_dangers_now_are_emergencies(text: str) -> None:
    assert assess(text) == "emergency"


@pytest.mark.parametrize(
    "text",
    [
        "电梯里有人被困了二十分钟才出来",  # BRIEF: a past event is an elevator complaint
        "昨天电梯困人了，物业半小时才来",
        "楼道里堆了很多纸箱，有火灾隐患",
        "飞线充电容易着火，担心出事",
        "上周3号楼着火了，楼道墙还是黑的",
    ],
)
def test_past_events_and_hazards_are_not(text: str) -> None:
    # None: no danger word at all, DIET decides; not_now: a danger, but over or only a risk.
    assert assess(text) in {"not_now", None}
    assert assess(text.replace("有火灾隐患", "容易着火")) in {"not_now", None}


def test_present_words_outweigh_past_ones() -> None:
    assert assess("之前就漏过，现在又是一股煤气味") == "emergency"


@pytest.mark.parametrize("text", ["我的车被堵住出不来了", "轮胎没气了", "她们天天要跳广场舞", "楼上装修吵死了", "我气炸了"])
def test_everyday_complaints_name_no_danger(text: str) -> None:
    assert assess(text) is None


def _message(text: str, ranking: list[tuple[str, float]]) -> Message:
    entries = [{"name": n, "confidence": c} for n, c in ranking]
    return Message({TEXT: text, INTENT: entries[0], INTENT_RANKING_KEY: entries})


def test_guard_promotes_emergency_to_the_top() -> None:
    message = _message("楼下有人晕倒了快来人", [("complaint_safety", 0.6), ("emergency", 0.3), ("greet", 0.1)])
    EmergencyGuard({"confidence": 0.99}).process([message])
    assert message.get(INTENT)["name"] == "emergency"
    names = [r["name"] for r in message.get(INTENT_RANKING_KEY)]
    assert names == ["emergency", "complaint_safety", "greet"]


def test_guard_demotes_a_past_event() -> None:
    message = _message("电梯里有人被困了二十分钟才出来", [("emergency", 0.7), ("complaint_elevator", 0.25)])
    EmergencyGuard({"confidence": 0.99}).process([message])
    assert message.get(INTENT)["name"] == "complaint_elevator"
    assert [r["name"] for r in message.get(INTENT_RANKING_KEY)] == ["complaint_elevator", "emergency"]


def test_guard_leaves_other_messages_alone() -> None:
    message = _message("楼上装修太吵", [("complaint_noise", 0.9), ("complaint_dispute", 0.1)])
    EmergencyGuard({"confidence": 0.99}).process([message])
    assert message.get(INTENT)["name"] == "complaint_noise"


@pytest.mark.parametrize(
    "text",
    ["停车场两个人动手了，一个拿锤子往人身上抡", "有个阿伯昏低咗冇反应", "有人企喺天台话要跳落嚟", "我被反锁在地下室里面了"],
)
def test_improvised_weapons_cantonese_and_locked_in(text: str) -> None:
    from nlu.normalizer import normalise_text

    assert assess(normalise_text(text)) == "emergency"


def test_conditional_risk_is_not_now() -> None:
    assert assess("油烟管道全是油垢，哪天真烧起来咋办") == "not_now"


def test_guard_promotes_a_low_confidence_emergency_but_not_below_the_threshold() -> None:
    guard = EmergencyGuard({"confidence": 0.99, "promote_confidence": 0.1})
    unsure = _message("楼下那个人看着不太对劲", [("complaint_safety", 0.7), ("emergency", 0.15), ("greet", 0.15)])
    guard.process([unsure])
    assert unsure.get(INTENT)["name"] == "emergency"
    calm = _message("楼下那个人看着不太对劲", [("complaint_safety", 0.9), ("emergency", 0.05), ("greet", 0.05)])
    guard.process([calm])
    assert calm.get(INTENT)["name"] == "complaint_safety"
