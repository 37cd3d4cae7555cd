"""Open311 POST requests: a real ticket, filed through the ticket service and routed by the
same router as chat (core.places.router).

Where it is: `address_id` (a building's or landmark's registry code), else `address_string`
(the router's text matching, as for a place typed in chat; among equal candidates the one in
the point's grid, else the one in the key's community), else `lat`/`long` (the grid the point
falls in). A request nothing routes stays `new` in its community's triage queue
(core.tickets.destinations: the community's admins get the card) and `service_notice` says
so; the community is the one the candidates share, else the key's.

The reporter is external: no Telegram person. With `contact_consent=true` their name and phone
become a Person without Telegram (the 联系人 button shows them, audited, as for a resident who
consented at /start) and their e-mail is kept with the request; without it every contact field
is dropped and the ticket is anonymous.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.messages import t
from core.models import (
    ApiKey,
    Branch,
    Building,
    Community,
    Grid,
    Landmark,
    Open311Request,
    Person,
    Ticket,
)
from core.open311 import services
from core.places.router import Candidate, Router, RouteResult, RouteStatus
from core.tickets.lifecycle import NewTicket
from core.tickets.service import submit_report

MAX_DESCRIPTION = 4000


class Invalid(ValueError):
    """A request the spec answers with 400: the reason, for the client's developer."""


@dataclass
class Submission:
    service_code: str
    description: str = ""
    lat: float | None = None
    lon: float | None = None
    address_string: str | None = None
    address_id: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    contact_consent: bool = False
    media_url: str | None = None


@dataclass
class Filed:
    ticket: Ticket
    token: str
    notice: str
    routed: bool


def _answers(category_code: str, given: dict[str, list[str]]) -> list[str]:
    """The category's questions answered, as lines for the description; Invalid if not."""
    lines = []
    for q in services.questions_of(category_code):
        answers = [a.strip() for a in given.get(q.code, []) if a.strip()]
        if not answers:
            if q.required:
                raise Invalid(f"attribute[{q.code}] is required for service_code {category_code}")
            continue
        if q.datatype in services.LISTS:
            names = dict(q.values)
            unknown = [a for a in answers if a not in names]
            if unknown:
                raise Invalid(f"attribute[{q.code}]: {unknown[0]!r} is not one of {', '.join(names)}")
            if q.datatype == "singlevaluelist" and len(answers) > 1:
                raise Invalid(f"attribute[{q.code}] takes one value")
            answers = [names[a] for a in answers]
        elif q.datatype == "number":
            try:
                float(answers[0])
            except ValueError:
                raise Invalid(f"attribute[{q.code}] must be a number") from None
        lines.append(t("open311.answer", question=q.question, answer="、".join(answers)))
    return lines


def _place(router: Router, sub: Submission, community_code: str | None) -> RouteResult:
    point = router.by_point(sub.lat, sub.lon) if sub.lat is not None and sub.lon is not None else None
    point_grid = point.grid_code if point is not None else None
    if sub.address_id:
        by_code = router.by_code(sub.address_id.strip())
        if by_code.status is RouteStatus.matched:
            return by_code
    if sub.address_string and sub.address_string.strip():
        text = router.by_text(sub.address_string, community_code)
        if text.status is RouteStatus.matched:
            return text
        if text.status is RouteStatus.ambiguous:
            top = text.candidates[0].score
            tied = [c for c in text.candidates if c.score == top]
            for keep in (lambda c: c.grid_code == point_grid, lambda c: c.community_code == community_code):
                chosen = [c for c in tied if keep(c)]
                if len(chosen) == 1:
                    return RouteResult(RouteStatus.matched, chosen)
        if point is None or point.status is not RouteStatus.matched:
            return text if text.candidates else (point or text)
    return point if point is not None else RouteResult(RouteStatus.none)


def _full_name(first: str | None, last: str | None) -> str:
    """王 + 小明 → 王小明; Ann + Lee → Ann Lee."""
    first, last = (first or "").strip(), (last or "").strip()
    if re.search(r"[\u4e00-\u9fff]", first + last):
        return last + first
    return " ".join(p for p in (first, last) if p)


