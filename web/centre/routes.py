"""The command centre at /centre: sign-in by a /web link, the map, the ticket list and page
(督办, the audited contact, 改派/接手/合并 where core offers them), the figures, 共建共治 (双报到,
三张清单, 议事), 共享空间 (bookings, the booking form, 批准/拒绝/未到), 战时 mobilisation
(web/centre/mobilise.py), CSV exports.

Server-rendered with Jinja2 (web/centre/templates), texts from the catalogue (`web.*`); the
map and charts are ECharts, served from web/centre/static with the app. Every page checks the
session; every POST its CSRF token; what a page shows is the grids the person holds
(core.centre.scope). A page polls a small JSON every 5 s and reloads (or redraws) on a change,
so what is done in chat shows here within 10 s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import Request, Sanic, response
from sanic.response import HTTPResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed
from core.access.tickets import check
from core.centre import cogov, figures, kept, listing, logins
from core.centre import spaces as centre_spaces
from core.centre.listing import Filters
from core.messages import t
from core.models import (
    BookingSource,
    BookingStatus,
    Grid,
    Person,
    Ticket,
    TicketEvent,
    TicketStatus,
    utcnow,
)
from core.spaces import booking as space_booking
from core.spaces import clock as space_clock
from core.spaces import views as space_views
from core.spaces.rules import Rules as SpaceRules
from core.tickets import service, transfer
from core.tickets.rate_reports import month_of
from web.centre import exports
from web.centre import mobilise as mobilise_pages
from web.centre.auth import (
    COOKIE,
    PATH,
    PRE_COOKIE,
    Refused,
    Who,
    clear_cookie,
    db,
    new_pre_token,
    pre_token_ok,
    set_cookie,
    settings_of,
    who,
)
from web.open311.routes import _download  # the photo fetch, the bot's token kept in this process

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

def _pct(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else t("web.no_value")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(t=t, pct=_pct)
    return env


def _page(request: Request, name: str, status: int = 200, **values: Any) -> HTTPResponse:
    tz = settings_of(request).tz
    values.setdefault("who", None)

    def local(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return at.astimezone(tz).strftime(fmt) if at else t("web.no_value")

    html = request.app.ctx.centre_env.get_template(name).render(local=local, path=request.path, **values)
    resp = response.html(html, status=status)
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the login URL carries its token
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _message(request: Request, key: str, status: int) -> HTTPResponse:
    return _page(request, "message.html", status=status, text=t(key))


# -- signing in and out --------------------------------------------------------------


async def login_page(request: Request, token: str) -> HTTPResponse:
    """The page behind the link: a button. A GET (a link preview, a scanner) redeems nothing."""
    pre = new_pre_token()
    resp = _page(request, "login.html", token=token, csrf=pre)
    set_cookie(resp, settings_of(request), PRE_COOKIE, pre, path=f"{PATH}/login", max_age=900, same_site="Strict")
    return resp


async def login(request: Request) -> HTTPResponse:
    if not pre_token_ok(request):
        return _message(request, "web.csrf_failed", 403)
    token = request.form.get("token") or ""
    signed = await db(request, lambda s: logins.redeem(s, token), write=True)
    if signed is None:
        return _message(request, "web.login_failed", 403)
    resp = response.redirect(f"{PATH}/", status=303)
    settings = settings_of(request)
    set_cookie(resp, settings, COOKIE, signed.cookie)
    clear_cookie(resp, settings, PRE_COOKIE, path=f"{PATH}/login")
    return resp


async def logout(request: Request) -> HTTPResponse:
    await who(request, post=True)
    cookie = request.cookies.get(COOKIE)
    await db(request, lambda s: logins.end(s, cookie), write=True)
    resp = _message(request, "web.signed_out", 200)
    clear_cookie(resp, settings_of(request), COOKIE)
    return resp


# -- the map -------------------------------------------------------------------------


async def home(request: Request) -> HTTPResponse:
    me = await who(request)
    tz = settings_of(request).tz

    def work(s: Session) -> dict[str, Any]:
        return figures.grid_map(s, me.view, tz, utcnow())

    data = await db(request, work)
    return _page(request, "map.html", who=me, data=data)


async def map_json(request: Request) -> HTTPResponse:
    me = await who(request)
    tz = settings_of(request).tz
    data = await db(request, lambda s: figures.grid_map(s, me.view, tz, utcnow()))
    return response.json(data, ensure_ascii=False)


async def version_json(request: Request) -> HTTPResponse:
    """The newest event in view (or of one ticket, ?ticket=<number>): what the pages poll."""
    me = await who(request)
    number = request.args.get("ticket")

    def work(s: Session) -> int | None:
        if number:
            ticket = listing.find(s, me.view, number)
            return listing.last_change(s, me.view, ticket.id) if ticket is not None else None
        return listing.last_change(s, me.view)

    last = await db(request, work)
    if last is None:
        return response.json({"error": "not found"}, status=404)
    return response.json({"last": last})


# -- tickets -------------------------------------------------------------------------


def _filters(request: Request) -> Filters:
    return Filters.parse({k: request.args.get(k) or "" for k in ("grid", "category", "status", "overdue",
                                                                  "from", "to", "q")})


def _grids(s: Session, me: Who) -> list[tuple[int, str]]:
    return list(s.execute(select(Grid.id, Grid.name).where(Grid.id.in_(sorted(me.view.grid_ids)))
                          .order_by(Grid.code)).tuples())


async def ticket_list(request: Request) -> HTTPResponse:
    me = await who(request)
    tz, filters = settings_of(request).tz, _filters(request)
    page_no = int(request.args.get("page") or 1) if (request.args.get("page") or "1").isdigit() else 1

    moved = request.args.get("moved") or ""

    def work(s: Session) -> tuple[listing.Page, list[tuple[int, str]], list[tuple[str, str]], int, str | None]:
        return (listing.page_of(s, me.view, filters, tz, page_no), _grids(s, me), listing.categories(s),
                listing.last_change(s, me.view), _moved_note(s, me, moved) if moved else None)

    page, grids, categories, last, note = await db(request, work)
    query = filters.query_string()
    return _page(request, "tickets.html", who=me, page=page, grids=grids, categories=categories, f=filters, note=note,
                 statuses=[(st, t(f"status.{st}")) for st in
                           ("new", "accepted", "claimed", "resolved", "closed", "escalated", "triage",
                            "rejected", "duplicate", "reopened", "withdrawn")],
                 query=urlencode(query), last=last,
                 page_url=lambda n: f"{PATH}/tickets?{urlencode({**query, 'page': n})}")


async def tickets_csv(request: Request) -> HTTPResponse:
    me = await who(request)
    tz, filters = settings_of(request).tz, _filters(request)
    rows = await db(request, lambda s: listing.all_rows(s, me.view, filters, tz))
    return exports.tickets(rows, tz)


def _moved_note(s: Session, me: Who, number: str) -> str | None:
    """After 改派 took a ticket out of the person's view: where it went, only if they moved it."""
    ticket_id = s.scalar(select(Ticket.id).where(Ticket.number == number))
    last = s.scalar(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "transfer")
                    .order_by(TicketEvent.id.desc()).limit(1)) if ticket_id is not None else None
    if last is None or last.actor_id != me.person_id:
        return None
    return t("web.transferred", number=number, grid=transfer.grid_name(s, (last.detail or {}).get("to")))


