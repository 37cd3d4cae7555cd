"""Giving and taking roles: the operator's `gridbot grant` / `gridbot revoke`.

Roles come from the registry (`gridbot import`) or from here, never from chat: nothing
a person sends the bot can make them a secretary or an admin. A scoped role needs its
scope (secretary and member: a branch; grid_worker: a grid; community_admin: a
community); operator is global; resident and volunteer may be scoped or not. Every
change is written to the audit log (role.grant / role.revoke) by the acting person,
None for the operator at the server's command line.

A commander (战时 指挥长) is a grant on top of an admin role: for a community, to one of its
community admins (or a street admin of its street); for a street, to one of its street admins.
Revoking the admin role revokes the commander grant it carried.

A secretary is also the branch's `secretary_id` when the branch has none, and a member
is also a BranchMember, as `gridbot import` makes them; revoking undoes both, so a
revoked role really stops counting in core.access.permissions.roles_at.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.models import (
    JOINED_GRANT,
    Branch,
    BranchMember,
    Community,
    Grid,
    Person,
    Role,
    RoleGrant,
    Street,
)

R = Role
# the scope level each role must have; None: no scope allowed; absent: optional
REQUIRED_SCOPE: dict[Role, str | None] = {
    R.secretary: "branch",
    R.member: "branch",
    R.grid_worker: "grid",
    R.community_admin: "community",
    R.street_admin: "street",
    R.operator: None,
}
# roles whose scope is one of several levels (the first is named in the error)
EITHER_SCOPE: dict[Role, tuple[str, ...]] = {R.commander: ("community", "street")}
# the admin roles a commander grant stands on, by its level
COMMANDER_UNDER = {"community": (R.community_admin, R.street_admin), "street": (R.street_admin,)}
MODELS: dict[str, type[Street] | type[Community] | type[Grid] | type[Branch]] = {
    "street": Street, "community": Community, "grid": Grid, "branch": Branch}


class GrantError(ValueError):
    """The request names an unknown person, role or code, or a role without its scope."""


@dataclass(frozen=True)
class Target:
    person: Person
    role: Role
    level: str | None  # "street", "community", "grid", "branch" or None
    code: str | None
    scope_id: int | None

    @property
    def where(self) -> str:
        return f"{self.level}:{self.code}" if self.level else "everywhere"

    def columns(self) -> dict[str, int | None]:
        cols: dict[str, int | None] = {"street_id": None, "community_id": None, "grid_id": None, "branch_id": None}
        if self.level is not None:
            cols[f"{self.level}_id"] = self.scope_id
        return cols


def find_person(session: Session, ref: str) -> Person:
    """A person by registry code, else by Telegram id."""
    person = session.scalar(select(Person).where(Person.code == ref))
    if person is None and ref.lstrip("-").isdigit():
        person = session.scalar(select(Person).where(Person.telegram_id == int(ref)))
    if person is None:
        raise GrantError(f"unknown person {ref!r} (give a registry code such as P-0001 or a Telegram id)")
    return person


def resolve(session: Session, person_ref: str, role_name: str, *, community: str | None = None,
            grid: str | None = None, branch: str | None = None, street: str | None = None) -> Target:
    """Check the request and look its codes up; GrantError says what is wrong."""
    try:
        role = Role(role_name)
    except ValueError:
        raise GrantError(f"unknown role {role_name!r}; one of: {', '.join(r.value for r in Role)}") from None
    given = {level: code for level, code in (("street", street), ("community", community), ("grid", grid),
                                             ("branch", branch)) if code is not None}
    if len(given) > 1:
        raise GrantError("give at most one of --street, --community, --grid, --branch")
    level, code = next(iter(given.items()), (None, None))
    if role in REQUIRED_SCOPE:
        wanted = REQUIRED_SCOPE[role]
        if wanted is None and level is not None:
            raise GrantError(f"{role.value} holds everywhere: give no --{level}")
        if wanted is not None and level != wanted:
            raise GrantError(f"{role.value} needs --{wanted} CODE" + (f", not --{level}" if level else ""))
    if role in EITHER_SCOPE and level not in EITHER_SCOPE[role]:
        levels = " or ".join(f"--{x} CODE" for x in EITHER_SCOPE[role])
        raise GrantError(f"{role.value} needs {levels}" + (f", not --{level}" if level else ""))
    scope_id = None
    if level is not None:
        scope_id = session.scalar(select(MODELS[level].id).where(MODELS[level].code == code))
        if scope_id is None:
            raise GrantError(f"unknown {level} code {code!r}")
    person = find_person(session, person_ref)
    return Target(person, role, level, code, scope_id)


def _grant_row(session: Session, target: Target) -> RoleGrant | None:
    query = select(RoleGrant).where(RoleGrant.person_id == target.person.id, RoleGrant.role == target.role)
    for column, value in target.columns().items():
        attr = getattr(RoleGrant, column)
        query = query.where(attr.is_(None) if value is None else attr == value)
    return session.scalar(query)


def _settle(session: Session, target: Target, actor: Person | None, action: str, changed: bool) -> bool:
    """Write the change, forget the person's cached grants, audit it if anything changed."""
    session.flush()
    session.expire(target.person, ["grants"])
    if changed:
        audit.record(session, actor, action, f"person:{target.person.id}",
                     {"person": target.person.code or f"tg:{target.person.telegram_id}",
                      "role": target.role.value, "scope": target.where})
    return changed


