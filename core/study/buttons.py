"""The data of /xuexi's buttons (the library, adding materials, 已学（补学）), built and read in
one place: ["xx", what, value?].

Stored by core.messaging.buttons under a token, so the 64-byte limit does not apply here.
"""

from __future__ import annotations

from typing import Any

TAG = "xx"
# what a press does
HOME, TOPIC, FIND, OPEN, SEARCH = "home", "topic", "find", "open", "search"  # reading the library
ADD, FOR, PUT = "add", "for", "put"  # adding a material: pick a session, send it, its topic
DONE = "done"  # 已学（补学） under a session's materials


def data(what: str, *values: Any) -> list[Any]:
    return [TAG, what, *values]


def button(text: str, what: str, *values: Any) -> dict[str, Any]:
    return {"text": text, "callback_data": data(what, *values)}


def parse(value: Any) -> tuple[str, Any] | None:
    """(what, value or None) of a /xuexi press, or None when the data is not one."""
    if isinstance(value, list) and 2 <= len(value) <= 3 and value[0] == TAG and isinstance(value[1], str):
        return value[1], value[2] if len(value) > 2 else None
    return None