def _ticket_values(s: Session, me: Who, number: str) -> dict[str, Any] | None:
    ticket = listing.find(s, me.view, number)
    if ticket is None:
        return None
    person = s.get(Person, me.person_id)
    may = {}
    for action, key in (("contact", "contact"), ("urge", "urge"), ("transfer", "transfer"), ("take", "take_over"),
                        ("merge", "merge")):
        try:
            check(s, person, action, ticket)
            may[key] = True
        except NotAllowed:
            may[key] = False
    # 接手 and 合并 where their state allows (core.tickets.transfer says why not, if pressed anyway)
    may["take_over"] = may["take_over"] and ticket.status in transfer.TAKEABLE and not (
        ticket.status is TicketStatus.claimed and ticket.claimed_by_id == me.person_id)
    may["merge"] = may["merge"] and ticket.status in transfer.MERGEABLE
    claimer = s.get(Person, ticket.claimed_by_id) if ticket.claimed_by_id else None
    d = listing.detail(s, ticket)
    grids: list[tuple[int, str]] = []
    if may["transfer"]:  # where core says this ticket may go
        try:
            grids = [(g.id, g.name) for g, _community in transfer.targets(s, ticket.id, person)[1]]
        except NotAllowed:
            may["transfer"] = False
    s.expunge(ticket)  # read after the session: its loaded values, not a refresh
    return {"d": d, "may": may, "claimer": claimer.display_name if claimer else None, "grids": grids}


