"""The command menu and /help by role come from the permission table."""

from __future__ import annotations

from core.commands import COMMANDS, commands_for, help_text
from core.models import Role
from core.permissions import PERMISSIONS


def test_everyone_sees_the_resident_commands_and_roles_add_their_own() -> None:
    resident = {c.name for c in commands_for(frozenset())}
    assert resident == {"start", "my", "help", "notify", "join"}
    for role in Role:
        names = {c.name for c in commands_for(frozenset({role}))}
        assert resident <= names
        assert ("broadcast" in names) == any(role in PERMISSIONS[a] for a in PERMISSIONS if a.startswith("broadcast."))
        assert ("invite" in names) == (role in PERMISSIONS["invite.create"])
        assert ("report" in names) == (role in PERMISSIONS["event.report"])


def test_every_command_has_a_description_and_help_lists_them() -> None:
    text = help_text(frozenset({Role.community_admin}))
    for command in commands_for(frozenset({Role.community_admin})):
        assert command.description and not command.description.startswith("command.")
        assert f"/{command.name} {command.description}" in text
    assert len({c.name for c in COMMANDS}) == len(COMMANDS)
