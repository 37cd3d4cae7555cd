"""Which commands each person sees: /help's text and the Telegram command menu, by role.

One table: every command, the permission-table actions that unlock it (none: everyone),
and its line in the message catalogue (`command.<name>`). A resident sees how to report and follow reports; a
party member also their duties; a secretary, grid worker or community admin also what they
run (broadcasts, invitations, attendance figures). The same table feeds /help and the menu
(`setMyCommands` per chat), so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.permissions import PERMISSIONS
from core.messages import t
from core.models import Person, Role, RoleGrant


@dataclass(frozen=True)
class Command:
    name: str
    actions: tuple[str, ...] = ()  # permission-table actions that unlock it; () for everyone

    @property
    def roles(self) -> frozenset[Role] | None:
        """Who sees it, from the permission table (core/access/permissions.py): the one answer."""
        if not self.actions:
            return None
        return frozenset().union(*(PERMISSIONS[a] for a in self.actions))

    @property
    def description(self) -> str:
        return t(f"command.{self.name}")


COMMANDS = (
    Command("start"),
    Command("my"),
    Command("help"),
    Command("notify"),
    Command("join"),
    Command("duties", ("duty.view",)),
    Command("report", ("event.report",)),
    Command("schedule", ("event.manage",)),
    Command("tickets", ("ticket.list",)),
    Command("stats", ("stats.view",)),
    Command("web", ("web.login",)),
    Command("broadcast", ("broadcast.members", "broadcast.residents", "broadcast.volunteers", "broadcast.community")),
    Command("broadcasts", ("broadcast.members", "broadcast.residents", "broadcast.volunteers", "broadcast.community")),
    Command("invite", ("invite.create",)),
    Command("yishi", ("consult.vote", "consult.open")),
    Command("tiyi", ("proposal.make",)),
    Command("queren", ("resident.verify",)),
    Command("baodao"),
    Command("dangzuzhi"),
    Command("roster", ("roster.view",)),
    Command("qingdan"),
    Command("yuyue"),
    Command("dongyuan", ("mobilise.declare",)),
    Command("zhanshi", ("mobilise.roll",)),
    Command("xuexi", ("study.read",)),
)
MEMBERS = PERMISSIONS["duty.view"]
MANAGERS = PERMISSIONS["broadcast.residents"]


def roles_of(session: Session, person: Person | None) -> frozenset[Role]:
    """Every role the person holds anywhere; a resident holds none."""
    if person is None:
        return frozenset()
    return frozenset(session.scalars(select(RoleGrant.role).where(RoleGrant.person_id == person.id)))


def commands_for(roles: frozenset[Role]) -> list[Command]:
    return [c for c in COMMANDS if c.roles is None or c.roles & roles]


def help_text(roles: frozenset[Role]) -> str:
    """/help for someone holding `roles`: how to report, then the commands they may use."""
    lines = [t("help.intro")]
    if roles & MEMBERS:
        lines.append(t("help.member"))
    if roles & MANAGERS:
        lines.append(t("help.manager"))
    lines.append(t("help.commands"))
    lines += [f"/{c.name} {c.description}" for c in commands_for(roles)]
    return "\n".join(lines)
