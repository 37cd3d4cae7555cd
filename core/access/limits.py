"""Per-person limits, counted from the database over a sliding window.

The bot and the action server are separate processes (and there may be several of each),
so nothing is counted in memory: every limit is a count of rows the database already holds.

| limit | counts | window | setting |
| --- | --- | --- | --- |
| reports | tickets the person filed, emergencies excepted (tickets.reporter_id, created_at) | 1 h | `report_limit_per_hour` |
| emergencies | urgent tickets the person filed | 1 h | `emergency_limit_per_hour` |
| bindings | completed /start bindings (audit `resident.bind`) | 24 h | `binding_limit_per_day` |
| /join | wrong invite codes (audit `invite.join_refused`, reason unknown, expired or used) | 1 h | `join_failures_per_hour` |

A limit concerns one person only: nobody else waits or loses anything. Each check answers
with a Verdict; when it refuses, `retry_at` is when the oldest counted row leaves the
window, so the refusal can say from when it works again (it ends by itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.models import AuditEntry, Ticket, utcnow

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
BIND_ACTION = "resident.bind"  # written by core.tickets.service.bind_resident
JOIN_REFUSED = "invite.join_refused"  # written by core.registry.invites.redeem
WRONG_CODE = frozenset({"unknown", "expired", "used"})  # the refusals that count towards a lockout


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    retry_at: datetime | None = None  # when a refused action is allowed again (UTC)

    def retry_local(self, tz: ZoneInfo, *, with_date: bool = False) -> str:
        """retry_at as the person reads it: 14:05, or 11-25 14:05 for a day's window."""
        if self.retry_at is None:
            return ""
        return self.retry_at.astimezone(tz).strftime("%m-%d %H:%M" if with_date else "%H:%M")


def _verdict(times: Iterable[datetime], limit: int, window: timedelta) -> Verdict:
    """`times` are the counted rows inside the window; one more is allowed below `limit`."""
    ordered = sorted(times)
    if len(ordered) < limit:
        return Verdict(True, limit)
    return Verdict(False, limit, ordered[len(ordered) - limit] + window)


def _ticket_times(session: Session, person_id: int, urgent: bool, since: datetime) -> list[datetime]:
    return list(session.scalars(select(Ticket.created_at).where(
        Ticket.reporter_id == person_id, Ticket.urgent.is_(urgent), Ticket.created_at > since)))


def reports(session: Session, person_id: int, *, now: datetime | None = None,
            settings: Settings) -> Verdict:
    """May the person file another (non-emergency) report now?"""
    now = now or utcnow()
    limit = settings.report_limit_per_hour
    return _verdict(_ticket_times(session, person_id, False, now - HOUR), limit, HOUR)


def emergencies(session: Session, person_id: int, *, now: datetime | None = None,
                settings: Settings) -> Verdict:
    """May the person file another urgent ticket (and page the admins) now?"""
    now = now or utcnow()
    limit = settings.emergency_limit_per_hour
    return _verdict(_ticket_times(session, person_id, True, now - HOUR), limit, HOUR)


def bindings(session: Session, person_id: int | None, *, now: datetime | None = None,
             settings: Settings) -> Verdict:
    """May the person bind (again) now? Someone never bound (None) always may."""
    now = now or utcnow()
    limit = settings.binding_limit_per_day
    if person_id is None:
        return Verdict(True, limit)
    times = session.scalars(select(AuditEntry.at).where(
        AuditEntry.action == BIND_ACTION, AuditEntry.subject == f"person:{person_id}",
        AuditEntry.at > now - DAY))
    return _verdict(times, limit, DAY)


def join_subject(telegram_id: int) -> str:
    """The audit subject of a /join attempt: the Telegram user, who may be no Person yet."""
    return f"telegram:{telegram_id}"


def joins(session: Session, telegram_id: int, *, now: datetime | None = None,
          settings: Settings) -> Verdict:
    """Is the Telegram user free to try a /join code, or locked out by too many wrong ones?"""
    now = now or utcnow()
    limit = settings.join_failures_per_hour
    rows = session.execute(select(AuditEntry.at, AuditEntry.detail).where(
        AuditEntry.action == JOIN_REFUSED, AuditEntry.subject == join_subject(telegram_id),
        AuditEntry.at > now - HOUR))
    return _verdict([at for at, detail in rows if (detail or {}).get("reason") in WRONG_CODE], limit, HOUR)
