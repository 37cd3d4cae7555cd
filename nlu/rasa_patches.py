"""A speed fix for Rasa 3.6's action server round trip, applied when Rasa loads our components.

Rasa validates every custom action's response with `jsonschema.validate`, which
first re-checks the response *schema* against the JSON Schema meta-schema — on
every call. Profiling `make bench-chat` showed that re-check taking over 60 % of
the Rasa server's time for a form turn. The patch validates with the same schema
and the same error message, but checks the schema once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonschema import ValidationError, validators
from jsonschema.exceptions import best_match
from rasa.core.actions import action as rasa_action

_ORIGINAL = rasa_action.RemoteAction._validate_action_result


@lru_cache(maxsize=1)
def _validator() -> Any:
    schema = rasa_action.RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # once, not per response
    return cls(schema)


def _validate_action_result(self: rasa_action.RemoteAction, result: dict[str, Any]) -> bool:
    error = best_match(_validator().iter_errors(result))
    if error is not None:
        error.message += (
            ". Failed to validate Action server response from API, make sure your response from "
            f"the Action endpoint is valid. For more information about the format visit "
            f"{rasa_action.DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


def apply() -> None:
    rasa_action.RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]


__all__ = ["ValidationError", "apply"]
