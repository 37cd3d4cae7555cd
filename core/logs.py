"""Keep secrets out of the logs.

`install_redaction(token)` puts a filter on every handler of the root logger that replaces
each secret (and its URL-encoded form) with "***" in every record that reaches it, at any
level and from any library: the formatted message, and the text of an exception or stack
attached to the record. Filters on the handlers, not on a logger, because a logger's own
filters do not see the records its children (telegram.ext.Updater, httpx, ...) propagate.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

MASK = "***"


class Redact(logging.Filter):
    """Replace the secrets in a record; never drops one."""

    def __init__(self, *secrets: str | None) -> None:
        super().__init__()
        found = {v for s in secrets if s for v in (s, quote(s, safe=""), quote(s))}
        self.secrets = tuple(sorted(found, key=len, reverse=True))  # longest first

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: let the handler report it as usual
            message = None
        if message is not None:
            clean = self._clean(message)
            if clean != message:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


def install_redaction(*secrets: str | None) -> Redact:
    """Redact `secrets` (empty ones are ignored) on every handler the root logger has now."""
    redact = Redact(*secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    return redact
