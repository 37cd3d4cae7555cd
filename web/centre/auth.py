"""The command centre's session cookie and CSRF checks (core.centre.logins keeps the rows).

The cookie is HttpOnly, SameSite=Lax, Secure unless WEB_COOKIE_SECURE=false (plain
http://127.0.0.1 in tests), scoped to /centre. Every POST carries the session's CSRF token in a
form field; the login form, before any session exists, carries a random value that must equal a
short-lived cookie set with the page (double submit), so another site cannot sign a browser in.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sanic import Request
from sanic.response import HTTPResponse
from sqlalchemy.orm import Session

from core.centre import logins
from core.centre.scope import View, view_of
from core.config import Settings
from core.db import read_scope, session_scope
from core.models import Person

COOKIE = "gridbot_centre"
PRE_COOKIE = "gridbot_centre_login"
PATH = "/centre"
T = TypeVar("T")


class Refused(Exception):
    """A request without a live session (401) or without its CSRF token (403)."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status, self.key = status, key


@dataclass(frozen=True)
class Who:
    person_id: int
    name: str
    csrf: str
    view: View


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.ctx.settings
    return settings


async def db(request: Request, work: Callable[[Session], T], *, write: bool = False) -> T:
    factory = request.app.ctx.factory

    def run() -> T:
        with (session_scope(factory) if write else read_scope(factory)) as session:
            return work(session)

    return await asyncio.to_thread(run)


def set_cookie(resp: HTTPResponse, settings: Settings, name: str, value: str, *, path: str = PATH,
               max_age: int | None = None, same_site: str = "Lax") -> None:
    resp.cookies[name] = value
    cookie = resp.cookies[name]
    cookie["path"] = path
    cookie["httponly"] = True
    cookie["samesite"] = same_site
    if settings.web_cookie_secure:
        cookie["secure"] = True
    if max_age is not None:
        cookie["max-age"] = max_age


def clear_cookie(resp: HTTPResponse, settings: Settings, name: str, *, path: str = PATH) -> None:
    set_cookie(resp, settings, name, "", path=path, max_age=0)


def new_pre_token() -> str:
    return secrets.token_urlsafe(24)


def pre_token_ok(request: Request) -> bool:
    presented, expected = request.form.get("csrf") or "", request.cookies.get(PRE_COOKIE) or ""
    return bool(expected) and hmac.compare_digest(presented, expected)


async def who(request: Request, *, post: bool = False) -> Who:
    """The signed-in person with what they see; Refused(401) without a live session, Refused(403)
    for a POST without the session's CSRF token."""
    settings = settings_of(request)
    cookie = request.cookies.get(COOKIE)
    presented = request.form.get("csrf") if post else None

    def work(session: Session) -> Who | str:
        row = logins.current(session, cookie, idle_minutes=settings.web_idle_minutes)
        if row is None:
            return "web.need_login"
        if post and not logins.csrf_ok(row, presented):
            return "web.csrf_failed"
        person = session.get(Person, row.person_id)
        if person is None:
            return "web.need_login"
        view = view_of(session, person)
        if view.empty:  # every web role taken away since the sign-in
            return "web.need_login"
        return Who(person.id, person.display_name, row.csrf_token, view)

    found = await db(request, work, write=True)
    if isinstance(found, str):
        raise Refused(401 if found == "web.need_login" else 403, found)
    return found
