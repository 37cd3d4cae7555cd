"""The `gridbot` command: operator tasks on the registry, routing and tickets; the offline chat."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import select

from core import audit
from core.baodao import ledger as baodao_ledger
from core.config import get_settings
from core.consult import figures as consult_figures
from core.db import make_engine, make_session_factory, session_scope, trial_scope
from core.duties import demo as demo_schedule
from core.lists import figures as lists_figures
from core.migrate import upgrade
from core.models import Building, Community, Grid, Incident, Person, Ticket
from core.open311 import keys as open311_keys
from core.places.router import Router
from core.registry import demo as demo_registry
from core.registry import grants
from core.registry.importer import ImportFailed, import_registry
from core.secret import SecretError
from core.spaces import figures as space_figures
from core.tickets import rates
from core.tickets.categories import sync_categories

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
route_app = typer.Typer(no_args_is_help=True, help="Which grid does a place belong to?")
app.add_typer(route_app, name="route")
apikey_app = typer.Typer(no_args_is_help=True, help="Open311 API keys of client systems (stored hashed).")
app.add_typer(apikey_app, name="apikey")
mobilise_app = typer.Typer(no_args_is_help=True, help="战时 mobilisation: incidents, their reports and events.")
app.add_typer(mobilise_app, name="mobilise")

SHELL_USER = 700000101  # a resident id the demo registry does not use: not yet bound


def _factory():
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return make_session_factory(make_engine(settings.database_url))


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema and load the categories."""
    factory = _factory()
    upgrade(factory.kw["bind"])
    with session_scope(factory) as session:
        changed = sync_categories(session)
    typer.echo(f"database at head; categories changed: {changed}")


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="YAML, CSV or GeoJSON files, or directories of them.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report, change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load streets, communities, grids, buildings, landmarks, people and branches.

    Everything is validated first; on any problem nothing is changed and each
    problem is printed as FILE:LINE: message.
    """
    factory = _factory()
    try:
        with (trial_scope(factory) if dry_run else session_scope(factory)) as session:
            report = import_registry(session, paths)
    except ImportFailed as failed:
        for problem in failed.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"import failed: {len(failed.problems)} problem(s); nothing was changed", err=True)
        raise typer.Exit(1) from None
    if as_json:
        _echo_json(report.as_dict())
    else:
        verb = "would change" if dry_run else "changed"
        typer.echo(f"import ok: {verb} {report.changes} record(s)")
        for section in sorted(set(report.created) | set(report.updated) | set(report.unchanged)):
            typer.echo(f"  {section}: {report.created.get(section, 0)} created, "
                       f"{report.updated.get(section, 0)} updated, {report.unchanged.get(section, 0)} unchanged")


@app.command()
def demo() -> None:
    """Migrate, then load the categories and the demo community (idempotent)."""
    factory, report = demo_registry.prepare(_factory().kw["bind"])
    with session_scope(factory) as session:
        calendar = demo_schedule.schedule(session, tz=get_settings().tz)
    typer.echo(f"demo community loaded: {report.changes} change(s)")
    if calendar.branches:
        typer.echo(f"demo calendar: {calendar.events} session(s) and {calendar.shifts} shift(s) "
                   f"for {calendar.branches} branch(es), {calendar.check_ins} past check-in(s)")


def _router() -> Router:
    with session_scope(_factory()) as session:
        return Router.from_session(session)


@route_app.command("building")
def route_building(code: str) -> None:
    """Route a building code to its grid."""
    _print_route(_router().by_building(code))


@route_app.command("point")
def route_point(lat: float, lon: float) -> None:
    """Route a latitude/longitude to the grid whose polygon covers it."""
    _print_route(_router().by_point(lat, lon))


@route_app.command("text")
def route_text(
    text: str,
    community: Annotated[str | None, typer.Option(help="Community code to prefer (the resident's).")] = None,
) -> None:
    """Route a Chinese place description (3号楼, 5栋2单元, 和平小区东门…)."""
    _print_route(_router().by_text(text, community))


def _print_route(result) -> None:
    _echo_json(result.as_dict())
    if result.status.value != "matched":
        raise typer.Exit(3)


@app.command()
def tickets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines' array.")] = False,
    status: Annotated[str | None, typer.Option(help="Only tickets in this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
) -> None:
    """List tickets: number, category, grid code, building, status, created."""
    settings = get_settings()
    with session_scope(_factory()) as session:
        query = (
            select(Ticket, Grid.code, Building.code)
            .outerjoin(Grid, Grid.id == Ticket.grid_id)
            .outerjoin(Building, Building.id == Ticket.building_id)
            .order_by(Ticket.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(Ticket.status == status)
        rows = [
            {
                "number": t.number,
                "category": t.category_code,
                "grid": grid_code,
                "building": building_code,
                "status": t.status.value,
                "created": t.created_at.astimezone(settings.tz).isoformat(timespec="seconds"),
            }
            for t, grid_code, building_code in session.execute(query)
        ]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['number']}  {row['status']:<9} {row['category']:<20} "
                   f"{row['grid'] or '-':<10} {row['building'] or '-':<12} {row['created']}")
    if not rows:
        typer.echo("no tickets", err=True)


def _month(value: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first day 00:00, next month's first day 00:00) in the local zone, for "2026-12"."""
    try:
        first = datetime.strptime(value, "%Y-%m").replace(tzinfo=tz)
    except ValueError:
        typer.echo(f"stats: --month must be a month like 2026-12, not {value!r}", err=True)
        raise typer.Exit(2) from None
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return first, following


