"""Which bot process handles a person's messages now, across every process on one database.

Several bot replicas (webhook mode behind a load balancer) share one PostgreSQL database: any
of them may store a person's update, and each one's background pass looks at every stored
update and every pending inbox message. Each person's messages must still be answered once and
in order, so a replica handles a person's work only while it holds that person's claim: a
PostgreSQL session advisory lock keyed by (what, sender), taken with pg_try_advisory_lock on one
connection of its own per process. A process that dies (even by SIGKILL) loses its session, and
PostgreSQL frees its claims at once; nothing is left to expire.

Two kinds of claim, never waited for in the other order, so no two replicas wait on each other:
UPDATES (handling a person's stored Telegram updates, bot/polling.py) and INBOX (asking Rasa for
a person's pending messages, bot/app.py's Services.answer).

Session advisory locks are re-entrant within one session, so a process must not try to claim
what it already holds: the callers hold a per-sender asyncio lock of their own first. On SQLite
one process is assumed and every claim is granted.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("gridbot.claims")

UPDATES = 1  # a person's stored Telegram updates
INBOX = 2  # a person's pending inbox messages
UPDATE = 3  # one stored update with no person in it (keyed by its update_id)
_KEY_BITS = 56  # the kind in the top byte, the id (a Telegram id fits in 53 bits) below


def lock_key(kind: int, key: int) -> int:
    """One bigint advisory-lock key for (kind, id); a negative id (a group chat) is folded in."""
    return (kind << _KEY_BITS) | (key & ((1 << _KEY_BITS) - 1))


class Claims:
    """Per-person claims shared by every process on the database (see the module docstring).
    Thread-safe; each call is one short statement, meant for asyncio.to_thread."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine
        self.shared = engine is not None and engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._mutex = threading.Lock()

    def try_claim(self, kind: int, key: int) -> bool:
        """Take the claim if nobody (no other process) holds it; False when another does, or
        when the database cannot be asked (the work waits for the next pass)."""
        if not self.shared:
            return True
        with self._mutex:
            try:
                if self._conn is None:
                    assert self.engine is not None
                    self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                return bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                               {"k": lock_key(kind, key)}).scalar())
            except Exception as exc:  # noqa: BLE001 - not claimed; tried again later
                log.warning("claim (%d, %d) not taken: %s", kind, key, exc)
                self._drop()
                return False

    def release(self, kind: int, key: int) -> None:
        if not self.shared:
            return
        with self._mutex:
            if self._conn is None:
                return  # the connection was lost: PostgreSQL released everything it held
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(kind, key)})
            except Exception as exc:  # noqa: BLE001 - closing the connection releases it
                log.warning("claim (%d, %d) not released: %s; dropping the connection", kind, key, exc)
                self._drop()

    def close(self) -> None:
        with self._mutex:
            self._drop()

    def _drop(self) -> None:
        # Losing the connection (a database restart) loses every claim of this process; the
        # callers finish what they hold, and the per-message guards (inbox state, the outbox's
        # dedupe keys, Rasa's replay by inbox id) keep a message from being answered twice.
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None
