"""Broadcast notices: who may send to whom, one delivery row per recipient, and the outcome.

A secretary (or grid worker, community admin) composes a notice, picks an audience they are
allowed to address (`choices`), and `queue`s it: that creates one BroadcastDelivery per
recipient (UNIQUE(broadcast_id, person_id), so queueing twice adds nobody twice) and records
"broadcast.send" in the audit log with counts only. People who said /notify off are left out
unless the notice is essential.

The sender (bot/broadcast_sender.py) works through the rows:

    pending --mark_sending (committed)--> sending --send--> sent | blocked (403) | pending (retry)

Exactly once. A row is marked 'sending' in its own commit immediately before its one send
request, and 'sent' right after the answer. A sender that dies between the two leaves the row
in 'sending', and nobody can tell whether Telegram got the request: the Bot API has no
idempotency key and no way to read back a chat. gridbot chooses never to send such a row
again (`recover` turns it into 'unconfirmed', counted in the report): nobody gets a notice
twice, and the only possible loss is a request that was committed as 'sending' but never
reached Telegram: the commit is the last step before the request is written (see
bot/broadcast_sender.py MarkBeforeSend), so the window is one to a few milliseconds per send. Only one sender runs per database (the bot process,
which Telegram's getUpdates already makes unique), so at start-up every 'sending' row is a
dead sender's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import (
    NotAllowed,
    Scope,
    allowed,
    require,
    scope_of_branch,
    scope_of_grid,
)
from core.messages import t
from core.messaging import outbox
from core.models import (
    Branch,
    BranchMember,
    Broadcast,
    BroadcastAudience,
    BroadcastDelivery,
    BroadcastState,
    Building,
    Community,
    DeliveryState,
    Grid,
    Person,
    Role,
    RoleGrant,
    utcnow,
)
from core.presentation import callbacks

MAX_ATTEMPTS = 6
BASE_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=5)
TEXT_LIMIT = 4000  # one Telegram message each (4,096 with the header)
CAPTION_LIMIT = 900  # photo/document captions: 1,024 with the header

A = BroadcastAudience


@dataclass(frozen=True)
class Choice:
    """One audience a person may address, with where and how many."""

    audience: BroadcastAudience
    community_id: int | None
    grid_id: int | None
    branch_id: int | None
    label: str  # e.g. "和平里第一网格党支部 党员"
    count: int


@dataclass(frozen=True)
class Due:
    id: int
    person_id: int
    chat_id: int
    attempts: int


def action_of(audience: BroadcastAudience) -> str:
    return f"broadcast.{audience.value}"


def scope_of(session: Session, audience: BroadcastAudience, *, community_id: int | None = None,
             grid_id: int | None = None, branch_id: int | None = None) -> Scope:
    if audience is A.community:
        if community_id is None:
            raise NotAllowed(t("broadcast.deny.no_scope"))
        return Scope(community_id=community_id)
    if branch_id is not None:
        branch = session.get(Branch, branch_id)
        if branch is None:
            raise NotAllowed(t("broadcast.deny.no_scope"))
        return scope_of_branch(session, branch)
    if grid_id is not None:
        return scope_of_grid(session, grid_id)
    raise NotAllowed(t("broadcast.deny.no_scope"))


# -- audiences ------------------------------------------------------------------------

def _recipient_query(session: Session, audience: BroadcastAudience, scope: Scope) -> Any:
    """The ids of the people an audience at `scope` names (before /notify off and chat ids)."""
    if audience is A.members:  # the branch's members and the 在职党员 registered there (双报到)
        return select(BranchMember.person_id).where(BranchMember.branch_id == scope.branch_id).union(
            select(RoleGrant.person_id).where(RoleGrant.role == Role.dual_member,
                                              RoleGrant.branch_id == scope.branch_id))
    if audience is A.residents:
        homes = select(Building.id).where(Building.grid_id == scope.grid_id)
        return select(Person.id).where(Person.building_id.in_(homes))
    if audience is A.volunteers:
        homes = select(Building.id).where(Building.grid_id == scope.grid_id)
        return select(RoleGrant.person_id).join(Person, Person.id == RoleGrant.person_id).where(
            RoleGrant.role == Role.volunteer, or_(
                RoleGrant.branch_id == scope.branch_id, RoleGrant.grid_id == scope.grid_id,
                RoleGrant.community_id.is_(None) & RoleGrant.grid_id.is_(None)
                & RoleGrant.branch_id.is_(None) & Person.building_id.in_(homes)))
    # the whole community: residents of its grids, members of its branches, anyone scoped there
    grids = select(Grid.id).where(Grid.community_id == scope.community_id)
    branches = select(Branch.id).where(Branch.grid_id.in_(grids))
    homes = select(Building.id).where(Building.grid_id.in_(grids))
    return select(Person.id).where(or_(
        Person.building_id.in_(homes),
        Person.id.in_(select(BranchMember.person_id).where(BranchMember.branch_id.in_(branches))),
        Person.id.in_(select(RoleGrant.person_id).where(or_(
            RoleGrant.community_id == scope.community_id, RoleGrant.grid_id.in_(grids),
            RoleGrant.branch_id.in_(branches))))))


def recipients(session: Session, audience: BroadcastAudience, scope: Scope, *,
               essential: bool) -> list[tuple[int, int]]:
    """(person id, chat id) of everyone the notice reaches: reachable in Telegram, and not
    opted out with /notify off unless the notice is essential."""
    query = select(Person.id, Person.telegram_id).where(
        Person.id.in_(_recipient_query(session, audience, scope)), Person.telegram_id.is_not(None))
    if not essential:
        query = query.where(Person.notify_off.is_(False))
    return [(pid, int(chat)) for pid, chat in session.execute(query.order_by(Person.id))]


def label(session: Session, audience: BroadcastAudience, scope: Scope) -> str:
    if audience is A.community:
        community = session.get(Community, scope.community_id)
        place = community.name if community else ""
    elif scope.branch_id is not None and audience is not A.residents:
        branch = session.get(Branch, scope.branch_id)
        place = branch.name if branch else ""
    else:
        grid = session.get(Grid, scope.grid_id)
        place = grid.name if grid else ""
    return t(f"broadcast.audience.{audience.value}", place=place)


def choices(session: Session, person: Person | None, *, essential: bool = False) -> list[Choice]:
    """Every audience `person` may address, with its recipient count."""
    if person is None:
        return []
    scopes: list[Scope] = []
    branch_ids = set(session.scalars(select(Branch.id).where(Branch.secretary_id == person.id)))
    grid_ids: set[int] = set()
    community_ids: set[int] = set()
    for g in person.grants:
        if g.role is Role.secretary and g.branch_id is not None:
            branch_ids.add(g.branch_id)
        elif g.role is Role.grid_worker and g.grid_id is not None:
            grid_ids.add(g.grid_id)
        elif g.role is Role.community_admin and g.community_id is not None:
            community_ids.add(g.community_id)
    for cid in sorted(community_ids):
        scopes.append(Scope(community_id=cid))
        for bid in session.scalars(select(Branch.id).join(Grid, Grid.id == Branch.grid_id)
                                   .where(Grid.community_id == cid).order_by(Branch.id)):
            branch_ids.add(bid)
    for bid in sorted(branch_ids):
        branch = session.get(Branch, bid)
        if branch is not None:
            scopes.append(scope_of_branch(session, branch))
            grid_ids.discard(branch.grid_id)
    for gid in sorted(grid_ids):
        scopes.append(scope_of_grid(session, gid))
    out: list[Choice] = []
    for scope in scopes:
        kinds = [A.community] if scope.branch_id is None and scope.grid_id is None else \
            [A.members, A.residents, A.volunteers]
        for audience in kinds:
            if audience in (A.members, A.volunteers) and scope.branch_id is None:
                continue
            if not allowed(session, person, action_of(audience), scope):
                continue
            count = len(recipients(session, audience, scope, essential=essential))
            out.append(Choice(audience, scope.community_id, scope.grid_id, scope.branch_id,
                              label(session, audience, scope), count))
    return out


# -- composing and queueing --------------------------------------------------------------

def create(session: Session, sender: Person | None, *, audience: BroadcastAudience, text: str,
           community_id: int | None = None, grid_id: int | None = None, branch_id: int | None = None,
           photo_file_id: str | None = None, document_file_id: str | None = None,
           essential: bool = False, read_button: bool = False,
           progress_chat_id: int | None = None) -> Broadcast:
    """A draft, after checking that `sender` may address `audience` there."""
    scope = scope_of(session, audience, community_id=community_id, grid_id=grid_id, branch_id=branch_id)
    sender = require(session, sender, action_of(audience), scope)
    text = (text or "").strip()
    limit = CAPTION_LIMIT if (photo_file_id or document_file_id) else TEXT_LIMIT
    if not text and not (photo_file_id or document_file_id):
        raise NotAllowed(t("broadcast.deny.empty"))
    if len(text) > limit:
        raise NotAllowed(t("broadcast.deny.too_long", limit=limit))
    broadcast = Broadcast(sender_id=sender.id, audience=audience, community_id=scope.community_id,
                          grid_id=scope.grid_id, branch_id=scope.branch_id, text=text,
                          photo_file_id=photo_file_id, document_file_id=document_file_id,
                          essential=essential, read_button=read_button, state=BroadcastState.draft,
                          progress_chat_id=progress_chat_id, recipients=0)
    session.add(broadcast)
    session.flush()
    return broadcast


def preview_count(session: Session, broadcast: Broadcast) -> int:
    return len(recipients(session, broadcast.audience, _scope(broadcast), essential=broadcast.essential))


def _scope(b: Broadcast) -> Scope:
    return Scope(community_id=b.community_id, grid_id=b.grid_id, branch_id=b.branch_id)


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> int:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(BroadcastDelivery).values(rows).on_conflict_do_nothing(
        index_elements=["broadcast_id", "person_id"])
    return len(session.execute(stmt.returning(BroadcastDelivery.id)).all())


def queue(session: Session, broadcast_id: int, sender: Person | None, *,
          scheduled_at: datetime | None = None, now: datetime | None = None) -> Broadcast:
    """Create the deliveries (idempotent) and hand the notice to the sender at `scheduled_at`."""
    now = now or utcnow()
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotAllowed(t("broadcast.deny.not_found"))
    require(session, sender, action_of(broadcast.audience), _scope(broadcast))
    assert sender is not None
    if broadcast.sender_id != sender.id:
        raise NotAllowed(t("broadcast.deny.not_yours"))
    if broadcast.state not in (BroadcastState.draft, BroadcastState.queued):
        return broadcast
    if scheduled_at is not None and scheduled_at < now - timedelta(minutes=1):
        raise NotAllowed(t("broadcast.deny.in_past"))
    people = recipients(session, broadcast.audience, _scope(broadcast), essential=broadcast.essential)
    rows = [dict(broadcast_id=broadcast.id, person_id=pid, chat_id=chat, state=DeliveryState.pending,
                 attempts=0, next_attempt_at=now) for pid, chat in people]
    for start in range(0, len(rows), 500):
        _insert_ignore(session, rows[start:start + 500])
    first = broadcast.state is BroadcastState.draft
    broadcast.recipients = session.scalar(select(func.count()).select_from(BroadcastDelivery).where(
        BroadcastDelivery.broadcast_id == broadcast.id)) or 0
    broadcast.scheduled_at = scheduled_at or now
    broadcast.state = BroadcastState.queued
    if first:
        audit.record(session, sender, "broadcast.send", f"broadcast:{broadcast.id}", {
            "audience": broadcast.audience.value, "recipients": broadcast.recipients,
            "essential": broadcast.essential, "scheduled": scheduled_at is not None,
            "branch_id": broadcast.branch_id, "grid_id": broadcast.grid_id,
            "community_id": broadcast.community_id})
    session.flush()
    return broadcast


def cancel(session: Session, broadcast_id: int, sender: Person | None) -> Broadcast:
    """Cancel a draft or a notice that has not started; deliveries still pending are dropped."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or sender is None or broadcast.sender_id != sender.id:
        raise NotAllowed(t("broadcast.deny.not_yours"))
    if broadcast.state in (BroadcastState.draft, BroadcastState.queued):
        broadcast.state = BroadcastState.cancelled
        broadcast.finished_at = utcnow()
        session.execute(update(BroadcastDelivery).where(
            BroadcastDelivery.broadcast_id == broadcast.id,
            BroadcastDelivery.state == DeliveryState.pending).values(
            state=DeliveryState.failed, last_error="cancelled"))
    return broadcast