def _admin_under(session: Session, target: Target) -> bool:
    """Whether the person holds the admin role a commander grant at `target` stands on."""
    assert target.level is not None and target.scope_id is not None
    street_id = target.scope_id if target.level == "street" else session.scalar(
        select(Community.street_id).where(Community.id == target.scope_id))
    for g in target.person.grants:
        if g.role not in COMMANDER_UNDER[target.level]:
            continue
        if (g.role is R.community_admin and g.community_id == target.scope_id) or \
                (g.role is R.street_admin and g.street_id == street_id):
            return True
    return False


def grant(session: Session, target: Target, actor: Person | None = None) -> bool:
    """Give the role; False if it was already held there (nothing changes, nothing audited).
    GrantError for a commander who is not an admin there."""
    if target.role is R.commander and not _admin_under(session, target):
        under = " or ".join(r.value for r in COMMANDER_UNDER[target.level or "community"])
        raise GrantError(f"commander is given on top of {under}: {target.person.code or target.person.telegram_id} "
                         f"holds neither at {target.where}")
    changed = False
    if _grant_row(session, target) is None:
        session.add(RoleGrant(person_id=target.person.id, role=target.role, **target.columns()))
        changed = True
    if target.role is R.member and target.scope_id is not None and session.scalar(
            select(BranchMember.id).where(BranchMember.branch_id == target.scope_id,
                                          BranchMember.person_id == target.person.id)) is None:
        session.add(BranchMember(branch_id=target.scope_id, person_id=target.person.id, joined_by=JOINED_GRANT))
        changed = True
    if target.role is R.secretary:
        branch = session.get(Branch, target.scope_id)
        if branch is not None and branch.secretary_id is None:
            branch.secretary_id = target.person.id
            changed = True
    return _settle(session, target, actor, "role.grant", changed)


def revoke(session: Session, target: Target, actor: Person | None = None) -> bool:
    """Take the role away; False if it was not held there."""
    changed = False
    row = _grant_row(session, target)
    if row is not None:
        session.delete(row)
        changed = True
    if target.role is R.member and target.scope_id is not None:
        member = session.scalar(select(BranchMember).where(BranchMember.branch_id == target.scope_id,
                                                           BranchMember.person_id == target.person.id))
        if member is not None:
            session.delete(member)
            changed = True
    if target.role is R.secretary:
        branch = session.get(Branch, target.scope_id)
        if branch is not None and branch.secretary_id == target.person.id:
            session.flush()
            # another holder of a secretary grant for the branch, if any, takes the seat
            branch.secretary_id = session.scalar(
                select(RoleGrant.person_id).where(RoleGrant.role == R.secretary, RoleGrant.branch_id == branch.id)
                .order_by(RoleGrant.id).limit(1))
            changed = True
    if target.role in (R.community_admin, R.street_admin) and target.level is not None:
        # the commander grant stood on this admin role: it goes with it (audited as its own revoke)
        carried = Target(target.person, R.commander, target.level, target.code, target.scope_id)
        if _grant_row(session, carried) is not None:
            session.flush()
            revoke(session, carried, actor)
    return _settle(session, target, actor, "role.revoke", changed)