async def ticket_page(request: Request, number: str, *, contact: str | None = None, note: str | None = None,
                      me: Who | None = None, status: int = 200) -> HTTPResponse:
    me = me or await who(request)
    values = await db(request, lambda s: _ticket_values(s, me, number))
    if values is None:
        return _message(request, "web.not_found", 404)
    done = {"urged": "web.urged", "urged_again": "web.urged_again", "done": "web.done"}.get(
        request.args.get("done") or "")
    return _page(request, "ticket.html", status=status, who=me, contact=contact,
                 note=note or (t(done) if done else None), **values)


_MISSING = object()  # the ticket is not in the person's view


async def _act_on(request: Request, me: Any, number: str, act: Callable[[Session, Ticket, Person | None], Any]
                  ) -> tuple[Any, HTTPResponse | None]:
    """Run `act(s, ticket, person)` on a ticket of the person's view in one writing transaction:
    (its result, None), or (None, the page to answer with) when the ticket is not theirs to see
    (404) or the act was refused (the ticket's page with the reason, 403; nothing changed)."""
    def work(s: Session) -> Any:
        ticket = listing.find(s, me.view, number)
        return _MISSING if ticket is None else act(s, ticket, s.get(Person, me.person_id))

    try:
        result = await db(request, work, write=True)
    except NotAllowed as exc:
        return None, await ticket_page(request, number, note=str(exc), me=me, status=403)
    if result is _MISSING:
        return None, _message(request, "web.not_found", 404)
    return result, None


async def ticket_contact(request: Request, number: str) -> HTTPResponse:
    """The reporter's contact, on a press, through service.contact_details (which audits it)."""
    me = await who(request, post=True)
    text, page = await _act_on(request, me, number,
                               lambda s, ticket, person: service.contact_details(s, ticket.id, person))
    return page or await ticket_page(request, number, contact=text, me=me)


async def ticket_urge(request: Request, number: str) -> HTTPResponse:
    """督办: service.urge, the same check and event as the chat's button."""
    me = await who(request, post=True)
    urged, page = await _act_on(request, me, number, lambda s, ticket, person: service.urge(s, ticket.id, person))
    return page or response.redirect(f"{PATH}/tickets/{number}?done={'urged' if urged else 'urged_again'}",
                                     status=303)


async def ticket_change(request: Request, number: str, what: str) -> HTTPResponse:
    """改派 / 接手 / 合并 through core.tickets.transfer: the chat buttons' checks, events and notices.
    A refusal is shown on the ticket's page in Chinese; nothing is changed then (one transaction)."""
    me = await who(request, post=True)
    if what not in ("transfer", "take_over", "merge"):
        return _message(request, "web.not_found", 404)
    tz = settings_of(request).tz
    form = {k: (request.form.get(k) or "").strip() for k in ("grid", "reason", "original")}

    def act(s: Session, ticket: Ticket, actor: Person | None) -> bool:
        """True: the ticket is still in the person's view afterwards."""
        if what == "transfer":
            if not form["grid"].isdigit():
                raise NotAllowed(t("transfer.deny.no_grid"))
            ticket = transfer.transfer(s, ticket.id, actor, int(form["grid"]), form["reason"], tz=tz)
        elif what == "take_over":
            ticket = transfer.take_over(s, ticket.id, actor)
        else:
            ticket, _original = transfer.merge(s, ticket.id, actor, form["original"], tz=tz)
        return me.view.sees(ticket)

    seen, page = await _act_on(request, me, number, act)
    if page is not None:
        return page
    if not seen:  # 改派 out of the person's grids: their list, with where it went
        return response.redirect(f"{PATH}/tickets?{urlencode({'moved': number})}", status=303)
    return response.redirect(f"{PATH}/tickets/{number}?done=done", status=303)


async def ticket_photo(request: Request, number: str, index: str) -> HTTPResponse:
    me = await who(request)
    settings = settings_of(request)
    file_id = await db(request, lambda s: (lambda tk: listing.photo_file_id(tk, int(index)) if tk else None)(
        listing.find(s, me.view, number))) if index.isdigit() else None
    if file_id is None or not settings.telegram_bot_token:
        return response.text("", status=404)
    media_dir: Path = request.app.ctx.media_dir
    path = media_dir / (hashlib.sha256(file_id.encode()).hexdigest() + ".jpg")
    if not path.exists():
        content = await _download(settings, file_id)
        if content is None:
            return response.text("", status=404)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".part").write_bytes(content)
        path.with_suffix(".part").replace(path)
    resp = await response.file(str(path), mime_type="image/jpeg")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


