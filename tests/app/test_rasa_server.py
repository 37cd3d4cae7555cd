"""Messages end to end through the real Rasa server (and its action server)."""

from __future__ import annotations

import httpx
import pytest

from core.messages import t
from tests.app.stack import Stack, api_headers, channel_headers


@pytest.fixture
def stack(rasa_stack: Stack) -> Stack:
    return rasa_stack


def say(stack: Stack, sender: str, text: str) -> list[str]:
    reply = httpx.post(stack.channel_url, json={"sender": sender, "message": text},
                       headers=channel_headers(), timeout=30)
    assert reply.status_code == 200, reply.text
    return [m.get("text", "") for m in reply.json()]


def parse(stack: Stack, text: str) -> dict:  # type: ignore[type-arg]
    reply = httpx.post(f"{stack.rasa_url}/model/parse", json={"text": text}, headers=api_headers(),
                       timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_emergency_first_answer_is_the_number_to_call(stack: Stack) -> None:
    texts = say(stack, "e2e-emergency", "快来人啊！6号楼2单元楼道里电动车烧起来了")
    assert texts, "no answer"
    assert "119" in texts[0]
    assert parse(stack, "快来人啊！6号楼2单元楼道里电动车烧起来了")["intent"]["name"] == "emergency"


def test_past_elevator_trapping_is_an_elevator_complaint(stack: Stack) -> None:
    result = parse(stack, "电梯里有人被困了二十分钟才出来")
    assert result["intent"]["name"] == "complaint_elevator"
    texts = say(stack, "e2e-past", "电梯里有人被困了二十分钟才出来")
    assert not any("119" in t for t in texts)


def test_traditional_characters(stack: Stack) -> None:
    result = parse(stack, "電梯又壞了，我媽八十歲了爬不動樓")
    assert result["intent"]["name"] == "complaint_elevator"
    assert result["text"] == "电梯又坏了,我妈八十岁了爬不动楼"
    # Not bound to a building and none named: the report form asks where.
    assert say(stack, "e2e-trad", "電梯又壞了，我媽八十歲了爬不動樓") == [t("report.ask_place")]


def test_out_of_scope_gets_a_referral(stack: Stack) -> None:
    texts = say(stack, "e2e-oos", "我想问问养老金什么时候涨")
    assert any("12345" in t for t in texts), texts


def test_places_are_extracted(stack: Stack) -> None:
    result = parse(stack, "12号楼1单元门口被电动车堵死了")
    entities = {e["entity"]: e["value"] for e in result["entities"]}
    assert entities.get("building") == "12号楼"
    assert entities.get("unit") == "1单元"
