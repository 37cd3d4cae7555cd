"""The data of 议事 buttons, built and read in one place: ["ys", what, id, value?].

Stored by core.messaging.buttons under a token, so the 64-byte limit does not apply here.
"""

from __future__ import annotations

from typing import Any

TAG = "ys"
# what a press does
VOTE, COMMENT, RESULTS = "vote", "comment", "results"  # a resident's, on a consultation
HIDE, COMMENTS, MINUTES, TICKET = "hide", "comments", "minutes", "ticket"  # the secretary's
NEW, SCOPE, NO_OPTIONS, DEADLINE, LIVE, CONFIRM, CANCEL = "new", "scope", "nooptions", "deadline", "live", "go", "cancel"
SUPPORT, ANSWER = "support", "answer"  # 居民提议
CHECK = "check"  # /queren: confirm one binding


def data(what: str, *values: Any) -> list[Any]:
    return [TAG, what, *values]


def button(text: str, what: str, *values: Any) -> dict[str, Any]:
    return {"text": text, "callback_data": data(what, *values)}


def parse(value: Any) -> tuple[str, list[Any]] | None:
    """(what, values) of a 议事 press, or None when the data is not one."""
    if isinstance(value, list) and len(value) >= 2 and value[0] == TAG and isinstance(value[1], str):
        return value[1], list(value[2:])
    return None
