"""The data of 共享空间 buttons, built and read in one place: ["yy", what, values...].

Stored by core.messaging.buttons under a token (the 64-byte limit does not apply here). Core
builds the buttons of the cards it sends itself (a manager's 批准 / 拒绝, a conflict's free
slots); bot/spaces_chat.py builds the rest with the same names.
"""

from __future__ import annotations

from typing import Any

TAG = "yy"
# the booker's steps: a space, a day, a slot (start and end as epoch seconds), another slot
# after a conflict, 我的预约 and its 取消, 管理预约
SPACE, DAY, SLOT, RETRY, MINE, CANCEL, MANAGE, STOP = "space", "day", "slot", "retry", "mine", "cancel", "manage", "stop"
# the manager's: 批准, 拒绝 (asks the reason), 未到
APPROVE, REFUSE, NO_SHOW = "approve", "refuse", "noshow"


def data(what: str, *values: Any) -> list[Any]:
    return [TAG, what, *values]


def button(text: str, what: str, *values: Any) -> dict[str, Any]:
    return {"text": text, "callback_data": data(what, *values)}


def parse(value: Any) -> tuple[str, list[Any]] | None:
    """(what, values) of a 共享空间 press, or None when the data is not one."""
    if isinstance(value, list) and len(value) >= 2 and value[0] == TAG and isinstance(value[1], str):
        return value[1], list(value[2:])
    return None