# -- figures -------------------------------------------------------------------------


def _month(request: Request) -> datetime:
    tz = settings_of(request).tz
    start, _ = month_of(utcnow(), tz)
    given = request.args.get("month") or ""
    try:
        year, month = (int(part) for part in given.split("-"))
        return start.replace(year=year, month=month) if 2000 <= year <= 2100 and 1 <= month <= 12 else start
    except ValueError:
        return start


async def figures_page(request: Request) -> HTTPResponse:
    me = await who(request)
    tz, start = settings_of(request).tz, _month(request)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    keeper = kept.Keeper()

    def work(s: Session) -> dict[str, Any]:
        return {"table": figures.month_table(s, me.view, start, keeper),
                "trend": figures.trend(s, me.view, tz, start, keeper=keeper),  # the 12 months up to this one
                "overdue": figures.overdue_oldest(s, me.view), "by_category": figures.by_category(s, me.view, start, end)}

    values = await db(request, work)
    if keeper.fresh:  # closed months computed now: kept for the next view, in a short write of their own
        await db(request, lambda s: kept.save(s, keeper.fresh), write=True)
    chart = {"trend": values["trend"], "by_category": values["by_category"]}
    return _page(request, "figures.html", who=me, month=start.strftime("%Y-%m"), chart=chart, **values)


async def rates_csv(request: Request) -> HTTPResponse:
    me = await who(request)
    start = _month(request)
    keeper = kept.Keeper()
    table = await db(request, lambda s: figures.month_table(s, me.view, start, keeper))
    if keeper.fresh:
        await db(request, lambda s: kept.save(s, keeper.fresh), write=True)
    return exports.rates(table, start)


# -- 共建共治 -------------------------------------------------------------------------


async def cogov_page(request: Request) -> HTTPResponse:
    """双报到, 三张清单, 议事 and the branches' 出席 / 补学 in the person's grids, this month (read-only)."""
    me = await who(request)
    tz = settings_of(request).tz
    now = utcnow()
    start, end = month_of(now, tz)

    def work(s: Session) -> cogov.Overview:
        return cogov.overview(s, me.view, s.get(Person, me.person_id), start, end, now.astimezone(tz).date(),
                              now=now, tz=tz)

    data = await db(request, work)
    return _page(request, "cogov.html", who=me, month=start.astimezone(tz).strftime("%Y-%m"), o=data)


# -- 共享空间 -------------------------------------------------------------------------


async def spaces_page(request: Request, *, note: str | None = None, status: int = 200,
                      me: Who | None = None) -> HTTPResponse:
    """The spaces of the person's communities, the next 7 days' bookings, the booking form; names
    of bookers to the spaces' managers only (audited, hence a writing scope)."""
    me = me or await who(request)
    tz, now = settings_of(request).tz, space_clock.now()
    data = await db(request, lambda s: centre_spaces.week(s, me.view, s.get(Person, me.person_id), now, tz),
                    write=True)
    done = {"booked": "web.spaces_booked", "pending": "web.spaces_pending", "done": "web.done"}.get(
        request.args.get("done") or "")
    return _page(request, "spaces.html", status=status, who=me, spaces=data, note=note or (t(done) if done else None))


async def _space_act(request: Request, me: Who, act: Callable[[Session, Person | None], Any]) -> tuple[Any, HTTPResponse | None]:
    """Run `act(s, person)` in one writing transaction: (its result, None), or (None, the page):
    404 outside the person's view, the spaces page with the reason when core refused (nothing changed)."""
    try:
        result = await db(request, lambda s: act(s, s.get(Person, me.person_id)), write=True)
    except space_booking.Taken as exc:
        others = "、".join(space_views.slot_day_text(slot, settings_of(request).tz) for slot in exc.alternatives)
        return None, await spaces_page(request, note=f"{exc} {t('web.spaces_next_free', slots=others or '-')}",
                                       status=409, me=me)
    except NotAllowed as exc:
        return None, await spaces_page(request, note=str(exc), status=403, me=me)
    if result is _MISSING:
        return None, _message(request, "web.not_found", 404)
    return result, None


