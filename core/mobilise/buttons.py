"""The data of every mobilisation button, built and read in one place: ["mb", what, *values].

Stored by core.messaging.buttons under a token (the 64-byte limit does not apply here). The
call-out's buttons are built here because core queues the call; the chat flows' buttons too, so
one module says what each press means.
"""

from __future__ import annotations

from core.messaging.tagged import Tagged

TAG = "mb"
# a called person's
ANSWER, ETA, CHECK_IN, CHECK_OUT, TAKE, DONE = "ans", "eta", "in", "out", "take", "done"
# a commander's and a leader's
KIND, AREA, GRID, NEXT, GO, CANCEL = "kind", "area", "grid", "next", "go", "cancel"
ROLL, ROSTER, TASK, TASK_GRID, TASK_KIND, CLOSE, CLOSE_YES = "roll", "roster", "task", "tgrid", "tkind", "close", "closeyes"
ETA_CHOICES = (15, 30, 60)  # minutes offered after 稍后到


_TAGGED = Tagged(TAG)
data, button, parse = _TAGGED.data, _TAGGED.button, _TAGGED.parse
