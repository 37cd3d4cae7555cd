"""A secretary's study materials: what was sent (a text, a document, a photo, a link) read into
one `Content`, the sessions it may be attached to, and saving it — on a session, in the branch's
library under a topic, or both. Documents and photos are kept as Telegram file_ids and sent again
as they are, never downloaded. Every material added is audited (`study.add`)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import false, select
from sqlalchemy.orm import Session

from core import audit
from core.access.permissions import NotAllowed, branches_for, require, scope_of_branch
from core.duties.common import branch_by_id, fmt_at, now_or_utc, zone_named
from core.duties.events import occurrence_by_id
from core.messages import t
from core.models import Branch, Event, EventOccurrence, Grid, MaterialKind, Person, StudyMaterial

TITLE_LIMIT = 60
TEXT_LIMIT = 3500  # a material's text goes out in one message with its title
TOPIC_LIMIT = 20
SESSIONS_BACK = timedelta(days=30)  # sessions a material may be attached to: the last 30 days…
SESSIONS_AHEAD = timedelta(days=14)  # …and the next two weeks
SESSIONS_SHOWN = 8
URL = re.compile(r"https?://[^\s<>\"'，。；、）》]+", re.IGNORECASE)


@dataclass(frozen=True)
class Content:
    """One material as the secretary sent it, before it is saved (kept in their open question)."""

    kind: MaterialKind
    title: str
    body: str = ""
    url: str | None = None
    file_id: str | None = None
    file_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Content:
        return cls(**{**data, "kind": MaterialKind(data["kind"])})


def _first_line(text: str) -> str:
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line[:TITLE_LIMIT - 1] + "…" if len(line) > TITLE_LIMIT else line


def content_of(text: str | None = None, *, photo: str | None = None, document: str | None = None,
               file_name: str | None = None) -> Content:
    """What a message holds: a photo or a document (its caption the title and words), a link (the
    first http(s) URL; the words around it its title), or a text. NotAllowed when it is empty or
    too long for one message."""
    words = (text or "").strip()
    if len(words) > TEXT_LIMIT:
        raise NotAllowed(t("study.deny.too_long", length=len(words), limit=TEXT_LIMIT))
    if document:
        return Content(MaterialKind.document, _first_line(words) or (file_name or t("study.untitled_document"))[:TITLE_LIMIT],
                       words, file_id=document, file_name=(file_name or "")[:200] or None)
    if photo:
        return Content(MaterialKind.photo, _first_line(words) or t("study.untitled_photo"), words, file_id=photo)
    if not words:
        raise NotAllowed(t("study.deny.empty"))
    link = URL.search(words)
    if link is not None:
        rest = (words[:link.start()] + " " + words[link.end():]).strip(" ：:\n")
        title = _first_line(rest).rstrip("：: ")  # "参考：<url>" is titled 参考
        return Content(MaterialKind.link, title or link.group(0)[:TITLE_LIMIT], rest, url=link.group(0)[:1000])
    return Content(MaterialKind.text, _first_line(words), words)


def clean_topic(text: str) -> str:
    topic = " ".join(text.split())
    if not 1 <= len(topic) <= TOPIC_LIMIT:
        raise NotAllowed(t("study.deny.topic", limit=TOPIC_LIMIT))
    return topic


def managed_branches(session: Session, person: Person | None) -> list[Branch]:
    """The branches whose materials `person` adds (study.manage: the secretary, the community's admins)."""
    return branches_for(session, person, "study.manage")


def sessions_for(session: Session, branch_ids: list[int], now: datetime | None = None) -> list[EventOccurrence]:
    """The branches' sessions a material may go with: not cancelled, from the last SESSIONS_BACK to
    the next SESSIONS_AHEAD, the latest first."""
    now = now_or_utc(now)
    return list(session.scalars(
        select(EventOccurrence).join(Event, Event.id == EventOccurrence.event_id)
        .where(Event.branch_id.in_(branch_ids), EventOccurrence.cancelled == false(),
               EventOccurrence.starts_at >= now - SESSIONS_BACK, EventOccurrence.starts_at <= now + SESSIONS_AHEAD)
        .order_by(EventOccurrence.starts_at.desc(), EventOccurrence.id.desc()).limit(SESSIONS_SHOWN)))


def session_label(occ: EventOccurrence) -> dict[str, Any]:
    """{event, when} of a session, for texts."""
    return {"event": occ.event.title, "when": fmt_at(occ.starts_at, zone_named(occ.event.tz))}


def branch_topics(session: Session, branch: Branch) -> list[str]:
    """The topics of the branch's library (its own and its community's), the most recently used first."""
    grid = session.get(Grid, branch.grid_id)
    rows = session.execute(
        select(StudyMaterial.topic, StudyMaterial.created_at).where(
            StudyMaterial.topic.is_not(None),
            (StudyMaterial.branch_id == branch.id)
            | (StudyMaterial.branch_id.is_(None) & (StudyMaterial.community_id == (grid.community_id if grid else -1))))
        .order_by(StudyMaterial.created_at.desc(), StudyMaterial.id.desc()))
    return list(dict.fromkeys(topic for topic, _ in rows if topic))


def target(session: Session, actor: Person | None, branch_id: int,
           occurrence_id: int | None) -> EventOccurrence | None:
    """Where a material is going, checked before it is asked for: a branch `actor` adds materials
    to and, when given, one of its sessions that is not cancelled."""
    branch = branch_by_id(session, branch_id)
    require(session, actor, "study.manage", scope_of_branch(session, branch))
    if occurrence_id is None:
        return None
    occ = occurrence_by_id(session, occurrence_id)
    if occ.event.branch_id != branch.id or occ.cancelled:
        raise NotAllowed(t("study.deny.wrong_session"))
    return occ


def add(session: Session, actor: Person | None, *, branch_id: int, content: Content, topic: str | None,
        occurrence_id: int | None = None, now: datetime | None = None) -> StudyMaterial:
    """Save a material of the branch: on the session `occurrence_id` (of this branch, not
    cancelled), in the library under `topic`, or both; one of the two at least."""
    now = now_or_utc(now)
    target(session, actor, branch_id, occurrence_id)
    assert actor is not None
    branch = branch_by_id(session, branch_id)
    topic = clean_topic(topic) if topic is not None else None
    if occurrence_id is None and topic is None:
        raise NotAllowed(t("study.deny.topic_needed"))
    grid = session.get(Grid, branch.grid_id)
    assert grid is not None
    row = StudyMaterial(community_id=grid.community_id, branch_id=branch.id, occurrence_id=occurrence_id,
                        kind=content.kind, topic=topic, title=content.title or t(f"study.kind.{content.kind.value}"),
                        body=content.body, url=content.url, file_id=content.file_id, file_name=content.file_name,
                        added_by_id=actor.id, created_at=now)
    session.add(row)
    session.flush()
    audit.record(session, actor, "study.add", f"material:{row.id}",
                 {"kind": content.kind.value, "branch": branch.code, "occurrence": occurrence_id,
                  "library": topic is not None}, at=now)
    return row


def payload(material: StudyMaterial) -> dict[str, Any]:
    """The outbox payload that shows a material: its text, its link, or the file or photo again by
    its file_id (bot/dispatcher.py sends "photo" and "document")."""
    if material.kind is MaterialKind.photo and material.file_id:
        return {"photo": material.file_id, "text": t("study.item_caption", title=material.title)
                + (f"\n{material.body}" if material.body and material.body != material.title else "")}
    if material.kind is MaterialKind.document and material.file_id:
        return {"document": material.file_id, "text": t("study.item_caption", title=material.title)
                + (f"\n{material.body}" if material.body and material.body != material.title else "")}
    if material.kind is MaterialKind.link:
        return {"text": t("study.item_link", title=material.title, url=material.url or "")}
    if material.body.startswith(material.title.rstrip("…")):  # a text whose first line is its title
        return {"text": t("study.item_text_only", body=material.body)}
    return {"text": t("study.item_text", title=material.title, body=material.body)}
