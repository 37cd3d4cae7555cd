"""The action-response validation patch keeps Rasa's behaviour, only faster."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

import nlu  # noqa: F401 - importing the package applies the patch
from nlu import rasa_patches


def test_patch_is_applied() -> None:
    assert RemoteAction._validate_action_result is rasa_patches._validate_action_result


def test_valid_response_passes_and_invalid_fails_like_rasa() -> None:
    ok = {"events": [{"event": "slot", "name": "category", "value": "noise"}],
          "responses": [{"text": "好的"}]}
    remote = RemoteAction("action_x", None)
    bad = {"events": [{"no_event_key": 1}]}
    assert remote._validate_action_result(ok) is True
    assert rasa_patches._ORIGINAL(remote, ok) is True
    with pytest.raises(ValidationError, match="Failed to validate Action server response") as patched:
        remote._validate_action_result(bad)
    with pytest.raises(ValidationError) as original:
        rasa_patches._ORIGINAL(remote, bad)
    assert patched.value.message == original.value.message


SAMPLES = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "place", "value": None, "timestamp": None}]},
    {"events": [{"event": "active_loop", "name": "report_form"},
                {"event": "slot", "name": "requested_slot", "value": "place"},
                {"event": "followup", "name": "action_listen"}],
     "responses": [{"text": "在哪里？", "buttons": [{"title": "7号楼", "payload": "/inform"}]}]},
    {"events": [{"event": "bot", "text": "hi"}, {"event": "reset_slots"}, {"event": "restart"}]},
    {"events": [{"event": "user", "text": "x", "parse_data": {"intent": {"name": "greet", "confidence": 1}}}]},
    {"events": [{"event": "entities", "entities": [{"entity": "building", "value": "7"}]}]},
    # invalid ones: every one must fail in both
    {"events": [{"event": "slot", "name": "place"}]},                 # no value
    {"events": [{"event": "slot", "name": 3, "value": 1}]},           # name not a string
    {"events": [{"event": "no_such_event"}]},                         # unknown event
    {"events": [{"event": 7}]},
    {"events": ["slot"]},
    {"events": {"event": "slot"}},
    {"events": [{"event": "entities", "entities": [{"entity": "building"}]}]},
    {"events": [{"event": "bot", "timestamp": "yesterday"}]},
    {"responses": ["text"]},
    {"events": [{"event": "user", "parse_data": {"intent": {"name": 5}}}]},
]


@pytest.mark.parametrize("result", SAMPLES)
def test_the_per_event_check_gives_rasa_s_verdict(result: dict) -> None:  # type: ignore[type-arg]
    remote = RemoteAction("action_x", None)
    try:
        expected = rasa_patches._ORIGINAL(remote, result)
    except ValidationError as exc:
        expected = exc.message
    try:
        got = remote._validate_action_result(result)
    except ValidationError as exc:
        got = exc.message
    if expected is True:
        assert got is True and rasa_patches._quick_check(result)
    else:
        assert got == expected and not rasa_patches._quick_check(result)
