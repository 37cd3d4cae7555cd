"""The data of 共享空间 buttons, built and read in one place: ["yy", what, values...].

Stored by core.messaging.buttons under a token (the 64-byte limit does not apply here). Core
builds the buttons of the cards it sends itself (a manager's 批准 / 拒绝, a conflict's free
slots); bot/spaces_chat.py builds the rest with the same names.
"""

from __future__ import annotations

from core.messaging.tagged import Tagged

TAG = "yy"
# the booker's steps: a space, a day, a slot (start and end as epoch seconds), another slot
# after a conflict, 我的预约 and its 取消, 管理预约
SPACE, DAY, SLOT, RETRY, MINE, CANCEL, MANAGE, STOP = "space", "day", "slot", "retry", "mine", "cancel", "manage", "stop"
# the manager's: 批准, 拒绝 (asks the reason), 未到
APPROVE, REFUSE, NO_SHOW = "approve", "refuse", "noshow"


_TAGGED = Tagged(TAG)
data, button, parse = _TAGGED.data, _TAGGED.button, _TAGGED.parse
