"""validate_report_form: what counts as an answer to the form's question, and what does not."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet

from actions.deps import Deps
from actions.report_form import ValidateReportForm
from core.messages import t
from tests.app.actions.helpers import run


def test_happy_path_a_place_answer_is_routed_to_its_grid(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_place_answer")
    assert ran.slots == {"place": "和平里小区7号楼", "grid_code": "G-HPL-01", "building_code": "B-HPL-01-07",
                         "landmark_code": None, "place_candidates": None, "form_failures": None}
    assert ran.messages == []


def test_a_pressed_place_button_is_taken_by_its_code(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_place_button")
    assert (ran.slots["place"], ran.slots["grid_code"], ran.slots["building_code"]) == (
        "和平里小区13号楼", "G-HPL-02", "B-HPL-02-13")


def test_values_from_the_first_message_are_kept_when_the_form_starts(deps: Deps) -> None:
    # The complaint named "3号楼" (ambiguous on its own); action_start_report resolved it
    # with the resident's estate, and the form's activation must not route it again.
    ran = run(ValidateReportForm(deps), "form_activated_with_first_message")
    assert ran.events == [SlotSet("category", "fire_safety"), SlotSet("place", "和平里小区3号楼"),
                          SlotSet("description", "3号楼消防通道被车堵死了")]
    assert ran.messages == []


@pytest.mark.parametrize("fixture", ["form_place_interrupted_by_emergency",
                                     "form_place_side_question_status_command"])
def test_an_interruption_while_the_place_is_asked_is_no_answer(fixture: str, deps: Deps) -> None:
    # Nothing validated: Rasa rejects the form and the interruption's rule runs.
    ran = run(ValidateReportForm(deps), fixture)
    assert ran.events == [] and ran.messages == []


def test_a_typed_status_question_while_the_place_is_asked_is_no_answer(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_place_side_question_status_typed")
    assert ran.events == [] and ran.messages == []


def test_a_typed_help_question_while_the_description_is_asked_is_no_answer(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_description_side_question_help_typed")
    assert "description" not in ran.slots


def test_a_captioned_photo_mid_form_adds_the_photo_and_answers_nothing(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_description_photo_caption")
    assert ran.events == [SlotSet("photo_ids", ["AgACAgUAAx-photo-1", "AgACAgUAAx-photo-2"])]


@pytest.mark.parametrize(("before", "after", "said"), [
    (None, {"place": 1}, "report.place_unknown"),
    ({"place": 1}, {"place": 2}, "report.place_unknown_again"),
])
def test_a_bad_place_is_refused_and_counted(before: dict[str, int] | None, after: dict[str, int], said: str, deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_place_garbage", slots={"form_failures": before})
    assert ran.slots == {"place": None, "place_candidates": None, "form_failures": after}
    assert ran.texts == [t(said)]


def test_the_third_bad_place_ends_the_form_instead_of_asking_again(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_place_garbage", slots={"form_failures": {"place": 2}})
    assert ran.slots == {"place": None, "place_candidates": None, "form_failures": {"place": 3},
                         "requested_slot": None}
    assert ran.messages == []  # action_report_summary says what to do instead


def test_an_unknown_estate_offers_the_residents_own_building(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_place_unknown_estate")
    assert ran.slots["place"] is None
    assert ran.slots["place_candidates"] == [
        {"code": "B-HPL-01-09", "label": t("report.place_home", address="和平里小区9号楼")}]
    assert ran.texts == [t("report.place_unknown")]


def test_an_ambiguous_building_is_a_choice_not_a_failure(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_place_ambiguous_building")
    assert ran.slots["place"] is None and "form_failures" not in ran.slots
    assert [c["code"] for c in ran.slots["place_candidates"]] == [
        "B-HPL-01-03", "B-HPL-03-03", "B-QNH-01-03", "B-QNH-03-03"]
    assert ran.messages == []


def test_a_description_answer_is_taken_whatever_the_intent(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_description_answer")
    assert ran.events == [SlotSet("description", "每天晚上十一点以后还在装修")]


@pytest.mark.parametrize(("before", "description"), [
    (None, None),
    ({"description": 1}, t("report.description_none", category="噪音扰民")),
])
def test_an_empty_description_is_refused_once_then_the_category_stands_for_it(before: dict[str, int] | None, description: str | None, deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_description_too_short", slots={"form_failures": before})
    assert ran.slots["description"] == description
    assert ran.slots["form_failures"] == {"description": 1 + (before or {}).get("description", 0)}


def test_a_complaint_answers_the_category_question(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_category_answer")
    assert ran.events == [SlotSet("category", "parking")]


def test_an_unknown_category_is_refused(deps: Deps) -> None:
    ran = run(ValidateReportForm(deps), "form_category_unknown")
    assert ran.events == [SlotSet("category", None)]