def _triage_community(session: Session, candidates: list[Candidate], key: ApiKey) -> Community | None:
    codes = {c.community_code for c in candidates}
    if len(codes) == 1:
        return session.scalar(select(Community).where(Community.code == codes.pop()))
    return session.get(Community, key.community_id) if key.community_id is not None else None


def _by_code(session: Session, model: type, code: str | None) -> object | None:
    return session.scalar(select(model).where(model.code == code)) if code else None  # type: ignore[attr-defined]


def file_request(session: Session, router: Router, key: ApiKey, sub: Submission, *, tz: ZoneInfo,
                 now: datetime | None = None) -> Filed:
    category = services.find(session, sub.service_code)
    if category is None:
        raise Invalid(f"service_code {sub.service_code!r} is not one of our services")
    if sub.lat is None and sub.lon is None and not (sub.address_string or "").strip() \
            and not (sub.address_id or "").strip():
        raise Invalid("a location is required: lat and long, address_string or address_id")
    description = sub.description.strip()
    if len(description) > MAX_DESCRIPTION:
        raise Invalid(f"description is longer than {MAX_DESCRIPTION} characters")
    lines = _answers(category.code, sub.attributes)
    description = "\n".join([description or category.name, *lines])

    community_code = None
    if key.community_id is not None:
        own = session.get(Community, key.community_id)
        community_code = own.code if own is not None else None
    result = _place(router, sub, community_code)
    best = result.best
    grid = _by_code(session, Grid, best.grid_code) if best is not None else None
    community = (session.get(Community, grid.community_id) if isinstance(grid, Grid)
                 else _triage_community(session, result.candidates, key))

    reporter = None
    if sub.contact_consent and any((sub.first_name, sub.last_name, sub.phone)):
        name = _full_name(sub.first_name, sub.last_name)
        reporter = Person(display_name=name or t("actor.resident"), phone=(sub.phone or "").strip()[:32] or None,
                          contact_consent=True)
        session.add(reporter)
        session.flush()
    building = _by_code(session, Building, best.code) if best is not None and best.kind == "building" else None
    landmark = _by_code(session, Landmark, best.code) if best is not None and best.kind == "landmark" else None
    ticket = submit_report(session, NewTicket(
        category_code=category.code, description=description,
        reporter_id=reporter.id if reporter is not None else None,
        community_id=community.id if isinstance(community, Community) else None,
        grid_id=grid.id if isinstance(grid, Grid) else None,
        building_id=building.id if isinstance(building, Building) else None,
        landmark_id=landmark.id if isinstance(landmark, Landmark) else None,
        location_text=(sub.address_string or sub.address_id or "").strip()[:500] or None,
        lat=sub.lat, lon=sub.lon, anonymous=reporter is None,
    ), tz=tz, now=now, notify_reporter=False)
    token = secrets.token_urlsafe(16)
    session.add(Open311Request(ticket_id=ticket.id, api_key_id=key.id, token=token,
                               email=(sub.email or "").strip()[:200] or None if sub.contact_consent else None,
                               media_urls=[sub.media_url.strip()] if sub.media_url and sub.media_url.strip() else [],
                               created_at=ticket.created_at))
    routed = isinstance(grid, Grid)
    audit.record(session, None, "open311.request", f"ticket:{ticket.id}",
                 {"apikey": key.id, "number": ticket.number, "routed": routed, "consent": reporter is not None},
                 at=now)
    if routed:
        branch = session.scalar(select(Branch).where(Branch.grid_id == ticket.grid_id))
        due = ticket.resolve_due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if ticket.resolve_due_at else ""
        agency = branch.name if branch is not None else grid.name if isinstance(grid, Grid) else ""
        notice = t("open311.notice.routed", number=ticket.number, agency=agency, due=due)
    elif isinstance(community, Community):
        notice = t("open311.notice.triage", number=ticket.number, community=community.name)
    else:
        notice = t("open311.notice.triage_unknown", number=ticket.number)
    return Filed(ticket, token, notice, routed)


def by_token(session: Session, token: str) -> Ticket | None:
    row = session.scalar(select(Open311Request).where(Open311Request.token == token))
    return session.get(Ticket, row.ticket_id) if row is not None else None
