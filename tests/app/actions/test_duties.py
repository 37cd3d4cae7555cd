"""action_my_duties and action_rsvp: a party member's study sessions, answered in words."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps, GridAction
from actions.duties import ActionMyDuties, ActionRsvp
from core.db import read_scope, session_scope
from core.duties import common, events
from core.messages import t
from core.models import Attendance, Branch, EventKind, EventOccurrence, Person
from tests.app.actions.helpers import run

TZ = ZoneInfo("Asia/Shanghai")

TITLE, PLACE = "学习二十大精神", "社区党群服务中心201"


class Scheduled(NamedTuple):
    occurrence: int
    label: dict[str, str]  # what the answers name it by: title and local time


@pytest.fixture
def study_session(db: sessionmaker[Session]) -> Scheduled:
    """BR-HPL-01's secretary schedules a study session in three days for the whole branch."""
    with session_scope(db) as s:
        secretary = s.scalars(select(Person).where(Person.code == "P-0001")).one()
        branch = s.scalars(select(Branch).where(Branch.code == "BR-HPL-01")).one()
        event = events.create_event(s, secretary, branch_id=branch.id, kind=EventKind.study, title=TITLE,
                                    place=PLACE, starts_at=datetime.now(timezone.utc) + timedelta(days=3), tz=TZ.key)
        occ = s.scalars(select(EventOccurrence).where(EventOccurrence.event_id == event.id)).one()
        when = common.fmt_at(occ.starts_at, ZoneInfo(event.tz))
        return Scheduled(occ.id, {"title": TITLE, "when": when})


def attendance(db: sessionmaker[Session], telegram_id: int) -> list[tuple[str, str | None]]:
    with read_scope(db) as s:
        rows = s.execute(select(Attendance.status, Attendance.reason).join(Person, Person.id == Attendance.person_id)
                         .where(Person.telegram_id == telegram_id)).all()
        return [(status.value, reason) for status, reason in rows]


# -- 我的安排 -------------------------------------------------------------------------------

def test_a_member_sees_the_session_with_attend_and_leave_buttons(study_session: Scheduled, deps: Deps) -> None:
    ran = run(ActionMyDuties(deps), "duties_member")
    header, line = ran.texts[0].splitlines()
    assert header == t("duty.mine_header", days=14)
    assert TITLE in line and PLACE in line and t("duty.status.none") in line
    assert ran.payloads() == [f"ev:y:{study_session.occurrence}", f"ev:n:{study_session.occurrence}"]
    assert ran.events == []


@pytest.mark.parametrize("fixture", ["duties_member", "duties_resident"])
def test_nothing_scheduled(fixture: str, deps: Deps) -> None:
    ran = run(ActionMyDuties(deps), fixture)
    assert ran.texts == [t("duty.mine_none", days=14)] and ran.messages[0]["buttons"] == []


def test_a_resident_who_is_no_member_is_not_invited_to_the_branch_session(study_session: Scheduled, deps: Deps) -> None:
    ran = run(ActionMyDuties(deps), "duties_resident")
    assert ran.texts == [t("duty.mine_none", days=14)]


@pytest.mark.parametrize(("action", "fixture"), [(ActionMyDuties, "duties_stranger"),
                                                  (ActionRsvp, "rsvp_stranger")], ids=["duties", "rsvp"])
def test_someone_gridbot_does_not_know_is_told_to_start(action: type[GridAction], fixture: str,
                                                        study_session: Scheduled, deps: Deps) -> None:
    ran = run(action(deps), fixture)
    assert ran.texts == [t("duty.deny.unknown_person")] and ran.events == []


# -- 我参加 / 我请假 ---------------------------------------------------------------------------

def test_attending_in_words_is_recorded(db: sessionmaker[Session], study_session: Scheduled, deps: Deps) -> None:
    ran = run(ActionRsvp(deps), "rsvp_attend")
    assert ran.texts == [t("duty.rasa.attending", **study_session.label)]
    assert attendance(db, 700000002) == [("attending", None)]


def test_leave_with_a_reason_is_recorded_with_the_members_words(db: sessionmaker[Session],
                                                                 study_session: Scheduled, deps: Deps) -> None:
    ran = run(ActionRsvp(deps), "rsvp_leave_with_reason")
    assert ran.texts == [t("duty.rasa.leave", **study_session.label)]
    assert attendance(db, 700000002) == [("leave", "我请假，要带孩子去医院复查")]


def test_leave_without_a_reason_shows_the_leave_button(db: sessionmaker[Session], study_session: Scheduled, deps: Deps) -> None:
    ran = run(ActionRsvp(deps), "rsvp_leave_no_reason")
    assert ran.texts == [t("duty.rasa.leave_how", **study_session.label)]
    assert ran.payloads() == [f"ev:n:{study_session.occurrence}"]
    assert attendance(db, 700000002) == []


def test_a_member_of_another_branch_has_nothing_to_answer(db: sessionmaker[Session],
                                                           study_session: Scheduled, deps: Deps) -> None:
    ran = run(ActionRsvp(deps), "rsvp_other_branch")
    assert ran.texts == [t("duty.rasa.no_event")]
    assert attendance(db, 700000009) == []


def test_nothing_to_answer_without_a_session(deps: Deps) -> None:
    ran = run(ActionRsvp(deps), "rsvp_attend")
    assert ran.texts == [t("duty.rasa.no_event")]
