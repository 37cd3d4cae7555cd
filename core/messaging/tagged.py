"""Button data of one feature, built and read in one place: [tag, what, *values].

Each chat feature (议事, 战时, 共享空间, the study library) tags its presses with a short string of
its own and names what a press does; core.messaging.buttons keeps the data under a token, so
the 64-byte limit does not apply here.
"""

from __future__ import annotations

from typing import Any


class Tagged:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def data(self, what: str, *values: Any) -> list[Any]:
        return [self.tag, what, *values]

    def button(self, text: str, what: str, *values: Any) -> dict[str, Any]:
        return {"text": text, "callback_data": self.data(what, *values)}

    def parse(self, value: Any) -> tuple[str, list[Any]] | None:
        """(what, values) of a press of this feature, or None when the data is not one."""
        if isinstance(value, list) and len(value) >= 2 and value[0] == self.tag and isinstance(value[1], str):
            return value[1], list(value[2:])
        return None
