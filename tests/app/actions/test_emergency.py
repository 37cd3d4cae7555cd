"""action_file_emergency: an urgent ticket, placed as well as the message and the resident allow."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps
from actions.emergency import ActionFileEmergency
from core.config import get_settings
from core.messages import t
from tests.app.actions.helpers import report_slots, run, tickets

ENDS_THE_REPORT = {**{name: None for name in report_slots()}, "requested_slot": None}


def test_a_resident_at_home_gets_an_urgent_ticket_in_their_grid(db: sessionmaker[Session], deps: Deps) -> None:
    ran = run(ActionFileEmergency(deps), "emergency_at_home")
    [ticket] = tickets(db)
    assert {k: ticket[k] for k in ("category", "urgent", "grid", "building", "reporter", "description")} == {
        "category": "emergency", "urgent": True, "grid": "G-HPL-01", "building": "B-HPL-01-09", "reporter": 700000071,
        "description": "家里厨房着火了"}
    assert ran.texts == [t("emergency.filed", number=ticket["number"])]
    assert ran.slots == {**ENDS_THE_REPORT, "emergency_ticket": ticket["number"]}  # 取消 then says it went out


def test_a_place_in_the_message_places_a_strangers_emergency(db: sessionmaker[Session], deps: Deps) -> None:
    ran = run(ActionFileEmergency(deps), "emergency_names_place")
    [ticket] = tickets(db)
    assert (ticket["grid"], ticket["building"], ticket["urgent"]) == ("G-HPL-01", "B-HPL-01-07", True)
    assert ran.texts == [t("emergency.filed", number=ticket["number"])]


def test_without_any_place_the_community_is_told_and_the_resident_asked_for_the_address(db: sessionmaker[Session], deps: Deps) -> None:
    ran = run(ActionFileEmergency(deps), "emergency_no_place")
    [ticket] = tickets(db)
    assert (ticket["grid"], ticket["status"], ticket["urgent"]) == (None, "new", True)
    assert ran.texts == [t("emergency.filed_unplaced", number=ticket["number"])]
    assert ran.slots == {**ENDS_THE_REPORT, "emergency_ticket": ticket["number"]}


def test_beyond_the_hourly_limit_nothing_more_is_filed(db: sessionmaker[Session], deps: Deps) -> None:
    limit = get_settings().emergency_limit_per_hour
    for _ in range(limit):
        run(ActionFileEmergency(deps), "emergency_no_place")
    ran = run(ActionFileEmergency(deps), "emergency_no_place")
    assert ran.texts == [t("limit.emergency", limit=limit)]
    assert len(tickets(db)) == limit
    assert ran.slots == ENDS_THE_REPORT


def test_an_emergency_in_the_middle_of_a_report_uses_the_place_already_given(db: sessionmaker[Session], deps: Deps) -> None:
    ran = run(ActionFileEmergency(deps), "emergency_mid_form")
    [ticket] = tickets(db)
    assert (ticket["grid"], ticket["building"]) == ("G-HPL-01", "B-HPL-01-03")
    assert ran.texts == [t("emergency.filed", number=ticket["number"])]
