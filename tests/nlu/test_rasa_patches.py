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
