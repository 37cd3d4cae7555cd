"""Who commands where, and an incident's area: the grids it covers, how it is named, who sees it.

A commander (core.access.permissions: the `commander` grant on top of an admin role) declares over
grids of the communities they command, a whole community, or the whole street when they command
every community of it (a street admin's grant). The area is kept as grids (IncidentGrid), so every
later question — who is called, where a task may go, which grids escalate — is about grids.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import NotAllowed, Scope, allowed, require, scope_of_grid
from core.messages import t
from core.models import AreaLevel, Community, Grid, Incident, IncidentGrid, Person, Street

DECLARE, COMMAND, ROLL = "mobilise.declare", "mobilise.command", "mobilise.roll"
NAMED_GRIDS = 3  # grids named in an area's label before "…等N个网格"


@dataclass(frozen=True)
class Area:
    level: AreaLevel
    street_id: int
    community_id: int | None  # None: the street, or grids of several communities
    grid_ids: tuple[int, ...]


def commanded(session: Session, person: Person | None) -> list[Community]:
    """The communities where `person` may declare, by code."""
    if person is None:
        return []
    return [c for c in session.scalars(select(Community).order_by(Community.code))
            if allowed(session, person, DECLARE, Scope(community_id=c.id))]


def streets_commanded(session: Session, person: Person | None) -> list[Street]:
    """The streets all of whose communities `person` commands (a whole-street incident)."""
    mine = {c.id for c in commanded(session, person)}
    out = []
    for street in session.scalars(select(Street).order_by(Street.code)):
        ids = set(session.scalars(select(Community.id).where(Community.street_id == street.id)))
        if ids and ids <= mine:
            out.append(street)
    return out


def check_declarer(session: Session, person: Person | None) -> list[Community]:
    """The communities `person` commands; NotAllowed (the permission's refusal) when none."""
    communities = commanded(session, person)
    if not communities:
        require(session, person, DECLARE, Scope())  # raises with the Chinese reason
    return communities


def resolve(session: Session, person: Person | None, level: AreaLevel, ident: int | None = None,
            grid_ids: list[int] | None = None) -> Area:
    """The area `person` names: ("street", street id), ("community", community id) or ("grids", ids).
    NotAllowed unless they command every community it touches."""
    if level is AreaLevel.street:
        street = session.get(Street, ident) if ident is not None else None
        if street is None or street.id not in {s.id for s in streets_commanded(session, person)}:
            raise NotAllowed(t("mobilise.deny.area"))
        grids = list(session.scalars(select(Grid.id).join(Community, Community.id == Grid.community_id)
                                     .where(Community.street_id == street.id).order_by(Grid.code)))
        return Area(level, street.id, None, tuple(grids))
    if level is AreaLevel.community:
        community = session.get(Community, ident) if ident is not None else None
        if community is None:
            raise NotAllowed(t("mobilise.deny.area"))
        require(session, person, DECLARE, Scope(community_id=community.id))
        grids = list(session.scalars(select(Grid.id).where(Grid.community_id == community.id).order_by(Grid.code)))
        return Area(level, community.street_id, community.id, tuple(grids))
    rows = list(session.scalars(select(Grid).where(Grid.id.in_(grid_ids or [])).order_by(Grid.code)))
    if not rows:
        raise NotAllowed(t("mobilise.deny.no_grids"))
    communities = {g.community_id for g in rows}
    for community_id in sorted(communities):
        require(session, person, DECLARE, Scope(community_id=community_id))
    streets = {session.get(Community, c).street_id for c in communities}  # type: ignore[union-attr]
    if len(streets) != 1:
        raise NotAllowed(t("mobilise.deny.area"))
    return Area(level, streets.pop(), next(iter(communities)) if len(communities) == 1 else None,
                tuple(g.id for g in rows))


def grid_named(session: Session, text: str, among: list[int]) -> Grid | None:
    """The grid a typed name stands for (its name, or its name without 网格), None if none."""
    words = "".join(text.split())
    for grid in session.scalars(select(Grid).order_by(Grid.code)):
        if words in (grid.name, grid.code, grid.name.removesuffix("网格")) and (not among or grid.id in among):
            return grid
    return None


def find(session: Session, incident_id: int | None) -> Incident:
    incident = session.get(Incident, incident_id) if incident_id is not None else None
    if incident is None:
        raise NotAllowed(t("mobilise.deny.gone"))
    return incident


def open_incident(session: Session, incident_id: int | None) -> Incident:
    """The incident if it is still going on; NotAllowed (it has ended) if it was closed."""
    incident = find(session, incident_id)
    if incident.closed_at is not None:
        raise NotAllowed(t("mobilise.deny.closed"))
    return incident


def grid_ids(session: Session, incident_id: int) -> list[int]:
    return list(session.scalars(select(IncidentGrid.grid_id).join(Grid, Grid.id == IncidentGrid.grid_id)
                                .where(IncidentGrid.incident_id == incident_id).order_by(Grid.code)))


def grids(session: Session, incident_id: int) -> list[Grid]:
    return list(session.scalars(select(Grid).join(IncidentGrid, IncidentGrid.grid_id == Grid.id)
                                .where(IncidentGrid.incident_id == incident_id).order_by(Grid.code)))


def communities_of(session: Session, incident_id: int) -> list[int]:
    return sorted(set(session.scalars(select(Grid.community_id).join(IncidentGrid, IncidentGrid.grid_id == Grid.id)
                                      .where(IncidentGrid.incident_id == incident_id))))


def require_command(session: Session, person: Person | None, incident: Incident) -> Person:
    """`person` if they command every community of the incident's area (post tasks, close)."""
    communities = communities_of(session, incident.id)
    for community_id in communities or [incident.community_id or 0]:
        person = require(session, person, COMMAND, Scope(community_id=community_id))
    assert person is not None
    return person


def commands(session: Session, person: Person | None, incident: Incident) -> bool:
    try:
        require_command(session, person, incident)
    except NotAllowed:
        return False
    return True


def visible_grids(session: Session, person: Person | None, incident_id: int) -> list[int]:
    """The incident's grids whose roll `person` may see (a commander all, a leader theirs)."""
    if person is None:
        return []
    return [g for g in grid_ids(session, incident_id) if allowed(session, person, ROLL, scope_of_grid(session, g))]


def active(session: Session) -> list[Incident]:
    return list(session.scalars(select(Incident).where(Incident.closed_at.is_(None)).order_by(Incident.id)))


def seen_by(session: Session, person: Person | None, *, closed: bool = False, limit: int = 20) -> list[Incident]:
    """The incidents `person` may see the roll of: the open ones (and, with `closed`, the latest
    closed), newest first."""
    query = select(Incident).order_by(Incident.id.desc()).limit(200)
    if not closed:
        query = query.where(Incident.closed_at.is_(None))
    found = [i for i in session.scalars(query) if visible_grids(session, person, i.id)]
    return found[:limit]


def label(session: Session, incident: Incident | Area) -> str:
    """How the area reads: 和平街道 / 和平里社区 / 和平里第一网格、和平里第二网格 (…等5个网格)."""
    level = incident.level if isinstance(incident, Area) else incident.area
    if level is AreaLevel.street:
        street = session.get(Street, incident.street_id)
        return street.name if street else ""
    if level is AreaLevel.community and incident.community_id is not None:
        community = session.get(Community, incident.community_id)
        return community.name if community else ""
    ids = list(incident.grid_ids) if isinstance(incident, Area) else grid_ids(session, incident.id)
    names = list(session.scalars(select(Grid.name).where(Grid.id.in_(ids)).order_by(Grid.code)))
    if len(names) > NAMED_GRIDS:
        return t("mobilise.area_many", names="、".join(names[:NAMED_GRIDS]), count=len(names))
    return "、".join(names)


@dataclass(frozen=True)
class Choices:
    """What a commander may name as an area: whole streets, whole communities, single grids."""

    streets: list[Street]
    communities: list[Community]
    grids: list[Grid]


def choices(session: Session, person: Person | None) -> Choices:
    communities = commanded(session, person)
    grids = list(session.scalars(select(Grid).where(Grid.community_id.in_([c.id for c in communities]))
                                 .order_by(Grid.code))) if communities else []
    return Choices(streets_commanded(session, person), communities, grids)
