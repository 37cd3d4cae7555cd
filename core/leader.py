"""Who leads the scheduled work (core/scheduler.py), as any process can see it.

On PostgreSQL the leader holds the session advisory lock `core.scheduler.LOCK_KEY` on its own
connection, whose `application_name` says which process it is (`identity()`); `current` reads
both from pg_locks and pg_stat_activity, so `gridbot health` and /metrics name the leader from
outside, and see that there is none. On SQLite one process is assumed and it always leads:
nothing outside it can tell, so `current` answers None (unknown) there.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

LOCK_KEY = 0x6772_6964_6475_7479  # "gridduty": the advisory lock of the scheduler leader
NAME_PREFIX = "gridbot-scheduler"
_HOLDER = text("""
    SELECT a.application_name, l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.classid::bigint = :hi AND l.objid::bigint = :lo
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    LIMIT 1""")


def identity() -> str:
    """This process as a leader is named: host and pid (no person, nothing secret)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def application_name() -> str:
    """The lock connection's application_name (PostgreSQL keeps 63 bytes of it)."""
    return f"{NAME_PREFIX} {identity()}"[:63]


@dataclass(frozen=True)
class Leader:
    known: bool  # False on SQLite: the only process leads, nobody outside can see it
    holder: str | None = None  # host:pid of the leader; None when there is none

    @property
    def missing(self) -> bool:
        return self.known and self.holder is None


def current(session: Session, key: int = LOCK_KEY) -> Leader:
    if session.get_bind().dialect.name != "postgresql":
        return Leader(known=False)
    # An advisory lock on one bigint shows as classid (high 32 bits) and objid (low 32 bits).
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    row = session.execute(_HOLDER, {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF}).first()
    if row is None:
        return Leader(known=True)
    name = str(row.application_name or "")
    holder = name[len(NAME_PREFIX):].strip() if name.startswith(NAME_PREFIX) else f"pid {row.pid}"
    return Leader(known=True, holder=holder or f"pid {row.pid}")
