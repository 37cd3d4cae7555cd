"""社区电话多少: the community office's and its 党群服务中心's phone, address and hours.

They are public details of the registry (`gridbot import`, communities' phone, address, hours,
center_name, center_phone, center_address, center_hours). A resident bound to a building hears
their own community; anyone else hears every community's.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.messages import t
from core.models import Building, Community, Grid, Person


def _or_unknown(value: str | None) -> str:
    return value or t("community.unknown")


def text_for(community: Community) -> str:
    lines = [t("community.office", name=community.name, phone=_or_unknown(community.phone),
               address=_or_unknown(community.address), hours=_or_unknown(community.hours))]
    if community.center_name or community.center_phone:
        lines.append(t("community.center", name=community.center_name or t("community.center_default"),
                       phone=_or_unknown(community.center_phone), address=_or_unknown(community.center_address),
                       hours=_or_unknown(community.center_hours)))
    return "\n".join(lines)


def community_of(session: Session, person: Person | None) -> Community | None:
    if person is None or person.building_id is None:
        return None
    building = session.get(Building, person.building_id)
    grid = session.get(Grid, building.grid_id) if building is not None else None
    return grid.community if grid is not None else None


def contact_text(session: Session, person: Person | None) -> str:
    own = community_of(session, person)
    communities = [own] if own is not None else list(session.scalars(select(Community).order_by(Community.code)))
    if not communities:
        return t("community.none")
    return "\n\n".join(text_for(c) for c in communities) + "\n" + t("community.footer")
