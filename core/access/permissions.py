"""Who may do what: one table for every command and button, checked on the server.

Like FixMyStreet's permission list, `PERMISSIONS` names each action once with the roles
that may take it. A role counts only where it is held: a secretary of branch A is nobody
to branch B, a community admin only in their own community. `Scope` says where an action
happens (its community, grid and branch, worked out from the ticket, event, shift or
audience it touches); `roles_at` says which roles a person holds there.

Some ticket actions also depend on a person's relation to one ticket (its reporter, its
followers, who claimed it); core.tickets.service adds those on top of this table.

Every refusal is `NotAllowed`, whose text is Chinese, fit to show the person who pressed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.messages import t
from core.models import Branch, BranchMember, Building, Community, Grid, Person, Role

R = Role


class NotAllowed(Exception):
    """The action is refused; str(exc) is the reason in Chinese, fit to show the presser."""


# action -> the roles that may take it, each within the action's scope.
PERMISSIONS: dict[str, frozenset[Role]] = {
    # residents
    "ticket.report": frozenset({R.resident, R.volunteer, R.member, R.secretary, R.grid_worker,
                                R.community_admin, R.operator}),
    "notify.set": frozenset({R.resident, R.volunteer, R.member, R.secretary, R.grid_worker,
                             R.community_admin, R.operator}),
    # the branch's work on tickets (the claimer may also resolve: see core.tickets.service)
    "ticket.claim": frozenset({R.member, R.dual_member, R.secretary, R.grid_worker, R.community_admin,
                               R.street_admin}),
    "ticket.resolve": frozenset({R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
    "ticket.escalate": frozenset({R.secretary, R.grid_worker, R.community_admin}),
    "ticket.reject": frozenset({R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
    # a resident's phone and exact address: only to those who follow the ticket up
    "ticket.contact": frozenset({R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
    # 督办: a nudge on an overdue ticket, from above the branch
    "ticket.urge": frozenset({R.community_admin, R.street_admin}),
    # the branch's list of open tickets (/tickets), 指派 to a member; 发回 by the community
    "ticket.list": frozenset({R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
    "ticket.assign": frozenset({R.secretary, R.grid_worker, R.community_admin}),
    "ticket.return": frozenset({R.community_admin, R.street_admin}),
    # 改派 to another grid (another community's only for a street admin), 接手 and 合并 by the community
    "ticket.transfer": frozenset({R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
    "ticket.take": frozenset({R.community_admin, R.street_admin}),
    "ticket.merge": frozenset({R.community_admin, R.street_admin}),
    # the three rates: a secretary their grid, an admin their community's grids, a street admin the street's
    "stats.view": frozenset({R.secretary, R.community_admin, R.street_admin}),
    # a resident's request to be called back (找个人给我打电话): its card, the phone, 已回电
    "callback.handle": frozenset({R.grid_worker, R.community_admin}),
    # duties
    "duty.view": frozenset({R.member, R.dual_member, R.secretary, R.community_admin, R.volunteer}),
    "event.manage": frozenset({R.secretary, R.community_admin}),
    "event.report": frozenset({R.secretary, R.community_admin, R.street_admin}),
    "shift.manage": frozenset({R.secretary, R.community_admin}),
    # broadcasts, by audience
    "broadcast.members": frozenset({R.secretary, R.community_admin}),
    "broadcast.residents": frozenset({R.secretary, R.grid_worker, R.community_admin}),
    "broadcast.volunteers": frozenset({R.secretary, R.community_admin}),
    "broadcast.community": frozenset({R.community_admin, R.street_admin}),
    # membership and roles
    "invite.create": frozenset({R.secretary}),
    "role.grant": frozenset({R.operator}),
    "audit.read": frozenset({R.operator, R.community_admin, R.street_admin}),
    # 议事 (core/consult/): opening, moderating and minuting a consultation; voting and
    # proposing take a verified resident on top (core.consult.residents); confirming a binding
    "consult.open": frozenset({R.secretary, R.community_admin}),
    "consult.moderate": frozenset({R.secretary, R.community_admin}),
    "consult.minutes": frozenset({R.secretary, R.community_admin}),
    "consult.vote": frozenset({R.resident}),
    "proposal.make": frozenset({R.resident}),
    "proposal.answer": frozenset({R.secretary, R.community_admin}),
    "resident.verify": frozenset({R.secretary, R.grid_worker, R.community_admin}),
    # 双报到: a party member registers where they live (anyone bound to a building may ask);
    # the grid's secretary or a community admin approves or declines; the branch roster
    "baodao.register": frozenset({R.resident, R.volunteer, R.member, R.dual_member, R.secretary, R.grid_worker,
                                  R.community_admin, R.operator}),
    "baodao.decide": frozenset({R.secretary, R.community_admin}),
    "roster.view": frozenset({R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
    # 三张清单 (core/lists/): a unit's resource, by its 双报到 liaison (the organisation of their
    # approved /baodao) or a community admin for a registry organisation; a need, listed at once by
    # the grid, proposed by a resident and reviewed by the grid; matching and projects by the admin
    "lists.offer": frozenset({R.dual_member, R.community_admin}),
    "lists.need": frozenset({R.secretary, R.grid_worker, R.community_admin}),
    "lists.propose": frozenset({R.resident}),
    "lists.review": frozenset({R.secretary, R.grid_worker, R.community_admin}),
    "lists.match": frozenset({R.community_admin}),
    "lists.rate": frozenset({R.resident}),
    # 共享空间 (core/spaces/): booking as a resident of the space's community, for a branch or the
    # community's 党委, for the unit of a 双报到 liaison; approving, refusing and recording no-shows
    # by the community's admins besides each space's own managers (core.spaces.access)
    "space.book": frozenset({R.resident}),
    "space.book_party": frozenset({R.member, R.secretary, R.community_admin}),
    "space.book_unit": frozenset({R.dual_member}),
    "space.manage": frozenset({R.community_admin}),
    # 党员学习资料库 (core/study/): the branch's library and its sessions' materials, read by its
    # members (and those who run it); attached by the secretary or a community admin. 补学 is the
    # session's own: whoever was expected there and did not check in (core.study.catchup).
    "study.read": frozenset({R.member, R.dual_member, R.secretary, R.community_admin, R.street_admin}),
    "study.manage": frozenset({R.secretary, R.community_admin}),
    # the command centre in the browser (web/centre): a login link by /web, and what it shows,
    # each grid's map, tickets and figures only where the role holds
    "web.login": frozenset({R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
    # 战时 mobilisation (core/mobilise/): a commander (指挥长: a community or street admin with the
    # commander grant) declares an incident over an area, posts its tasks and closes it; the live
    # roll and the report to the commander, the grids' leaders and the admins above them
    "mobilise.declare": frozenset({R.commander}),
    "mobilise.command": frozenset({R.commander}),
    "mobilise.roll": frozenset({R.commander, R.secretary, R.grid_worker, R.community_admin, R.street_admin}),
}


@dataclass(frozen=True)
class Scope:
    """Where an action happens. Empty fields: the action is not tied to that level."""

    community_id: int | None = None
    grid_id: int | None = None
    branch_id: int | None = None


def scope_of_branch(session: Session, branch: Branch) -> Scope:
    grid = session.get(Grid, branch.grid_id)
    return Scope(community_id=grid.community_id if grid else None, grid_id=branch.grid_id, branch_id=branch.id)


def scope_of_grid(session: Session, grid_id: int) -> Scope:
    grid = session.get(Grid, grid_id)
    if grid is None:
        return Scope()
    branch_id = session.scalar(select(Branch.id).where(Branch.grid_id == grid_id))
    return Scope(community_id=grid.community_id, grid_id=grid_id, branch_id=branch_id)


def scope_of_community(community_id: int) -> Scope:
    return Scope(community_id=community_id)


def _street_of(session: Session, community_id: int) -> int | None:
    community = session.get(Community, community_id)
    return community.street_id if community is not None else None


def roles_at(session: Session, person: Person | None, scope: Scope) -> set[Role]:
    """The roles `person` holds at `scope`.

    operator: everywhere. street_admin: in every community of their street. community_admin: in
    their community. grid_worker: in their grid.
    secretary: in their branch (the branch's secretary or a secretary grant for it).
    member: in a branch they belong to. dual_member (在职党员): in the grid (and its branch) where
    their /baodao was approved. commander: where its community or street grant applies and the
    person also holds community_admin or street_admin there (a grant on top of the admin role).
    resident and volunteer: unscoped grants count
    everywhere, scoped ones only where they apply; a resident bound to a building counts
    in that building's grid.
    """
    if person is None:
        return set()
    held: set[Role] = set()
    commands = False
    for g in person.grants:
        unscoped = g.community_id is None and g.grid_id is None and g.branch_id is None
        if g.role is R.operator:
            held.add(R.operator)
        elif g.role is R.community_admin:
            if scope.community_id is not None and g.community_id == scope.community_id:
                held.add(R.community_admin)
        elif g.role is R.street_admin:
            if scope.community_id is not None and g.street_id is not None \
                    and g.street_id == _street_of(session, scope.community_id):
                held.add(R.street_admin)
        elif g.role is R.grid_worker:
            if scope.grid_id is not None and g.grid_id == scope.grid_id:
                held.add(R.grid_worker)
        elif g.role is R.secretary:
            if scope.branch_id is not None and g.branch_id == scope.branch_id:
                held.add(R.secretary)
        elif g.role in (R.resident, R.volunteer):
            if unscoped or (scope.community_id is not None and g.community_id == scope.community_id) \
                    or (scope.grid_id is not None and g.grid_id == scope.grid_id) \
                    or (scope.branch_id is not None and g.branch_id == scope.branch_id):
                held.add(g.role)
        elif g.role is R.member and scope.branch_id is not None and g.branch_id == scope.branch_id:
            held.add(R.member)
        elif g.role is R.commander:
            commands = commands or (scope.community_id is not None and (
                g.community_id == scope.community_id
                or (g.street_id is not None and g.street_id == _street_of(session, scope.community_id))))
        elif g.role is R.dual_member and ((scope.grid_id is not None and g.grid_id == scope.grid_id)
                                          or (scope.branch_id is not None and g.branch_id == scope.branch_id)):
            held.add(R.dual_member)
    if commands and held & {R.community_admin, R.street_admin}:
        held.add(R.commander)
    if scope.branch_id is not None:
        branch = session.get(Branch, scope.branch_id)
        if branch is not None and branch.secretary_id == person.id:
            held.add(R.secretary)
        if session.scalar(select(BranchMember.id).where(BranchMember.branch_id == scope.branch_id,
                                                        BranchMember.person_id == person.id)):
            held.add(R.member)
    if person.building_id is not None and scope.grid_id is not None and R.resident not in held:
        building = session.get(Building, person.building_id)
        if building is not None and building.grid_id == scope.grid_id:
            held.add(R.resident)
    return held


def allowed(session: Session, person: Person | None, action: str, scope: Scope) -> bool:
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}")
    return bool(roles_at(session, person, scope) & PERMISSIONS[action])


def branches_for(session: Session, person: Person | None, action: str) -> list[Branch]:
    """Every branch where `person` may take `action`: the one answer to "which branches does
    this person manage" (a secretary their branch, a community admin every branch of theirs)."""
    if person is None:
        return []
    return [b for b in session.scalars(select(Branch).order_by(Branch.code))
            if allowed(session, person, action, scope_of_branch(session, b))]


def require(session: Session, person: Person | None, action: str, scope: Scope) -> Person:
    """Return `person` if they may take `action` at `scope`; else raise NotAllowed."""
    if person is None:
        raise NotAllowed(t("deny.unknown_person"))
    if not allowed(session, person, action, scope):
        raise NotAllowed(t("deny.action", action=t(f"action.{action}")))
    return person
