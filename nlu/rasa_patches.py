"""Fixes to Rasa 3.6's action server round trip, applied when Rasa loads our components.

A failed custom action is reported in the answer (see `_run_remote`) instead of vanishing, and
its turn is rewound so that the bot's retry meets the dialogue as it was.

Speed: Rasa validates every custom action's response with `jsonschema.validate`, which
first re-checks the response *schema* against the JSON Schema meta-schema — on
every call. Profiling `make bench-chat` showed that re-check taking over 60 % of
the Rasa server's time for a form turn. The patch validates with the same schema
and the same error message, but checks the schema once.

Even so, validating each event against Rasa's `oneOf` of 23 event schemas stayed
over a quarter of the Rasa server's time under `make bench-chat`. Every branch of
that `oneOf` pins `event` to its own constant, so at most one branch can match an
event: each event is checked against the branch its `event` names (the same
verdict, a twentieth of the work). Anything unusual — an event that is not an
object, has no string `event`, or names no known branch — and any failure are
validated against the full schema, so errors read exactly as Rasa's own.
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache
from typing import Any

from jsonschema import ValidationError, validators
from jsonschema.exceptions import best_match
from rasa.core.actions import action as rasa_action
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import FollowupAction, UserUtteranceReverted

from core.protocol import ACTION_FAILED

log = logging.getLogger(__name__)
_ORIGINAL = rasa_action.RemoteAction._validate_action_result
_ORIGINAL_RUN = rasa_action.RemoteAction.run


@lru_cache(maxsize=1)
def _validator() -> Any:
    schema = rasa_action.RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # once, not per response
    return cls(schema)


@lru_cache(maxsize=1)
def _fast_validators() -> tuple[Any, dict[str, Any]]:
    """(validator of the response without its events' oneOf, {event name: validator of one event})."""
    schema = rasa_action.RemoteAction.action_response_format_spec()
    events = schema["properties"]["events"]
    event_schema = events["items"]
    common = {k: v for k, v in event_schema.items() if k != "oneOf"}
    outer = {**schema, "properties": {**schema["properties"], "events": {**events, "items": common}}}
    cls = validators.validator_for(schema)
    per_event = {}
    for branch in event_schema["oneOf"]:
        name = branch["properties"]["event"]["const"]
        one = {**common, "allOf": [branch]}
        cls.check_schema(one)
        per_event[name] = cls(one)
    cls.check_schema(outer)
    return cls(outer), per_event


def _quick_check(result: Any) -> bool:
    """True when `result` is certainly valid; False means: ask the full schema."""
    outer, per_event = _fast_validators()
    if not outer.is_valid(result):
        return False
    for event in result.get("events") or [] if isinstance(result, dict) else []:
        name = event.get("event") if isinstance(event, dict) else None
        check = per_event.get(name) if isinstance(name, str) else None
        if check is None or not check.is_valid(event):
            return False
    return True


def _validate_action_result(self: rasa_action.RemoteAction, result: dict[str, Any]) -> bool:
    if _quick_check(result):
        return True
    error = best_match(_validator().iter_errors(result))
    if error is None:
        return True
    error.message += (
        ". Failed to validate Action server response from API, make sure your response from "
        f"the Action endpoint is valid. For more information about the format visit "
        f"{rasa_action.DOCS_BASE_URL}/custom-actions"
    )
    raise error


async def _run_remote(self: rasa_action.RemoteAction, output_channel: Any, nlg: Any, tracker: Any,
                      domain: Any, *args: Any, **kwargs: Any) -> Any:
    """Rasa swallows a failed custom action ("Bot will continue, but the actions events are
    lost") and answers 200: the resident would hear nothing and the bot would mark the message
    done. Say so in the answer ({ACTION_FAILED: name}), so the bot keeps the message pending."""
    try:
        return await _ORIGINAL_RUN(self, output_channel, nlg, tracker, domain, *args, **kwargs)
    except rasa_action.ActionExecutionRejection:
        raise  # a form's validation refusing a slot: part of the dialogue, not a failure
    except Exception:
        log.exception("custom action %s failed; the turn is rewound for the bot's retry", self.name())
        with contextlib.suppress(Exception):
            await output_channel.send_custom_json(tracker.sender_id, {ACTION_FAILED: self.name()})
        # Rewind the whole turn (the user message and what followed it) and listen: the bot sends
        # the message again later, and it must meet the dialogue exactly as it was (a 确认提交
        # whose filing failed must find the summary's rule again, not a conversation moved on).
        return [UserUtteranceReverted(), FollowupAction(ACTION_LISTEN_NAME)]


def apply() -> None:
    rasa_action.RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    rasa_action.RemoteAction.run = _run_remote  # type: ignore[method-assign]


__all__ = ["ValidationError", "apply"]
