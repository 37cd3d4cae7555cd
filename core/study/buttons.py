"""The data of /xuexi's buttons (the library, adding materials, 已学（补学）), built and read in
one place: ["xx", what, value?].

Stored by core.messaging.buttons under a token, so the 64-byte limit does not apply here.
"""

from __future__ import annotations

from typing import Any

from core.messaging.tagged import Tagged

TAG = "xx"
# what a press does
HOME, TOPIC, FIND, OPEN, SEARCH = "home", "topic", "find", "open", "search"  # reading the library
ADD, FOR, PUT = "add", "for", "put"  # adding a material: pick a session, send it, its topic
DONE = "done"  # 已学（补学） under a session's materials


_TAGGED = Tagged(TAG)
data, button = _TAGGED.data, _TAGGED.button


def parse(value: Any) -> tuple[str, Any] | None:
    """(what, value or None) of a /xuexi press, or None when the data is not one."""
    pressed = _TAGGED.parse(value)
    if pressed is None or len(pressed[1]) > 1:
        return None
    return pressed[0], pressed[1][0] if pressed[1] else None
