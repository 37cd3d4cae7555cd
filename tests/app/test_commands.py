"""The command menu and /help by role come from the permission table."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy.orm import Session, sessionmaker

from core.access.commands import COMMANDS, commands_for, help_text
from core.access.permissions import PERMISSIONS
from core.models import Role
from tests.app.journey import journey
from tests.app.stack import free_port


def test_everyone_sees_the_resident_commands_and_roles_add_their_own() -> None:
    resident = {c.name for c in commands_for(frozenset())}
    # /baodao (双报到) and /dangzuzhi (附近的党组织) are for everyone: a member who works elsewhere
    # is a resident here until approved; anyone may look for the nearest party organisation
    # 三张清单: a need; 共享空间: a resident books a room, anyone looks
    assert resident == {"start", "my", "help", "notify", "join", "baodao", "dangzuzhi", "qingdan", "yuyue"}
    for role in Role:
        names = {c.name for c in commands_for(frozenset({role}))}
        assert resident <= names
        assert ("broadcast" in names) == any(role in PERMISSIONS[a] for a in PERMISSIONS if a.startswith("broadcast."))
        assert ("invite" in names) == (role in PERMISSIONS["invite.create"])
        assert ("report" in names) == (role in PERMISSIONS["event.report"])
        assert ("roster" in names) == (role in PERMISSIONS["roster.view"])
        assert ("dongyuan" in names) == (role in PERMISSIONS["mobilise.declare"]) == (role is Role.commander)
        assert ("zhanshi" in names) == (role in PERMISSIONS["mobilise.roll"])


def test_every_command_has_a_description_and_help_lists_them() -> None:
    text = help_text(frozenset({Role.community_admin}))
    for command in commands_for(frozenset({Role.community_admin})):
        assert command.description and not command.description.startswith("command.")
        assert f"/{command.name} {command.description}" in text
    assert len({c.name for c in COMMANDS}) == len(COMMANDS)


def _menus(fake: object, chat: int) -> list[set[str]]:
    """The command menus set for one private chat, oldest first."""
    found = []
    for call in fake.calls:  # type: ignore[attr-defined]
        if call.method == "setMyCommands":
            scope = json.loads(call.params["scope"]) if isinstance(call.params["scope"], str) else call.params["scope"]
            if scope.get("chat_id") == chat:
                raw = call.params["commands"]
                found.append({c["command"] for c in (json.loads(raw) if isinstance(raw, str) else raw)})
    return found


def test_help_and_start_set_each_persons_menu_by_role(sqlite_demo_factory: sessionmaker[Session]) -> None:
    secretary, resident = 700000001, 700000101  # the demo's secretary of 和平里第一网格党支部; a newcomer

    async def scenario() -> None:
        async with journey(sqlite_demo_factory, f"http://127.0.0.1:{free_port()}") as j:
            await j.say(secretary, "/help")
            await j.say(resident, "/start")
            [secretary_menu] = _menus(j.fake, secretary)
            [resident_menu] = _menus(j.fake, resident)
            assert {"broadcast", "invite", "report", "duties"} <= secretary_menu
            assert resident_menu == {c.name for c in commands_for(frozenset())}

    asyncio.run(scenario())
