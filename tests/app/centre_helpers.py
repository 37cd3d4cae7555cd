"""What the command-centre tests share: demo tickets filed as chat files them, login links as /web
makes them, and an HTTP client signed in through the link page's button."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.centre import links, logins
from core.config import Settings
from core.db import session_scope
from core.models import Building, Grid, Person, utcnow
from core.tickets.lifecycle import NewTicket
from core.tickets.service import submit_report

TZ = Settings().tz
ADMIN = "P-0069"  # 汤嘉懿, community admin of 和平里社区 (C-HPL)
WORKER = "P-0061"  # 史振华, grid worker of 和平里第一网格 (G-HPL-01)
RESIDENT = "P-0071"
_PRE = re.compile(r'name="csrf" value="([^"]+)"')


def person(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def file_ticket(factory: sessionmaker[Session], building: str, description: str, category: str = "sanitation",
                at: datetime | None = None) -> str:
    with session_scope(factory) as s:
        b = s.scalars(select(Building).where(Building.code == building)).one()
        g = s.get(Grid, b.grid_id)
        assert g is not None
        ticket = submit_report(s, NewTicket(category_code=category, description=description,
                                            community_id=g.community_id, grid_id=g.id, building_id=b.id,
                                            reporter_id=person(s, "P-0071").id),
                               tz=TZ, now=at or utcnow())
        return ticket.number


def link_for(factory: sessionmaker[Session], code: str, base: str, *, now: datetime | None = None) -> str:
    with session_scope(factory) as s:
        text = links.link_text(s, person(s, code), base_url=base, minutes=10, now=now)
    found = re.search(r"https?://\S+", text)
    assert found is not None, text
    return found.group(0)


def token_of(factory: sessionmaker[Session], code: str, *, now: datetime | None = None) -> str:
    with session_scope(factory) as s:
        return logins.issue(s, person(s, code), minutes=10, now=now)


def sign_in(client: httpx.Client, url: str) -> httpx.Response:
    """Open the link page and press 登录 (the form's token and CSRF value as the page gives them)."""
    page = client.get(url)
    assert page.status_code == 200, page.text
    csrf = _PRE.search(page.text)
    assert csrf is not None
    return client.post("/centre/login", data={"token": url.rsplit("/", 1)[1], "csrf": csrf.group(1)})


def csrf_of(html: str) -> str:
    found = _PRE.search(html)
    assert found is not None
    return found.group(1)
