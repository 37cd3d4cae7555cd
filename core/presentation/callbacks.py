"""Callback data of every button, built and parsed here and nowhere else.

A button's data is a short string (well under Telegram's 64 bytes), stored behind a token
in the buttons table (core.messaging.buttons):
- "t:<action>:<ticket id>" a handler's button on a ticket card (and 指派, 发回 under /tickets);
- ["ta", <ticket id>, <person id>] the member picked for 指派 (JSON data, bot/ticket_buttons.py);
- ["tt", <ticket id>, <grid id>] the grid picked for 改派 (likewise);
- "r:<ticket id>:<score>" the resident's 满意/基本满意/不满意 in the return visit (回访), and
  "r:<ticket id>:<y|n>" their 已解决/未解决 (a button of the old single question, "r:12:1", is a score);
- "ev:<y|n|c|m>:<occurrence or event id>" attend, leave, check in, mute reminders;
- "sh:<s|x|w|t>:<shift or signup id>" sign up, cancel, ask for a swap, take a swap;
- "bc:r:<broadcast id>" the 已读 button under a notice.
"""

from __future__ import annotations

import re
from typing import NamedTuple

TICKET_ACTIONS = ("claim", "resolve", "escalate", "reject", "contact", "urge", "assign", "return", "transfer",
                  "take", "merge")
SCORES = (3, 2, 1)  # 满意, 基本满意, 不满意
READ_PREFIX = "bc:r:"


class TicketPress(NamedTuple):
    action: str  # one of TICKET_ACTIONS, "rate" (score 3, 2, 1) or "solved" (score 1 yes, 0 no)
    ticket_id: int
    score: int | None


class DutyPress(NamedTuple):
    scope: str  # "ev" or "sh"
    action: str  # y n c m / s x w t
    id: int


def ticket_action(action: str, ticket_id: int) -> str:
    if action not in TICKET_ACTIONS:
        raise ValueError(f"unknown ticket action {action!r}")
    return f"t:{action}:{ticket_id}"


def rating(ticket_id: int, score: int) -> str:
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}")
    return f"r:{ticket_id}:{score}"


def solved(ticket_id: int, yes: bool) -> str:
    return f"r:{ticket_id}:{'y' if yes else 'n'}"


def parse_ticket(data: str) -> TicketPress | None:
    """("claim", 12, None) for "t:claim:12"; ("rate", 12, 3) for "r:12:3"; ("solved", 12, 0) for
    "r:12:n"; None for anything else."""
    match = re.fullmatch(rf"t:({'|'.join(TICKET_ACTIONS)}):(\d{{1,18}})|r:(\d{{1,18}}):([123yn])", data or "")
    if match is None:
        return None
    if match.group(1):
        return TicketPress(match.group(1), int(match.group(2)), None)
    if match.group(4) in ("y", "n"):
        return TicketPress("solved", int(match.group(3)), int(match.group(4) == "y"))
    return TicketPress("rate", int(match.group(3)), int(match.group(4)))


def event_answer(action: str, ident: int) -> str:
    if action not in "ynmc" or len(action) != 1:
        raise ValueError(f"unknown event action {action!r}")
    return f"ev:{action}:{ident}"


def shift_action(action: str, ident: int) -> str:
    if action not in "sxwt" or len(action) != 1:
        raise ValueError(f"unknown shift action {action!r}")
    return f"sh:{action}:{ident}"


def parse_duty(data: str) -> DutyPress | None:
    """The duty button behind `data`, or None when it is not one of ours."""
    match = re.fullmatch(r"(ev):([ynmc]):(\d{1,18})|(sh):([sxwt]):(\d{1,18})", data or "")
    if match is None:
        return None
    scope, action, ident = (match.group(1, 2, 3) if match.group(1) else match.group(4, 5, 6))
    return DutyPress(scope, action, int(ident))


def read_receipt(broadcast_id: int) -> str:
    return f"{READ_PREFIX}{broadcast_id}"


def parse_read(data: str) -> int | None:
    if isinstance(data, str) and data.startswith(READ_PREFIX) and data[len(READ_PREFIX):].isdigit():
        return int(data[len(READ_PREFIX):])
    return None
