"""Invite codes (core.registry.invites, /invite and /join) and the operator's gridbot grant / revoke / audit.

A member joins a branch only with a one-time code from its secretary: used twice, expired or
unknown is refused; two people racing for one code on PostgreSQL make exactly one member.
Roles beyond member come only from the command line, which is audited.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app as cli
from core import audit
from core.access.permissions import NotAllowed, allowed, roles_at, scope_of_branch
from core.config import get_settings
from core.db import make_engine, make_session_factory, session_scope
from core.messages import t
from core.models import AuditEntry, Branch, BranchMember, InviteCode, Person, Role, utcnow
from core.registry import grants, invites
from core.registry.importer import import_registry
from tests.app.conftest import DEMO, _migrated, _reset_postgres
from tests.app.journey import journey

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
NO_RASA = "http://127.0.0.1:9"
SECRETARY, MEMBER, ADMIN = 700000001, 700000002, 700000069  # P-0001 secretary of BR-HPL-01
NEWCOMER, NEWCOMER_2 = 720000001, 720000002  # nobody the registry knows


def who(s: Session, code: str) -> Person:
    return s.scalars(select(Person).where(Person.code == code)).one()


def branch(s: Session, code: str = "BR-HPL-01") -> Branch:
    return s.scalars(select(Branch).where(Branch.code == code)).one()


def members(s: Session, branch_code: str = "BR-HPL-01") -> set[int]:
    return set(s.scalars(select(BranchMember.person_id).where(BranchMember.branch_id == branch(s, branch_code).id)))


def by_tg(s: Session, telegram_id: int) -> Person | None:
    return s.scalar(select(Person).where(Person.telegram_id == telegram_id))


# -- core.registry.invites -------------------------------------------------------------------------

def test_only_the_branchs_secretary_creates_codes(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        home, other = branch(s), branch(s, "BR-QNH-01")
        invite = invites.create_invite(s, who(s, "P-0001"), home.id, now=T0)
        assert re.fullmatch(r"[ABCDEFGHJKMNPQRSTUVWXYZ2-9]{8}", invite.code)
        assert (invite.branch_id, invite.created_by_id, invite.expires_at) == (
            home.id, who(s, "P-0001").id, T0 + timedelta(hours=72))
        for code in ("P-0002", "P-0008", "P-0061", "P-0069", "P-0071"):  # member, other secretary, worker, admin, resident
            with pytest.raises(NotAllowed, match="您没有权限生成这个支部的邀请码"):
                invites.create_invite(s, who(s, code), home.id)
        with pytest.raises(NotAllowed, match="您没有权限"):
            invites.create_invite(s, who(s, "P-0001"), other.id)
        with pytest.raises(NotAllowed, match="请先发送 /start"):
            invites.create_invite(s, None, home.id)
        with pytest.raises(NotAllowed, match="没有找到这个党支部"):
            invites.create_invite(s, who(s, "P-0001"), 999_999)
        assert s.scalar(select(func.count()).select_from(InviteCode)) == 1
        [entry] = audit.entries(s, action="invite.create")
        assert entry.detail == {"branch": "BR-HPL-01", "invite": invite.id}
        assert invite.code not in json.dumps(entry.detail)


def test_codes_are_unambiguous_and_distinct() -> None:
    codes = {invites.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert not set("".join(codes)) & set("0O1IL")
    assert invites.normalise(" abcd-2345 ") == "ABCD2345"


def test_redeem_makes_a_new_person_a_member_and_nothing_more(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        code = invites.create_invite(s, who(s, "P-0001"), branch(s).id, now=T0).code
        joined, person = invites.redeem(s, NEWCOMER, "王新", code.lower(), now=T0 + timedelta(hours=1), settings=get_settings())
        assert joined.code == "BR-HPL-01" and person.telegram_id == NEWCOMER and person.display_name == "王新"
        assert person.id in members(s)
        assert roles_at(s, person, scope_of_branch(s, joined)) == {Role.member}
        assert not allowed(s, person, "invite.create", scope_of_branch(s, joined))
        invite = s.scalars(select(InviteCode).where(InviteCode.code == code)).one()
        assert (invite.used_by_id, invite.used_at) == (person.id, T0 + timedelta(hours=1))
        [entry] = audit.entries(s, action="invite.redeem")
        assert entry.actor_id == person.id and entry.subject == f"branch:{joined.id}"


def test_a_reimport_keeps_members_who_joined_by_invite(demo_factory: sessionmaker[Session]) -> None:
    """The registry does not know them: only gridbot revoke takes them out."""
    with session_scope(demo_factory) as s:
        code = invites.create_invite(s, who(s, "P-0001"), branch(s).id, now=T0).code
        person_id = invites.redeem(s, NEWCOMER, "王新", code, now=T0 + timedelta(hours=1), settings=get_settings())[1].id
        listed = members(s)
    with session_scope(demo_factory) as s:
        report = import_registry(s, [DEMO])  # the IT worker re-imports to add a building, say
        assert report.unchanged["invited_members"] == 1
    with session_scope(demo_factory) as s:
        assert members(s) == listed and person_id in listed
        newcomer = by_tg(s, NEWCOMER)
        assert newcomer is not None
        assert roles_at(s, newcomer, scope_of_branch(s, branch(s))) == {Role.member}
        assert grants.revoke(s, grants.resolve(s, str(NEWCOMER), "member", branch="BR-HPL-01"))
    with session_scope(demo_factory) as s:
        import_registry(s, [DEMO])  # revoked stays revoked: the used invite does not bring them back
        assert members(s) == listed - {person_id}
        newcomer = by_tg(s, NEWCOMER)
        assert newcomer is not None and roles_at(s, newcomer, scope_of_branch(s, branch(s))) == set()
        # granted from the command line instead: the registry's to list, so an import takes it back
        assert grants.grant(s, grants.resolve(s, str(NEWCOMER), "member", branch="BR-HPL-01"))
    with session_scope(demo_factory) as s:
        assert person_id in members(s)
        assert import_registry(s, [DEMO]).unchanged["invited_members"] == 0
        assert members(s) == listed - {person_id}


def test_a_code_used_twice_is_refused(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        code = invites.create_invite(s, who(s, "P-0001"), branch(s).id).code
        invites.redeem(s, NEWCOMER, "王新", code, settings=get_settings())
        for user in (NEWCOMER_2, NEWCOMER):
            with pytest.raises(NotAllowed, match="已经被使用过"):
                invites.redeem(s, user, "李新", code, settings=get_settings())
        assert by_tg(s, NEWCOMER_2) is None  # the refused person was not created


def test_an_expired_or_unknown_code_is_refused(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        code = invites.create_invite(s, who(s, "P-0001"), branch(s).id, now=T0).code
        with pytest.raises(NotAllowed, match="已过期"):
            invites.redeem(s, NEWCOMER, "王新", code, now=T0 + timedelta(hours=72), settings=get_settings())
        with pytest.raises(NotAllowed, match="邀请码不正确"):
            invites.redeem(s, NEWCOMER, "王新", "ABCD2345", settings=get_settings())
        assert by_tg(s, NEWCOMER) is None
        branch_id = invites.redeem(s, NEWCOMER, "王新", code, now=T0 + timedelta(hours=71, minutes=59), settings=get_settings())[0].id
        assert branch_id == branch(s).id


def test_an_existing_member_is_refused_and_the_code_stays_good(sqlite_demo_factory: sessionmaker[Session]) -> None:
    with session_scope(sqlite_demo_factory) as s:
        code = invites.create_invite(s, who(s, "P-0001"), branch(s).id).code
        with pytest.raises(NotAllowed, match="您已经是和平里第一网格党支部的党员了"):
            invites.redeem(s, MEMBER, "梁海涛", code, settings=get_settings())
        # someone already in the registry, member of another branch, joins this one too
        _, person = invites.redeem(s, 700000009, "", code, settings=get_settings())
        assert person.code == "P-0009" and person.id in members(s) and person.id in members(s, "BR-HPL-02")


def refusals(s: Session, telegram_id: int) -> list[AuditEntry]:
    return list(reversed(s.scalars(select(AuditEntry).where(
        AuditEntry.action == "invite.join_refused", AuditEntry.subject == f"telegram:{telegram_id}")
        .order_by(AuditEntry.id.desc())).all()))


def test_five_wrong_codes_in_an_hour_lock_out_until_the_hour_is_over(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    minute = timedelta(minutes=1)
    with session_scope(sqlite_demo_factory) as s:
        good = invites.create_invite(s, who(s, "P-0001"), branch(s).id, now=T0).code
        used = invites.create_invite(s, who(s, "P-0001"), branch(s).id, now=T0).code
        invites.redeem(s, NEWCOMER_2, "李新", used, now=T0, settings=get_settings())
        expired = invites.create_invite(s, who(s, "P-0001"), branch(s).id, now=T0 - timedelta(hours=73)).code
        for i, wrong in enumerate(["ZZZZ2222", used, expired, "ABCD2345", "QQQQ3333"]):
            with pytest.raises(NotAllowed):
                invites.redeem(s, NEWCOMER, "王新", wrong, now=T0 + i * minute, settings=get_settings())
        # locked: even the right code is refused, without being looked at, and stays good
        with pytest.raises(NotAllowed) as locked:
            invites.redeem(s, NEWCOMER, "王新", good, now=T0 + 30 * minute, settings=get_settings())
        assert str(locked.value) == t("invite.locked", at="11:00")  # an hour after the first wrong code
        assert s.scalars(select(InviteCode).where(InviteCode.code == good)).one().used_at is None
        assert by_tg(s, NEWCOMER) is None
        # every refusal is audited: the reason, never the code; nobody to name as the actor yet
        entries = refusals(s, NEWCOMER)
        assert [e.detail for e in entries] == [{"reason": r} for r in
                                               ("unknown", "used", "expired", "unknown", "unknown", "locked")]
        assert all(e.actor_id is None for e in entries)
        assert not any(c in json.dumps([e.detail for e in entries]) for c in (good, used, expired, "ZZZZ2222"))
        # others are not locked out; being a member already is no wrong code
        for _ in range(6):
            with pytest.raises(NotAllowed, match="您已经是和平里第一网格党支部的党员了"):
                invites.redeem(s, MEMBER, "梁海涛", good, now=T0 + 30 * minute, settings=get_settings())
        assert [e.detail["reason"] for e in refusals(s, MEMBER)] == ["already_member"] * 6
        assert [e.actor_id for e in refusals(s, MEMBER)] == [who(s, "P-0002").id] * 6
        # the lockout ends by itself, an hour after the first of the five
        with pytest.raises(NotAllowed, match="次数太多"):
            invites.redeem(s, NEWCOMER, "王新", good, now=T0 + 59 * minute, settings=get_settings())
        joined, person = invites.redeem(s, NEWCOMER, "王新", good, now=T0 + 60 * minute, settings=get_settings())
        assert person.id in members(s, joined.code)


def test_join_lockout_in_chat(sqlite_demo_factory: sessionmaker[Session]) -> None:
    """Refusals are committed by the bot (each counts), the locked-out person is told politely,
    and the person next to them is not held back."""
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            [reply] = await j.say(SECRETARY, "/invite")
            found = re.search(r"邀请码：([A-Z2-9]{8})", reply)
            assert found
            code = found.group(1)
            for wrong in ("ZZZZ2222", "ZZZZ3333", "ZZZZ4444", "ZZZZ5555", "ZZZZ6666"):
                assert await j.say(NEWCOMER, f"/join {wrong}") == [t("invite.unknown")]
            [locked] = await j.say(NEWCOMER, f"/join {code}")
            assert locked.startswith("您输错邀请码的次数太多了，为了安全暂时不能再试。请在") and "/join" in locked
            assert await j.say(NEWCOMER_2, "/join ZZZZ7777") == [t("invite.unknown")]
            with session_scope(factory) as s:  # an hour passes
                s.execute(update(AuditEntry).where(AuditEntry.action == "invite.join_refused")
                          .values(at=utcnow() - timedelta(hours=1, minutes=1)))
            assert await j.say(NEWCOMER, f"/join {code}") == [t("invite.joined", branch="和平里第一网格党支部")]

    asyncio.run(scenario())
    with factory() as s:
        assert [e.detail["reason"] for e in refusals(s, NEWCOMER)] == ["unknown"] * 5 + ["locked"]
        assert [e.detail["reason"] for e in refusals(s, NEWCOMER_2)] == ["unknown"]
        newcomer = by_tg(s, NEWCOMER)
        assert newcomer is not None and newcomer.id in members(s)


def test_two_people_racing_for_one_code_make_exactly_one_member(postgres_server: str) -> None:
    """PostgreSQL: both redeemers read the unused code, then both update it; one update waits
    for the other's commit, finds used_at set and changes nothing, so that redeemer is refused."""
    _reset_postgres(postgres_server)
    engine = _migrated(postgres_server)
    try:
        factory = make_session_factory(engine)
        with session_scope(factory) as s:
            import_registry(s, [DEMO])
            code = invites.create_invite(s, who(s, "P-0001"), branch(s).id).code
        both_read = threading.Barrier(2, timeout=20)

        @event.listens_for(engine, "before_cursor_execute")
        def wait_for_the_other(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("UPDATE INVITE_CODES"):
                both_read.wait()  # neither updates before both have read the code as unused

        outcomes: dict[int, str] = {}

        def redeem(user: int) -> None:
            try:
                with session_scope(factory) as s:
                    invites.redeem(s, user, f"用户{user}", code, settings=get_settings())
                outcomes[user] = "joined"
            except NotAllowed as exc:
                outcomes[user] = str(exc)

        threads = [threading.Thread(target=redeem, args=(u,)) for u in (NEWCOMER, NEWCOMER_2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        event.remove(engine, "before_cursor_execute", wait_for_the_other)
        assert sorted(outcomes.values()) == sorted(["joined", t("invite.used")]), outcomes
        winner = next(u for u, o in outcomes.items() if o == "joined")
        with factory() as s:
            person = by_tg(s, winner)
            assert person is not None
            new_members = members(s) & {p.id for p in s.scalars(select(Person).where(
                Person.telegram_id.in_([NEWCOMER, NEWCOMER_2])))}
            assert new_members == {person.id}
            invite = s.scalars(select(InviteCode).where(InviteCode.code == code)).one()
            assert invite.used_by_id == person.id
            assert by_tg(s, next(u for u in outcomes if u != winner)) is None
    finally:
        engine.dispose()


# -- /invite and /join through the bot ----------------------------------------------------------

def test_invite_and_join_in_chat(sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            [reply] = await j.say(SECRETARY, "/invite")
            code = re.search(r"邀请码：([A-Z2-9]{8})", reply)
            assert code and "和平里第一网格党支部" in reply and "/join " + code.group(1) in reply, reply
            assert await j.say(MEMBER, "/invite") == [t("invite.not_secretary")]
            assert await j.say(ADMIN, "/invite") == [t("invite.not_secretary")]
            assert await j.say(719999998, "/invite") == [t("deny.unknown_person")]
            assert await j.say(NEWCOMER, "/join") == [t("invite.join_usage")]
            assert await j.say(NEWCOMER, "/join ZZZZ2222") == [t("invite.unknown")]
            assert await j.say(NEWCOMER, f"/join {code.group(1).lower()}") == [
                t("invite.joined", branch="和平里第一网格党支部")]
            assert await j.say(NEWCOMER_2, f"/join {code.group(1)}") == [t("invite.used")]
            # the newcomer is a member now, and nothing more: no codes for them
            assert await j.say(NEWCOMER, "/invite") == [t("invite.not_secretary")]

    asyncio.run(scenario())
    with factory() as s:
        person = by_tg(s, NEWCOMER)
        assert person is not None and person.id in members(s)
        assert {g.role for g in person.grants} == {Role.member}
        assert by_tg(s, NEWCOMER_2) is None


def test_a_secretary_of_two_branches_picks_one_and_forged_picks_are_refused(
        sqlite_demo_factory: sessionmaker[Session]) -> None:
    factory = sqlite_demo_factory
    with session_scope(factory) as s:
        grants.grant(s, grants.resolve(s, "P-0001", "secretary", branch="BR-HPL-02"))

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            assert await j.say(SECRETARY, "/invite") == [t("invite.pick_branch")]
            got = await j.press(SECRETARY, SECRETARY, "和平里第二网格党支部")
            assert any("和平里第二网格党支部党员加入邀请码" in x for x in got), got
            message = j.fake.last_message(SECRETARY)
            assert message is not None and not (message.get("reply_markup") or {}).get("inline_keyboard")
            # the same button once more: its message was edited, the data is gone from the keyboard,
            # and a client replaying it is refused before any code is made
            with factory() as s:
                made = s.scalar(select(func.count()).select_from(InviteCode))
            answers = len(j.fake.calls_to("answerCallbackQuery"))
            await j.step(j.updates.callback_query(SECRETARY, "not-a-button-the-bot-sent", message), SECRETARY)
            alerts = [c.params.get("text") for c in j.fake.calls_to("answerCallbackQuery")[answers:]]
            assert alerts == [t("button_invalid")]
            # well-formed data naming a branch the presser is not secretary of
            with factory() as s:
                qnh = branch(s, "BR-QNH-01").id
            await j.step(j.updates.callback_query(SECRETARY, j.issue(["invite", qnh]), message), SECRETARY)
            alerts = [c.params.get("text") for c in j.fake.calls_to("answerCallbackQuery")[answers + 1:]]
            assert alerts == [t("deny.action", action=t("action.invite.create"))]
            with factory() as s:
                assert s.scalar(select(func.count()).select_from(InviteCode)) == made

    asyncio.run(scenario())


def test_join_is_private_only(sqlite_demo_factory: sessionmaker[Session]) -> None:
    """A code typed in a group would be seen by everyone there: /join and /invite answer only in private."""
    factory = sqlite_demo_factory

    async def scenario() -> None:
        async with journey(factory, NO_RASA) as j:
            update = j.updates.group_text(-1001000000001, SECRETARY, "/invite")
            before = len(j.fake.sent_messages())
            await j.app.process_update(update)
            assert len(j.fake.sent_messages()) == before

    asyncio.run(scenario())
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(InviteCode)) == 0


# -- gridbot grant / revoke / audit --------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A database file `gridbot demo` made (through the CLI), copied by each test."""
    path = tmp_path_factory.mktemp("cli") / "demo.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", f"sqlite:///{path}")
        mp.setenv("LOG_LEVEL", "WARNING")
        get_settings.cache_clear()
        result = CliRunner().invoke(cli, ["demo"])
        assert result.exit_code == 0, result.output
    get_settings.cache_clear()
    yield path


@pytest.fixture
def cli_db(demo_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sessionmaker[Session]]:
    """The CLI's database (DATABASE_URL) with the demo registry; a session factory on it."""
    path = tmp_path / "gridbot.db"
    for suffix in ("", "-wal", "-shm"):  # SQLite in WAL mode keeps recent pages beside the file
        if Path(f"{demo_file}{suffix}").exists():
            shutil.copyfile(f"{demo_file}{suffix}", f"{path}{suffix}")
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()
    get_settings.cache_clear()


def gridbot(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def may_invite(factory: sessionmaker[Session], person: str, branch_code: str) -> bool:
    with factory() as s:
        return allowed(s, who(s, person), "invite.create", scope_of_branch(s, branch(s, branch_code)))


def test_grant_and_revoke_change_what_a_person_may_do(cli_db: sessionmaker[Session]) -> None:
    assert not may_invite(cli_db, "P-0071", "BR-HPL-02")
    result = gridbot("grant", "P-0071", "secretary", "--branch", "BR-HPL-02")
    assert result.exit_code == 0 and "granted: P-0071 secretary @ branch:BR-HPL-02" in result.output
    assert may_invite(cli_db, "P-0071", "BR-HPL-02") and not may_invite(cli_db, "P-0071", "BR-HPL-01")
    assert "unchanged" in gridbot("grant", "700000071", "secretary", "--branch", "BR-HPL-02").output
    result = gridbot("revoke", "700000071", "secretary", "--branch", "BR-HPL-02")
    assert result.exit_code == 0, result.output
    assert not may_invite(cli_db, "P-0071", "BR-HPL-02")
    assert gridbot("revoke", "P-0071", "secretary", "--branch", "BR-HPL-02").exit_code == 1

    # the registry's secretary (Branch.secretary_id) really loses the seat
    assert may_invite(cli_db, "P-0001", "BR-HPL-01")
    assert gridbot("revoke", "P-0001", "secretary", "--branch", "BR-HPL-01").exit_code == 0
    assert not may_invite(cli_db, "P-0001", "BR-HPL-01")
    with cli_db() as s:
        assert branch(s).secretary_id is None

    # a member grant also makes them a BranchMember, and revoking takes both away
    assert gridbot("grant", "P-0071", "member", "--branch", "BR-HPL-01").exit_code == 0
    with cli_db() as s:
        assert who(s, "P-0071").id in members(s)
    assert gridbot("revoke", "P-0071", "member", "--branch", "BR-HPL-01").exit_code == 0
    with cli_db() as s:
        assert who(s, "P-0071").id not in members(s)
        assert Role.member not in roles_at(s, who(s, "P-0071"), scope_of_branch(s, branch(s)))
        logged = [(e.action, e.actor_id, e.detail["role"]) for e in reversed(audit.entries(s))
                  if e.action.startswith("role.")]
    assert logged == [("role.grant", None, "secretary"), ("role.revoke", None, "secretary"),
                      ("role.revoke", None, "secretary"), ("role.grant", None, "member"),
                      ("role.revoke", None, "member")]


@pytest.mark.parametrize("args, message", [
    (["P-0071", "secretary"], "secretary needs --branch CODE"),
    (["P-0071", "secretary", "--grid", "G-HPL-01"], "secretary needs --branch CODE, not --grid"),
    (["P-0071", "grid_worker", "--community", "C-HPL"], "grid_worker needs --grid CODE"),
    (["P-0071", "community_admin"], "community_admin needs --community CODE"),
    (["P-0071", "member"], "member needs --branch CODE"),
    (["P-0071", "operator", "--community", "C-HPL"], "operator holds everywhere"),
    (["P-0071", "secretary", "--branch", "BR-NOPE"], "unknown branch code 'BR-NOPE'"),
    (["P-0071", "grid_worker", "--grid", "G-NOPE"], "unknown grid code 'G-NOPE'"),
    (["P-9999", "secretary", "--branch", "BR-HPL-01"], "unknown person 'P-9999'"),
    (["799999999", "volunteer"], "unknown person '799999999'"),
    (["P-0071", "king"], "unknown role 'king'"),
    (["P-0071", "volunteer", "--grid", "G-HPL-01", "--community", "C-HPL"], "at most one of"),
])
@pytest.mark.parametrize("command", ["grant", "revoke"])
def test_bad_grants_exit_2_and_change_nothing(cli_db: sessionmaker[Session], command: str, args: list[str],
                                              message: str) -> None:
    with cli_db() as s:
        before = s.scalar(select(func.count()).select_from(AuditEntry))
    result = gridbot(command, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    with cli_db() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == before


def test_audit_lists_entries_in_shanghai_time(cli_db: sessionmaker[Session]) -> None:
    with session_scope(cli_db) as s:  # the demo's own entries (its study materials) aside
        s.execute(delete(AuditEntry))
    assert gridbot("grant", "P-0073", "volunteer", "--community", "C-QNH").exit_code == 0
    with session_scope(cli_db) as s:
        audit.record(s, who(s, "P-0001"), "ticket.contact", "ticket:1", {"number": "T-1"})
        entry = audit.record(s, who(s, "P-0069"), "ticket.contact", "ticket:2", {"number": "T-2"})
        entry.at = datetime(2026, 1, 10, 17, 30, tzinfo=timezone.utc)  # 01:30 on 11 January in Shanghai
    result = gridbot("audit")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("2026-01-11T01:30:00+08:00  汤嘉懿  ticket.contact  ticket:2  "), lines
    assert "(operator)  role.grant  person:" in lines[2] and '"scope": "community:C-QNH"' in lines[2], lines
    rows = json.loads(gridbot("audit", "--json", "--action", "ticket.contact").output)
    assert [(r["actor"], r["actor_code"], r["subject"]) for r in rows] == [
        ("汤嘉懿", "P-0069", "ticket:2"), ("董国华", "P-0001", "ticket:1")]
    assert rows[1]["detail"] == {"number": "T-1"}
    today = datetime.now(get_settings().tz).date().isoformat()
    since_today = json.loads(gridbot("audit", "--json", "--since", today).output)
    assert [(r["action"], r["subject"][:7]) for r in since_today] == [("ticket.contact", "ticket:"),
                                                                       ("role.grant", "person:")]
    assert since_today[0]["subject"] == "ticket:1"
    assert len(json.loads(gridbot("audit", "--json", "--since", "2026-01-11").output)) == 3
    assert len(json.loads(gridbot("audit", "--json", "--since", "2026-01-12").output)) == 2
    empty = gridbot("audit", "--action", "nothing.such")
    assert empty.exit_code == 0 and "no audit entries" in empty.output
    assert gridbot("audit", "--since", "yesterday").exit_code == 2
