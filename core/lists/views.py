"""What /qingdan shows a person: which communities they administer, the organisations an admin may
offer for, and the lists of the communities they belong to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import allowed, scope_of_community
from core.lists import entries, projects
from core.messages import t
from core.models import Community, Need, PartyOrganisation, Person, Project, Resource

SHOWN = 10  # newest entries of each list


def admin_communities(session: Session, person: Person | None) -> list[Community]:
    return [c for c in session.scalars(select(Community).order_by(Community.code))
            if allowed(session, person, "lists.match", scope_of_community(c.id))]


def unit_organisations(session: Session) -> list[PartyOrganisation]:
    return list(session.scalars(select(PartyOrganisation).where(PartyOrganisation.kind == "unit")
                                .order_by(PartyOrganisation.code)))


def overview(session: Session, person: Person | None) -> str:
    """The three lists of the person's home community and of the communities they administer."""
    community_ids = {c.id for c in admin_communities(session, person)}
    if person is not None and person.building_id is not None:
        community_ids.add(entries.home_grid(session, person).community_id)
    resources = list(session.scalars(select(Resource).where(Resource.community_id.in_(community_ids))
                                     .order_by(Resource.id)))
    needs = list(session.scalars(select(Need).where(Need.community_id.in_(community_ids)).order_by(Need.id)))
    done = list(session.scalars(select(Project).where(Project.community_id.in_(community_ids)).order_by(Project.id)))

    def lines(items: list[str]) -> str:
        return "\n".join(f"· {x}" for x in items[-SHOWN:]) or t("lists.none")

    return t("lists.view", resources=len(resources), needs=len(needs), projects=len(done),
             resource_lines=lines([entries.describe_resource(r) for r in resources]),
             need_lines=lines([entries.describe_need(session, n) for n in needs]),
             project_lines=lines([projects.describe(session, p) for p in done]))