async def space_book(request: Request, space_id: str) -> HTTPResponse:
    """The form: a free slot, the purpose, the people; core.spaces.booking.book decides, as in chat."""
    me = await who(request, post=True)
    settings = settings_of(request)
    form = {k: (request.form.get(k) or "").strip() for k in ("slot", "purpose", "people")}

    def act(s: Session, person: Person | None) -> Any:
        space = centre_spaces.in_view(s, me.view, int(space_id)) if space_id.isdigit() else None
        if space is None:
            return _MISSING
        start, end = centre_spaces.parse_slot(form["slot"])
        return space_booking.book(s, person, space.id, start=start, end=end, purpose=form["purpose"],
                                  people=centre_spaces.people_of(form["people"]), source=BookingSource.centre,
                                  rules=SpaceRules.of(settings), tz=settings.tz, now=space_clock.now()).status

    status, page = await _space_act(request, me, act)
    if page is not None:
        return page
    done = "pending" if status is BookingStatus.pending else "booked"
    return response.redirect(f"{PATH}/spaces?done={done}", status=303)


async def space_decide(request: Request, booking_id: str, what: str) -> HTTPResponse:
    """批准 / 拒绝 (with a reason) / 未到 on a booking of a space in view: the chat's checks."""
    me = await who(request, post=True)
    if what not in ("approve", "refuse", "noshow") or not booking_id.isdigit():
        return _message(request, "web.not_found", 404)
    settings, reason = settings_of(request), (request.form.get("reason") or "").strip()

    def act(s: Session, person: Person | None) -> Any:
        row = centre_spaces.booking_in_view(s, me.view, int(booking_id))
        if row is None:
            return _MISSING
        now, tz = space_clock.now(), settings.tz
        if what == "noshow":
            return space_booking.record_no_show(s, person, row.id, rules=SpaceRules.of(settings), tz=tz, now=now)
        return space_booking.decide(s, person, row.id, approve=what == "approve", reason=reason, tz=tz, now=now)

    _, page = await _space_act(request, me, act)
    return page or response.redirect(f"{PATH}/spaces?done=done", status=303)


# -- wiring --------------------------------------------------------------------------


def register(app: Sanic) -> None:
    app.ctx.centre_env = _environment()
    app.static(f"{PATH}/static", str(STATIC), name="centre_static")
    app.add_route(login_page, f"{PATH}/login/<token>", methods=["GET"], name="centre_login_page")
    app.add_route(login, f"{PATH}/login", methods=["POST"], name="centre_login")
    app.add_route(logout, f"{PATH}/logout", methods=["POST"], name="centre_logout")
    app.add_route(home, f"{PATH}/", methods=["GET"], name="centre_home")
    app.add_route(map_json, f"{PATH}/map.json", methods=["GET"], name="centre_map")
    app.add_route(version_json, f"{PATH}/version.json", methods=["GET"], name="centre_version")
    app.add_route(ticket_list, f"{PATH}/tickets", methods=["GET"], name="centre_tickets")
    app.add_route(tickets_csv, f"{PATH}/tickets.csv", methods=["GET"], name="centre_tickets_csv")
    app.add_route(ticket_page, f"{PATH}/tickets/<number>", methods=["GET"], name="centre_ticket")
    app.add_route(ticket_contact, f"{PATH}/tickets/<number>/contact", methods=["POST"], name="centre_contact")
    app.add_route(ticket_urge, f"{PATH}/tickets/<number>/urge", methods=["POST"], name="centre_urge")
    app.add_route(ticket_change, f"{PATH}/tickets/<number>/<what>", methods=["POST"], name="centre_change")
    app.add_route(ticket_photo, f"{PATH}/tickets/<number>/photo/<index>", methods=["GET"], name="centre_photo")
    app.add_route(figures_page, f"{PATH}/figures", methods=["GET"], name="centre_figures")
    app.add_route(cogov_page, f"{PATH}/cogov", methods=["GET"], name="centre_cogov")
    app.add_route(spaces_page, f"{PATH}/spaces", methods=["GET"], name="centre_spaces")
    app.add_route(space_book, f"{PATH}/spaces/<space_id>/book", methods=["POST"], name="centre_space_book")
    app.add_route(space_decide, f"{PATH}/spaces/bookings/<booking_id>/<what>", methods=["POST"],
                  name="centre_space_decide")
    app.add_route(rates_csv, f"{PATH}/rates.csv", methods=["GET"], name="centre_rates_csv")
    mobilise_pages.register(app, _page)  # 战时: /centre/mobilise, .json, /<id>/report.csv

    @app.exception(Refused)
    async def _refused(request: Request, exc: Refused) -> HTTPResponse:
        if request.path.endswith(".json") or request.path.endswith(".csv"):
            return response.json({"error": exc.key}, status=exc.status)
        return _message(request, exc.key, exc.status)