# -- the sender's side --------------------------------------------------------------------

def recover(session: Session) -> int:
    """At sender start-up: rows a dead sender left in 'sending' become 'unconfirmed' (never resent)."""
    result = session.execute(update(BroadcastDelivery).where(
        BroadcastDelivery.state == DeliveryState.sending).values(
        state=DeliveryState.unconfirmed, last_error="sender stopped during the send"))
    return int(getattr(result, "rowcount", 0) or 0)


def due_broadcasts(session: Session, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    return list(session.scalars(select(Broadcast.id).where(
        Broadcast.state.in_([BroadcastState.queued, BroadcastState.sending]),
        Broadcast.scheduled_at <= now).order_by(Broadcast.scheduled_at, Broadcast.id)))


def start(session: Session, broadcast_id: int, now: datetime | None = None) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    assert broadcast is not None
    if broadcast.state is BroadcastState.queued:
        broadcast.state = BroadcastState.sending
        broadcast.started_at = now or utcnow()
    return broadcast


def claim_due(session: Session, broadcast_id: int, limit: int = 200,
              now: datetime | None = None) -> list[Due]:
    """Pending deliveries whose time has come, oldest first (no state change: `mark_sending` does it)."""
    now = now or utcnow()
    rows = session.execute(select(BroadcastDelivery.id, BroadcastDelivery.person_id, BroadcastDelivery.chat_id,
                                  BroadcastDelivery.attempts).where(
        BroadcastDelivery.broadcast_id == broadcast_id, BroadcastDelivery.state == DeliveryState.pending,
        BroadcastDelivery.next_attempt_at <= now).order_by(BroadcastDelivery.next_attempt_at,
                                                            BroadcastDelivery.id).limit(limit))
    return [Due(*row) for row in rows]


def next_due_at(session: Session, broadcast_id: int) -> datetime | None:
    return session.scalar(select(func.min(BroadcastDelivery.next_attempt_at)).where(
        BroadcastDelivery.broadcast_id == broadcast_id, BroadcastDelivery.state == DeliveryState.pending))


def mark_sending(session: Session, delivery_id: int) -> bool:
    """Take a pending row for one send; False if it is no longer pending (someone else took it)."""
    result = session.execute(update(BroadcastDelivery).where(
        BroadcastDelivery.id == delivery_id, BroadcastDelivery.state == DeliveryState.pending).values(
        state=DeliveryState.sending, attempts=BroadcastDelivery.attempts + 1))
    return bool(getattr(result, "rowcount", 0))


def set_delivery(session: Session, delivery_id: int, **values: Any) -> None:
    session.execute(update(BroadcastDelivery).where(BroadcastDelivery.id == delivery_id).values(**values))


def mark_sent(session: Session, delivery_id: int, telegram_message_id: int | None,
              now: datetime | None = None) -> None:
    set_delivery(session, delivery_id, state=DeliveryState.sent, sent_at=now or utcnow(),
         telegram_message_id=telegram_message_id, last_error=None)


def mark_blocked(session: Session, delivery_id: int, error: str) -> None:
    set_delivery(session, delivery_id, state=DeliveryState.blocked, last_error=error[:300])


def mark_failed(session: Session, delivery_id: int, error: str) -> None:
    set_delivery(session, delivery_id, state=DeliveryState.failed, last_error=error[:300])


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s … capped at 5 minutes."""
    return min(MAX_BACKOFF, BASE_BACKOFF * (2 ** max(0, attempts - 1)))


def retry_later(session: Session, delivery_id: int, error: str, *, delay: timedelta | None = None,
                now: datetime | None = None) -> DeliveryState:
    """Back to pending after `delay` (Telegram's retry_after) or backoff; failed when attempts are used up.
    A RetryAfter (`delay` given) does not count as an attempt."""
    now = now or utcnow()
    row = session.get(BroadcastDelivery, delivery_id)
    assert row is not None
    if delay is None and row.attempts >= MAX_ATTEMPTS:
        mark_failed(session, delivery_id, f"gave up after {row.attempts} attempts: {error}")
        return DeliveryState.failed
    if delay is not None:
        row.attempts = max(0, row.attempts - 1)
    row.state = DeliveryState.pending
    row.next_attempt_at = now + (delay if delay is not None else backoff(row.attempts))
    row.last_error = error[:300]
    session.flush()
    return DeliveryState.pending


def set_progress_message(session: Session, broadcast_id: int, message_id: int) -> None:
    """Remember the sender's progress message, so a restarted sender edits it instead of a new one."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is not None:
        broadcast.progress_message_id = message_id


def counts(session: Session, broadcast_id: int) -> dict[str, int]:
    """How many deliveries are in each state, plus total and read."""
    rows = session.execute(select(BroadcastDelivery.state, func.count()).where(
        BroadcastDelivery.broadcast_id == broadcast_id).group_by(BroadcastDelivery.state))
    out: Counter[str] = Counter({s.value: 0 for s in DeliveryState})
    for state, n in rows:
        out[state.value if isinstance(state, DeliveryState) else str(state)] += n
    out["total"] = sum(out[s.value] for s in DeliveryState)
    out["read"] = session.scalar(select(func.count()).select_from(BroadcastDelivery).where(
        BroadcastDelivery.broadcast_id == broadcast_id, BroadcastDelivery.read_at.is_not(None))) or 0
    return dict(out)


def progress_text(c: dict[str, int]) -> str:
    done = c["total"] - c["pending"] - c["sending"]
    return t("broadcast.progress", done=done, total=c["total"])


def report_text(c: dict[str, int], read_button: bool) -> str:
    text = t("broadcast.report", delivered=c["sent"], blocked=c["blocked"], failed=c["failed"],
             total=c["total"])
    if c["unconfirmed"]:
        text += "\n" + t("broadcast.report_unconfirmed", n=c["unconfirmed"])
    if read_button:
        text += "\n" + t("broadcast.report_read", read=c["read"], delivered=c["sent"] + c["unconfirmed"])
    return text


def finish_if_done(session: Session, broadcast_id: int, now: datetime | None = None) -> bool:
    """When no delivery is left to try: the notice is done and its final report is queued (once)."""
    broadcast = session.get(Broadcast, broadcast_id)
    assert broadcast is not None
    if broadcast.state is BroadcastState.done:
        return True
    c = counts(session, broadcast_id)
    if c["pending"] or c["sending"]:
        return False
    broadcast.state = BroadcastState.done
    broadcast.finished_at = now or utcnow()
    if broadcast.progress_chat_id is not None:
        outbox.enqueue(session, dedupe_key=f"broadcast-report:{broadcast.id}", kind="broadcast_report",
                       chat_id=broadcast.progress_chat_id,
                       payload={"text": report_text(c, broadcast.read_button)})
    session.flush()
    return True


def message_payload(session: Session, broadcast: Broadcast) -> dict[str, Any]:
    """What each recipient gets: {"text", "photo"?, "document"?, "read_button"?}."""
    if broadcast.branch_id is not None and broadcast.audience is not A.residents:
        branch = session.get(Branch, broadcast.branch_id)
        source = branch.name if branch else ""
    elif broadcast.audience is A.community:
        community = session.get(Community, broadcast.community_id)
        source = community.name if community else ""
    else:
        grid = session.get(Grid, broadcast.grid_id)
        source = grid.name if grid else ""
    head = t("broadcast.head_essential" if broadcast.essential else "broadcast.head", place=source)
    payload: dict[str, Any] = {"text": f"{head}\n{broadcast.text}".strip()}
    if broadcast.photo_file_id:
        payload["photo"] = broadcast.photo_file_id
    if broadcast.document_file_id:
        payload["document"] = broadcast.document_file_id
    if broadcast.read_button:
        payload["read_button"] = {"text": t("broadcast.button_read"),
                                  "callback_data": callbacks.read_receipt(broadcast.id)}
    return payload


# -- 已读 and /notify ------------------------------------------------------------------------

def mark_read(session: Session, broadcast_id: int, telegram_user_id: int,
              now: datetime | None = None) -> str:
    """The 已读 press of a recipient: "read" the first time, "again" after, "stranger" if the
    presser was not sent this notice."""
    person = session.scalar(select(Person).where(Person.telegram_id == telegram_user_id))
    if person is None:
        return "stranger"
    row = session.scalar(select(BroadcastDelivery).where(
        BroadcastDelivery.broadcast_id == broadcast_id, BroadcastDelivery.person_id == person.id,
        BroadcastDelivery.state.in_([DeliveryState.sent, DeliveryState.unconfirmed])))
    if row is None:
        return "stranger"
    result = session.execute(update(BroadcastDelivery).where(
        BroadcastDelivery.id == row.id, BroadcastDelivery.read_at.is_(None)).values(read_at=now or utcnow()))
    return "read" if getattr(result, "rowcount", 0) else "again"


def set_notify(session: Session, person: Person | None, on: bool) -> Person:
    if person is None:
        raise NotAllowed(t("deny.unknown_person"))
    person.notify_off = not on
    session.flush()
    return person