def _pct(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"


@app.command()
def stats(
    month: Annotated[str, typer.Option("--month", help="The month, e.g. 2026-12 (local time).")],
    community: Annotated[str | None, typer.Option(help="Only this community's grids (its code).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The three rates (响应率, 解决率, 满意率) and the handlers' on-time rate per grid, from the events
    (definitions: docs/rates.md); then 双报到: registered 在职党员 and their service hours per grid
    and community (core/baodao/ledger.py); 三张清单: resources, needs, projects and completed
    projects per community and street (core/lists/figures.py); 共享空间: bookings, hours booked, their
    share of the opening hours, no-shows and cancellations per space (core/spaces/figures.py)."""
    settings = get_settings()
    start, end = _month(month, settings.tz)
    with session_scope(_factory()) as session:
        query = select(Grid).order_by(Grid.code)
        community_id: int | None = None
        if community is not None:
            found = session.scalar(select(Community).where(Community.code == community))
            if found is None:
                typer.echo(f"stats: unknown community {community!r}", err=True)
                raise typer.Exit(2)
            community_id = found.id
            query = query.where(Grid.community_id == found.id)
        grids = list(session.scalars(query))
        per_grid = rates.figures(session, start, end, [g.id for g in grids] if community is not None else None)
        names: dict[int | None, tuple[str | None, str | None]] = {g.id: (g.code, g.name) for g in grids}
        # 双报到: registered 在职党员 and their service hours (core/baodao/ledger.py)
        dual_grids, dual_communities = baodao_ledger.ledger(session, start, end, community_id)
    rows = [{"grid": names.get(gid, (None, None))[0], "name": names.get(gid, (None, None))[1], **fig.as_dict()}
            for gid, fig in sorted(per_grid.items(), key=lambda kv: names.get(kv[0], ("~", None))[0] or "~")]
    everything = rates.total(per_grid).as_dict()
    with session_scope(_factory()) as session:  # 议事 (core/consult/figures.py)
        held = consult_figures.figures(session, start, end, [g.id for g in grids] if community is not None else None)
    baodao = {"grids": [e.as_dict() for e in dual_grids], "communities": [e.as_dict() for e in dual_communities]}
    with session_scope(_factory()) as session:  # 三张清单 (core/lists/figures.py)
        list_communities, list_streets = lists_figures.counts(session, start, end, community_id)
    lists = {"communities": [e.as_dict() for e in list_communities], "streets": [e.as_dict() for e in list_streets]}
    with session_scope(_factory()) as session:  # 共享空间 (core/spaces/figures.py)
        used = space_figures.per_space(session, start, end, settings.tz, community_id)
    if as_json:
        _echo_json({"month": month, "community": community, "total": everything, "grids": rows,
                    "consultations": held.as_dict(), "baodao": baodao, "lists": lists,
                    "spaces": [u.as_dict() for u in used]})
        return
    typer.echo(f"{'grid':<12} {'filed':>5} {'响应率':>7} {'办结率':>7} {'解决率':>7} {'满意率':>7} {'overdue':>7}")
    for row in [*rows, {**everything, "grid": "total"}]:
        typer.echo(f"{row['grid'] or '-':<12} {row['filed']:>5} {_pct(row['response_rate']):>8} "
                   f"{_pct(row['resolve_rate']):>8} {_pct(row['solved_rate']):>8} "
                   f"{_pct(row['satisfaction_rate']):>8} {row['overdue']:>7}")
    typer.echo(f"议事 held {held.held}, participation {_pct(held.participation_rate)} "
               f"({held.participants}/{held.eligible}); proposals {held.proposals}, on the agenda {held.on_agenda}")
    typer.echo(f"\n双报到 {'grid/community':<14} {'members':>7} {'shift h':>8} {'tickets':>7} {'hours':>7}")
    for entry in [*dual_grids, *dual_communities]:
        typer.echo(f"       {entry.code:<14} {entry.members:>7} {entry.shift_hours:>8.1f} {entry.tickets:>7} "
                   f"{entry.hours:>7.1f}")
    typer.echo(f"\n三张清单 {'community/street':<14} {'resources':>9} {'needs':>5} {'projects':>8} {'completed':>9}")
    for counted in [*list_communities, *list_streets]:
        typer.echo(f"         {counted.code:<14} {counted.resources:>9} {counted.needs:>5} {counted.projects:>8} "
                   f"{counted.completed:>9}")
    typer.echo(f"\n共享空间 {'space':<14} {'bookings':>8} {'hours':>7} {'open h':>7} {'share':>7} {'no-shows':>8} "
               f"{'cancelled':>9}")
    for u in used:
        typer.echo(f"         {u.code:<14} {u.bookings:>8} {u.hours:>7.1f} {u.open_hours:>7.0f} {_pct(u.share):>7} "
                   f"{u.no_shows:>8} {u.cancelled:>9}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


@app.command()
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    stuck_after: Annotated[int, typer.Option(min=1, help="Seconds after which a row that should "
                                                         "have moved on counts as stuck.")] = 300,
) -> None:
    """The queues (inbox, outbox, due reminders, Telegram updates), the scheduler's leader and
    lag, and Redis when REDIS_URL is set: the figures of the bot's /metrics on one screen.

    Exit status 0 when all is well, 1 when any inbox or outbox row failed, 3 when nothing
    failed but something is stuck: a queue, no scheduler leader, the scheduler lagging, Redis
    unreachable (see core/health.py). Counts and ages only: no texts, no people.
    """
    from datetime import timedelta

    from core.health import check

    with session_scope(_factory()) as session:
        state = check(session, stuck_after=timedelta(seconds=stuck_after),
                      redis_url=get_settings().redis_url)
    if as_json:
        _echo_json(state.as_dict())
    else:
        typer.echo(f"{'queue':<20} {'count':>7} {'oldest':>8} {'stuck':>6}")
        for q in state.queues:
            typer.echo(f"{q.name:<20} {q.count:>7} {_duration(q.oldest_seconds):>8} {q.stuck:>6}")
        leader = state.leader.holder or "none" if state.leader.known else "the bot process (SQLite)"
        typer.echo(f"scheduler leader: {leader}; lag {_duration(state.scheduler_lag_seconds)}")
        if state.redis is not None:
            typer.echo(f"redis: {state.redis}")
        verdict = state.as_dict()["status"]
        typer.echo(f"status: {verdict}" + (f" ({'; '.join(state.problems)})" if state.problems else ""))
    raise typer.Exit(state.exit_status)


StreetOption = Annotated[str | None, typer.Option(help="Street code (street_admin; commander).")]
ScopeOption = Annotated[str | None, typer.Option(help="Community code (community_admin, commander; resident/volunteer).")]
GridOption = Annotated[str | None, typer.Option(help="Grid code (grid_worker; resident/volunteer).")]
BranchOption = Annotated[str | None, typer.Option(help="Branch code (secretary, member; resident/volunteer).")]


def _change_role(give: bool, person: str, role: str, community: str | None, grid: str | None,
                 branch: str | None, street: str | None = None) -> None:
    with session_scope(_factory()) as session:
        try:
            target = grants.resolve(session, person, role, community=community, grid=grid, branch=branch,
                                    street=street)
            changed = (grants.grant if give else grants.revoke)(session, target, actor=None)
        except grants.GrantError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        who = target.person.code or f"telegram {target.person.telegram_id}"
        summary = f"{who} {target.role.value} @ {target.where}"
    if give:
        typer.echo(f"granted: {summary}" if changed else f"unchanged: {summary} was already held")
        return
    if not changed:
        typer.echo(f"nothing to revoke: {summary} is not held", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked: {summary}")


@app.command()
def grant(
    person: Annotated[str, typer.Argument(help="Registry code (P-0001) or Telegram id.")],
    role: Annotated[str, typer.Argument(help="resident, volunteer, member, secretary, grid_worker, "
                                             "community_admin, street_admin, commander (战时 指挥长, on top of "
                                             "community_admin --community or street_admin --street) or operator.")],
    community: ScopeOption = None,
    grid: GridOption = None,
    branch: BranchOption = None,
    street: StreetOption = None,
) -> None:
    """Give PERSON a ROLE where it applies (audited as role.grant). Exit 2 on a bad request."""
    _change_role(True, person, role, community, grid, branch, street)


@app.command()
def revoke(
    person: Annotated[str, typer.Argument(help="Registry code (P-0001) or Telegram id.")],
    role: Annotated[str, typer.Argument(help="The role to take away.")],
    community: ScopeOption = None,
    grid: GridOption = None,
    branch: BranchOption = None,
    street: StreetOption = None,
) -> None:
    """Take a ROLE away from PERSON (audited as role.revoke). Exit 1 if it was not held, 2 on a bad request."""
    _change_role(False, person, role, community, grid, branch, street)


def _local_day(value: str | None, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint="--since") from None
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)


@app.command("audit")
def audit_(
    since: Annotated[str | None, typer.Option(help="Only entries from this local day on (YYYY-MM-DD).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. ticket.contact, role.grant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
) -> None:
    """Who saw a resident's contact, who broadcast, who granted roles: the audit log, newest first."""
    tz = get_settings().tz
    start = _local_day(since, tz)
    with session_scope(_factory()) as session:
        rows = []
        for entry in audit.entries(session, since=start, action=action, limit=limit):
            actor = session.get(Person, entry.actor_id) if entry.actor_id is not None else None
            rows.append({
                "at": entry.at.astimezone(tz).isoformat(timespec="seconds"),
                "actor": actor.display_name if actor is not None else None,
                "actor_code": actor.code if actor is not None else None,
                "action": entry.action,
                "subject": entry.subject,
                "detail": entry.detail,
            })
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        detail = json.dumps(row["detail"], ensure_ascii=False, sort_keys=True)
        typer.echo(f"{row['at']}  {row['actor'] or '(operator)'}  {row['action']}  {row['subject']}  {detail}")
    if not rows:
        typer.echo("no audit entries", err=True)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="The client system, e.g. city-app.")],
    community: Annotated[str | None, typer.Option(
        help="Community code whose triage queue gets this client's requests that no grid fits.")] = None,
) -> None:
    """Issue a key for client system NAME; it is printed once and only its hash is kept."""
    try:
        with session_scope(_factory()) as session:
            row, key = open311_keys.create(session, name, community)
            prefix = row.prefix
    except open311_keys.KeyError_ as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(key)
    typer.echo(f"key {name!r} created (starts with {prefix}); it is shown only now: give it to the client "
               "system, which sends it as api_key", err=True)


@apikey_app.command("list")
def apikey_list(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """Every key: name, first characters, community, created, revoked, uses (from the audit log)."""
    tz = get_settings().tz
    with session_scope(_factory()) as session:
        rows = [{"name": k.name, "prefix": k.prefix, "community": k.community,
                 "created": k.created_at.astimezone(tz).isoformat(timespec="seconds"),
                 "revoked": k.revoked_at.astimezone(tz).isoformat(timespec="seconds") if k.revoked_at else None,
                 "uses": k.uses} for k in open311_keys.listing(session)]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        state = f"revoked {row['revoked']}" if row["revoked"] else "live"
        typer.echo(f"{row['name']}  {row['prefix']}…  {row['community'] or '-'}  created {row['created']}  "
                   f"{state}  uses {row['uses']}")
    if not rows:
        typer.echo("no API keys", err=True)


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke the key NAME: from now on it is refused (403). Exit 1 if there is no such key."""
    try:
        with session_scope(_factory()) as session:
            open311_keys.revoke(session, name)
    except open311_keys.KeyError_ as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked: {name}")


@mobilise_app.command("list")
def mobilise_list(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """Every incident, newest first: id, kind, area, declared, closed, people called."""
    from core.mobilise import incidents

    tz = get_settings().tz
    with session_scope(_factory()) as session:
        rows = incidents.listing(session, tz)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        typer.echo(f"#{row['id']}  {row['kind']:<10} {row['area']}  declared {row['declared_at']}  "
                   f"{'closed ' + row['closed_at'] if row['closed_at'] else 'open'}  called {row['called']}")
    if not rows:
        typer.echo("no incidents", err=True)


@mobilise_app.command("report")
def mobilise_report(
    incident: Annotated[int, typer.Argument(help="The incident's number (#1 in chat).")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: one row per grid, per person on site, and the total.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The incident's report per grid: called, answered, on site, hours per person, tasks done (so far,
    while it is still open). Exit 1 for an unknown incident. The export is audited (mobilise.export)."""
    from core.mobilise import report

    tz = get_settings().tz
    now = datetime.now(timezone.utc)
    with session_scope(_factory()) as session:
        found = session.get(Incident, incident)
        if found is None:
            typer.echo(f"no incident #{incident}", err=True)
            raise typer.Exit(1)
        audit.record(session, None, "mobilise.export", f"incident:{incident}",
                     {"format": "csv" if as_csv else "json" if as_json else "text"})
        if as_csv:
            out = report.csv_text(session, found, None, now)
        elif as_json:
            out = json.dumps(report.as_dict(session, found, None, now), ensure_ascii=False, indent=2)
        else:
            out = report.report_text(session, found, None, now, tz)
    typer.echo(out.rstrip("\n"))


@mobilise_app.command("events")
def mobilise_events(
    incident: Annotated[int, typer.Argument(help="The incident's number.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Every step of the incident, oldest first: when, what, who, which grid and task."""
    from core.mobilise import incidents

    tz = get_settings().tz
    with session_scope(_factory()) as session:
        if session.get(Incident, incident) is None:
            typer.echo(f"no incident #{incident}", err=True)
            raise typer.Exit(1)
        rows = incidents.event_rows(session, incident, tz)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        detail = json.dumps(row["detail"], ensure_ascii=False, sort_keys=True)
        typer.echo(f"{row['at']}  {row['kind']:<12} {row['actor'] or '-'}  {row['grid'] or '-'}  "
                   f"{'#' + str(row['task']) if row['task'] else '-'}  {detail}")


@app.command()
def schedule(
    path: Annotated[Path, typer.Argument(help="A YAML or CSV plan (see core/duties/plan.py).")],
    branch: Annotated[str | None, typer.Option(help="Branch code for items that name none.")] = None,
    as_person: Annotated[str | None, typer.Option("--as", help="Registry code of who schedules "
                                                  "(default: the branch's secretary).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every item, schedule nothing.")] = False,
) -> None:
    """Schedule a year's sessions and shifts from a file; members are told, reminders follow.
    Exit 1 with FILE:LINE and the reason on the first bad item (then nothing is scheduled)."""
    from core.duties import plan as schedule_plan  # noqa: PLC0415 - reads times with jionlp, which loads slowly

    settings = get_settings()
    try:
        with session_scope(_factory()) as session:
            lines = schedule_plan.schedule_file(session, path, branch_code=branch, actor_code=as_person,
                                                now=datetime.now(timezone.utc), tz=settings.tz, dry_run=dry_run)
    except (schedule_plan.PlanError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in lines:
        typer.echo(line)
    typer.echo(f"{'checked' if dry_run else 'scheduled'}: {len(lines)}")


@app.command()
def shell(
    as_user: Annotated[int, typer.Option("--as", min=1, help="Telegram user id to chat as (switch with @as).")] = SHELL_USER,
    live: Annotated[bool, typer.Option("--live", help="Also run the broadcast sender and the duty scheduler, "
                                                      "and show what they send as it arrives (make run).")] = False,
) -> None:
    """Chat with the bot offline: the same handlers, Rasa and database, no Telegram.

    A line is a text message; @press N presses button N of the last buttons shown,
    @location LAT LON shares a location, @photo sends a photo (the rest of the line is its
    caption), @as USER_ID switches user, # starts a comment. Without a terminal it reads
    a script from stdin, prints every reply and exits 0 at the end of input.
    """
    import signal

    from bot.shell import run_shell, schema_problem

    settings = get_settings()
    level = logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING  # keep the chat readable
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = make_engine(settings.database_url)
    problem = schema_problem(engine)
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(2)
    try:
        settings.shared_secret()  # what the servers check (core/secret.py)
    except SecretError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if settings.telegram_bot_token:
        typer.echo("注意：TELEGRAM_BOT_TOKEN 已设置。shell 不连 Telegram，但会发送数据库发件箱里待发的消息；"
                   "不要在机器人运行时对同一个数据库使用它。", err=True)

    def on_stop(_signum: int, _frame: object) -> None:
        # Ctrl-C or the supervisor's SIGTERM: stop once, cleanly; often both arrive.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    code = run_shell(settings, make_session_factory(engine), as_user, sys.stdin, sys.stdout,
                     interactive=sys.stdin.isatty(), live=live)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
