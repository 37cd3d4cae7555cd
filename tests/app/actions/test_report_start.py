"""action_start_report: a complaint starts a report and keeps what its first message says."""

from __future__ import annotations

from rasa_sdk.events import SlotSet

from actions.deps import Deps
from actions.report_form import ActionStartReport
from core.messages import t
from tests.app.actions.helpers import report_slots, run


def test_every_report_slot_is_cleared_first(deps: Deps) -> None:
    ran = run(ActionStartReport(deps), "start_complaint_names_building")
    assert ran.events[:len(report_slots())] == [SlotSet(name, None) for name in report_slots()]


def test_a_complaint_that_names_a_building_fills_category_place_and_description(deps: Deps) -> None:
    ran = run(ActionStartReport(deps), "start_complaint_names_building")
    assert ran.slots == {
        "category": "fire_safety", "category_candidates": ["fire_safety", "parking"],
        # "3号楼" is in four estates; the resident lives in 和平里, so it is 和平里's.
        "place": "和平里小区3号楼", "grid_code": "G-HPL-01", "building_code": "B-HPL-01-03",
        "landmark_code": None, "place_candidates": None,
        "description": "3号楼消防通道被车堵死了",
        **{name: None for name in ("latitude", "longitude", "photo_ids", "duplicate_ticket", "form_failures",
                                   "report_id", "more_reports")},
    }
    assert ran.messages == []


def test_no_place_named_means_the_residents_building_and_the_photo_is_kept(deps: Deps) -> None:
    ran = run(ActionStartReport(deps), "start_complaint_at_home_with_photo")
    assert {k: ran.slots[k] for k in ("place", "grid_code", "building_code", "photo_ids", "category")} == {
        "place": "和平里小区7号楼", "grid_code": "G-HPL-01", "building_code": "B-HPL-01-07",
        "photo_ids": ["AgACAgUAAx-photo-1"], "category": "fire_safety"}
    assert ran.slots["description"] == "楼道里堆满了纸箱和旧家具"


def test_an_unsure_short_complaint_from_a_stranger_leaves_the_form_to_ask(deps: Deps) -> None:
    ran = run(ActionStartReport(deps), "start_complaint_unsure")
    assert ran.slots["category"] is None  # 0.41 is below SURE_CONFIDENCE
    assert ran.slots["category_candidates"] == ["noise", "pets", "dispute"]
    assert ran.slots["grid_code"] is None and ran.slots["place"] is None  # no home, no place named
    assert ran.slots["description"] is None  # "太吵了" says nothing beyond the category


def test_safety_numbers_come_first_then_the_out_of_scope_referral(deps: Deps) -> None:
    ran = run(ActionStartReport(deps), "start_possible_emergency_and_out_of_scope")
    assert [m["response"] for m in ran.messages] == ["utter_emergency", None]
    assert ran.texts[1] == t("report.also_out_of_scope")
    assert ran.slots["category"] == "noise"


def test_a_chosen_category_changes_only_the_category(deps: Deps) -> None:
    ran = run(ActionStartReport(deps), "start_change_category_chosen")
    assert ran.events == [SlotSet("category", "noise"), SlotSet("category_candidates", None)]


def test_a_category_that_is_no_report_category_offers_the_others(deps: Deps) -> None:
    ran = run(ActionStartReport(deps), "start_change_category_unknown")
    assert ran.slots["category"] is None
    offered = ran.slots["category_candidates"]
    assert offered[0] == "pets" and offered[-1] == "other" and len(offered) == 6
    assert "noise" not in offered and "emergency" not in offered
    assert [e["name"] for e in ran.events] == ["category", "category_candidates"]
