"""The report's other actions: the form's questions, the summary, photos, submit, cancel,
我也遇到了 and triage."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps
from actions.report_form import (
    ActionAddPhoto,
    ActionAskCategory,
    ActionAskDescription,
    ActionAskPlace,
    ActionCancelReport,
    ActionJoinTicket,
    ActionReportSummary,
    ActionSubmitReport,
    ActionTriage,
)
from core.db import read_scope
from core.messages import t
from core.models import OutboxMessage, Person
from core.protocol import FRAGMENT
from core.tickets.service import tickets_of
from tests.app.actions.helpers import report_slots, run, tickets

CLEARED = [SlotSet(name, None) for name in report_slots()]
SUBMITTED_DESCRIPTION = "东门门口的消防通道被一辆白车堵了两天"


def file_east_gate_ticket(db: sessionmaker[Session], deps: Deps) -> str:
    """Resident 700000072 confirms a parking report at 和平里's east gate; its number."""
    run(ActionSubmitReport(deps), "submit_confirmed")
    [ticket] = tickets(db)
    return str(ticket["number"])


# -- the form's questions --------------------------------------------------------------

def test_ask_category_offers_the_candidates_then_other_and_cancel(deps: Deps) -> None:
    ran = run(ActionAskCategory(deps), "ask_category_candidates")
    assert ran.texts == [t("report.ask_category")]
    assert ran.payloads() == ['/change_category{"category":"noise"}', '/change_category{"category":"pets"}',
                              '/change_category{"category":"other"}', "/cancel"]
    assert ran.events == []


def test_ask_category_without_known_candidates_offers_the_common_ones(deps: Deps) -> None:
    ran = run(ActionAskCategory(deps), "ask_category_unknown_candidates")
    assert ran.payloads() == [f'/change_category{{"category":"{c}"}}'
                              for c in ("parking", "noise", "sanitation", "property", "facilities", "other")
                              ] + ["/cancel"]


def test_ask_place_offers_the_candidates_as_buttons(deps: Deps) -> None:
    ran = run(ActionAskPlace(deps), "ask_place_candidates")
    assert ran.texts == [t("report.ask_place_choose")]
    assert ran.payloads() == ['/inform{"place_code":"B-HPL-01-03"}', '/inform{"place_code":"B-HPL-03-03"}']


def test_ask_place_after_two_failures_offers_a_way_out(deps: Deps) -> None:
    ran = run(ActionAskPlace(deps), "ask_place_candidates", slots={"form_failures": {"place": 2}})
    assert ran.texts == [t("report.ask_place_way_out")]
    assert ran.payloads()[-1] == "/cancel" and len(ran.payloads()) == 3


def test_ask_place_with_nothing_to_offer_asks_in_words(deps: Deps) -> None:
    ran = run(ActionAskPlace(deps), "ask_place_nothing_known")
    assert ran.texts == [t("report.ask_place")] and ran.messages[0]["buttons"] == []


@pytest.mark.parametrize("fixture", ["ask_description", "form_description_too_short"])
def test_ask_description_asks_and_changes_nothing(fixture: str, deps: Deps) -> None:
    ran = run(ActionAskDescription(deps), fixture)
    assert ran.texts == [t("report.ask_description")] and ran.events == []


# -- summary -----------------------------------------------------------------------------

def test_summary_shows_what_will_be_filed_with_confirm_change_and_cancel(deps: Deps) -> None:
    ran = run(ActionReportSummary(deps), "summary_complete")
    assert ran.texts == [t(
        "report.summary", category="乱停车", place="和平里小区东门", grid="和平里第二网格",
        description=SUBMITTED_DESCRIPTION, photos=t("report.summary_photos", n=1),
        limits=t("report.summary_limits", respond=t("time.days", n=1), resolve=t("time.days", n=7)))]
    # the report gets an id, and its 确认/取消 carry it: a press on an older summary is recognised
    report_id = ran.slots["report_id"]
    assert report_id and ran.payloads() == [f'/affirm{{"report":"{report_id}"}}', "/change_category",
                                            f'/cancel{{"report":"{report_id}"}}']
    assert ran.events == [SlotSet("report_id", report_id), SlotSet("duplicate_ticket", None)]


def test_summary_offers_me_too_for_an_open_ticket_of_the_same_kind_and_place(db: sessionmaker[Session], deps: Deps) -> None:
    number = file_east_gate_ticket(db, deps)
    ran = run(ActionReportSummary(deps), "summary_complete")
    report_id = ran.slots["report_id"]
    assert ran.payloads() == [f'/join_ticket{{"ticket":"{number}"}}', f'/affirm{{"report":"{report_id}"}}',
                              "/change_category", f'/cancel{{"report":"{report_id}"}}']
    assert ran.texts[0].endswith(t("report.duplicate", number=number, status=t("status.accepted"),
                                   description=SUBMITTED_DESCRIPTION))
    assert ran.events == [SlotSet("report_id", report_id), SlotSet("duplicate_ticket", number)]


def test_summary_without_a_place_gives_up_and_clears_the_report(deps: Deps) -> None:
    ran = run(ActionReportSummary(deps), "summary_place_given_up")
    assert ran.texts == [t("report.place_give_up")]
    assert ran.events == CLEARED


# -- photos ------------------------------------------------------------------------------

