"""The data of every mobilisation button, built and read in one place: ["mb", what, *values].

Stored by core.messaging.buttons under a token (the 64-byte limit does not apply here). The
call-out's buttons are built here because core queues the call; the chat flows' buttons too, so
one module says what each press means.
"""

from __future__ import annotations

from typing import Any

TAG = "mb"
# a called person's
ANSWER, ETA, CHECK_IN, CHECK_OUT, TAKE, DONE = "ans", "eta", "in", "out", "take", "done"
# a commander's and a leader's
KIND, AREA, GRID, NEXT, GO, CANCEL = "kind", "area", "grid", "next", "go", "cancel"
ROLL, ROSTER, TASK, TASK_GRID, TASK_KIND, CLOSE, CLOSE_YES = "roll", "roster", "task", "tgrid", "tkind", "close", "closeyes"
ETA_CHOICES = (15, 30, 60)  # minutes offered after 稍后到


def data(what: str, *values: Any) -> list[Any]:
    return [TAG, what, *values]


def button(text: str, what: str, *values: Any) -> dict[str, Any]:
    return {"text": text, "callback_data": data(what, *values)}


def parse(value: Any) -> tuple[str, list[Any]] | None:
    """(what, values) of a mobilisation press, or None when the data is not one."""
    if isinstance(value, list) and len(value) >= 2 and value[0] == TAG and isinstance(value[1], str):
        return value[1], list(value[2:])
    return None
