"""A grid branch's roster (/roster): its members, then the 在职党员 registered there by 双报到,
marked 在职党员（报到） with their own organisation and what they offer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import branches_for
from core.messages import t
from core.models import BaodaoRegistration, Branch, BranchMember, Person, RegistrationStatus


def roster_text(session: Session, branch: Branch) -> str:
    lines = [t("roster.header", branch=branch.name)]
    members = session.scalars(select(Person).join(BranchMember, BranchMember.person_id == Person.id)
                              .where(BranchMember.branch_id == branch.id).order_by(Person.id))
    for person in members:
        role = t("roster.secretary") if person.id == branch.secretary_id else t("roster.member")
        lines.append(t("roster.line", name=person.display_name, role=role))
    registrations = session.execute(
        select(BaodaoRegistration, Person).join(Person, Person.id == BaodaoRegistration.person_id)
        .where(BaodaoRegistration.grid_id == branch.grid_id,
               BaodaoRegistration.status == RegistrationStatus.approved).order_by(BaodaoRegistration.id)).all()
    for row, person in registrations:
        lines.append(t("roster.dual_line", name=person.display_name, role=t("roster.dual_member"),
                       organisation=row.organisation, tags="、".join(row.tags) or t("baodao.no_tags")))
    return "\n".join(lines)


def rosters_for(session: Session, person: Person | None) -> list[str]:
    """Every roster `person` may see (roster.view), one text per branch."""
    return [roster_text(session, b) for b in branches_for(session, person, "roster.view")]