def test_a_photo_mid_form_is_added_silently(deps: Deps) -> None:
    ran = run(ActionAddPhoto(deps), "add_photo_mid_form")
    assert ran.events == [SlotSet("photo_ids", ["AgACAgUAAx-photo-1", "AgACAgUAAx-photo-2"])]
    assert ran.messages == []


def test_the_same_photo_twice_is_kept_once(deps: Deps) -> None:
    ran = run(ActionAddPhoto(deps), "add_photo_mid_form", slots={"photo_ids": ["AgACAgUAAx-photo-2"]})
    assert ran.events == [SlotSet("photo_ids", ["AgACAgUAAx-photo-2"])]


def test_a_photo_before_any_words_is_kept_and_the_problem_asked_for(deps: Deps) -> None:
    ran = run(ActionAddPhoto(deps), "add_photo_before_words")
    assert ran.events == [SlotSet("photo_ids", ["AgACAgUAAx-photo-1"])]
    assert ran.texts == [t("report.photo_kept")]


def test_share_photo_without_a_photo_says_how(deps: Deps) -> None:
    ran = run(ActionAddPhoto(deps), "add_photo_without_photo")
    assert ran.texts == [t("report.photo_how")] and ran.events == []


# -- submit ------------------------------------------------------------------------------

def test_confirming_files_the_ticket_to_its_grid_and_clears_the_report(db: sessionmaker[Session], deps: Deps) -> None:
    ran = run(ActionSubmitReport(deps), "submit_confirmed")
    [ticket] = tickets(db)
    assert {k: ticket[k] for k in ("category", "status", "urgent", "grid", "building", "landmark",
                                   "description", "photos", "reporter")} == {
        "category": "parking", "status": "accepted", "urgent": False, "grid": "G-HPL-02", "building": None,
        "landmark": "L-HPL-EG", "description": SUBMITTED_DESCRIPTION, "photos": ["AgACAgUAAx-photo-1"],
        "reporter": 700000072}
    assert ran.texts == [t("report.filed", number=ticket["number"], grid="和平里第二网格",
                           resolve=t("time.days", n=7))]
    assert ran.events == CLEARED


def test_confirming_without_a_place_files_nothing(db: sessionmaker[Session], deps: Deps) -> None:
    ran = run(ActionSubmitReport(deps), "submit_without_place")
    assert ran.texts == [t("report.nothing_to_submit")] and ran.events == CLEARED
    assert tickets(db) == []


# -- cancel ------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["cancel_mid_form", "cancel_nothing_started"])
def test_cancel_says_so_and_clears_every_report_slot(fixture: str, deps: Deps) -> None:
    ran = run(ActionCancelReport(deps), fixture)
    assert ran.texts == [t("report.cancelled")]
    assert ran.events == CLEARED


# -- 我也遇到了 ---------------------------------------------------------------------------

def test_me_too_follows_the_offered_ticket_and_tells_its_status(db: sessionmaker[Session], deps: Deps) -> None:
    number = file_east_gate_ticket(db, deps)
    ran = run(ActionJoinTicket(deps), "join_offered_duplicate", ticket=number)
    assert ran.events == CLEARED and ran.messages == []  # the notice goes through the outbox
    with read_scope(db) as s:
        joiner = s.scalars(select(Person).where(Person.telegram_id == 700000074)).one()
        assert [x.number for x in tickets_of(s, joiner)] == [number]
        notices = s.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == 700000074)).all()
        assert [n.payload["text"] for n in notices] == [
            t("notify.joined", number=number, status=t("status.accepted"))]
    assert len(tickets(db)) == 1  # no duplicate filed


@pytest.mark.parametrize("fixture", ["join_unknown_ticket", "join_not_a_telegram_sender"])
def test_me_too_without_a_ticket_to_join_says_so(fixture: str, db: sessionmaker[Session], deps: Deps) -> None:
    file_east_gate_ticket(db, deps)
    ran = run(ActionJoinTicket(deps), fixture)
    assert ran.texts == [t("report.join_nothing")] and ran.events == []


# -- triage ------------------------------------------------------------------------------

def test_triage_of_an_unsure_complaint_asks_for_the_category_and_keeps_the_words(deps: Deps) -> None:
    ran = run(ActionTriage(deps), "triage_unsure")
    # typing on instead of pressing joins the words (the FRAGMENT marker, bot/conversation.py)
    assert ran.texts == [t("report.ask_category_unsure"), None]
    assert ran.messages[1]["custom"] == {FRAGMENT: True}
    assert ran.payloads() == ['/change_category{"category":"noise"}', '/change_category{"category":"dispute"}',
                              '/change_category{"category":"other"}', "/cancel"]
    assert ran.events == [*CLEARED, SlotSet("description", "楼下那家天天半夜搬东西很烦人"),
                          SlotSet("category_candidates", ["noise", "dispute", "other"]),
                          SlotSet("photo_ids", None)]


def test_triage_of_a_few_characters_is_the_default_answer(deps: Deps) -> None:
    ran = run(ActionTriage(deps), "triage_too_short")
    assert ran.texts == [t("default"), None] and ran.events == []
    assert ran.messages[1]["custom"] == {FRAGMENT: True}  # joined to the next message


def test_triage_of_a_photo_with_a_vague_caption_keeps_the_photo(deps: Deps) -> None:
    ran = run(ActionTriage(deps), "triage_photo_vague_caption")
    assert ran.texts == [t("report.photo_kept")]
    assert ran.events == [SlotSet("photo_ids", ["AgACAgUAAx-photo-3"])]
