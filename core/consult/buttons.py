"""The data of 议事 buttons, built and read in one place: ["ys", what, id, value?].

Stored by core.messaging.buttons under a token, so the 64-byte limit does not apply here.
"""

from __future__ import annotations

from core.messaging.tagged import Tagged

TAG = "ys"
# what a press does
VOTE, COMMENT, RESULTS = "vote", "comment", "results"  # a resident's, on a consultation
HIDE, COMMENTS, MINUTES, TICKET = "hide", "comments", "minutes", "ticket"  # the secretary's
NEW, SCOPE, NO_OPTIONS, DEADLINE, LIVE, CONFIRM, CANCEL = "new", "scope", "nooptions", "deadline", "live", "go", "cancel"
SUPPORT, ANSWER = "support", "answer"  # 居民提议
CHECK = "check"  # /queren: confirm one binding


_TAGGED = Tagged(TAG)
data, button, parse = _TAGGED.data, _TAGGED.button, _TAGGED.parse
