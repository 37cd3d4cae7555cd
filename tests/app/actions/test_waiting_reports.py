"""Reports that wait for 确认 (actions/report_form.py): several filed with one press, one of
several dropped, a 确认 pressed while a question is open, 取消 after an emergency."""

from __future__ import annotations

from rasa_sdk.events import SlotSet
from sqlalchemy.orm import Session, sessionmaker

from actions.deps import Deps
from actions.report_form import ActionCancelReport, ActionSubmitReport
from core.messages import t
from tests.app.actions.helpers import run, tickets

HELD = {"category": "sanitation", "place": "和平里小区东门", "grid_code": "G-HPL-02", "building_code": None,
        "landmark_code": "L-HPL-EG", "latitude": None, "longitude": None,
        "description": "东门垃圾桶满了没人收", "photo_ids": None}


def test_one_press_files_every_waiting_report_each_with_a_key_of_its_own(db: sessionmaker[Session],
                                                                         deps: Deps) -> None:
    ran = run(ActionSubmitReport(deps), "submit_several", slots={"more_reports": [HELD], "report_id": "r1"})
    filed = tickets(db)
    assert [x["category"] for x in filed] == ["sanitation", "parking"]
    assert ran.texts == [t("report.filed_several", n=2, items="\n".join(
        t("report.filed_line", number=x["number"], category=name, grid="和平里第二网格", resolve=t("time.days", n=7))
        for x, name in zip(filed, ("环境卫生", "乱停车"), strict=True)))]
    numbers = "、".join(x["number"] for x in filed)
    assert SlotSet("closed_reports", {"r1": f"filed:{numbers}"}) in ran.events
    again = run(ActionSubmitReport(deps), "submit_several", slots={"more_reports": [HELD], "report_id": "r1"})
    assert len(tickets(db)) == 2 and again.texts == ran.texts  # the same message again files nothing twice


def test_a_confirm_while_a_question_is_open_asks_to_finish_it(db: sessionmaker[Session], deps: Deps) -> None:
    ran = run(ActionSubmitReport(deps), "form_place_answer", slots={"more_reports": [HELD], "report_id": "r1"})
    assert ran.texts == [t("report.finish_first")] and ran.events == [] and tickets(db) == []


def test_cancel_after_an_emergency_says_it_went_out_and_offers_over_or_false_alarm(
        db: sessionmaker[Session], deps: Deps) -> None:
    from actions.emergency import ActionFileEmergency
    run(ActionFileEmergency(deps), "emergency_at_home")
    [ticket] = tickets(db)
    ran = run(ActionCancelReport(deps), "cancel_nothing_started", slots={"emergency_ticket": ticket["number"]})
    assert ran.texts == [t("emergency.cannot_cancel", number=ticket["number"])]
    assert ran.payloads() == [f'/emergency_over{{"ticket":"{ticket["number"]}","outcome":"over"}}',
                              f'/emergency_over{{"ticket":"{ticket["number"]}","outcome":"false_alarm"}}']
    assert ran.events == [] and tickets(db)[0]["status"] == "accepted"


def test_a_message_naming_several_problems_starts_one_report_each_in_the_residents_words(deps: Deps) -> None:
    from actions.report_form import ActionStartReport
    ran = run(ActionStartReport(deps), "start_several_problems")
    assert ran.slots["category"] == "elevator" and ran.slots["description"] == "電梯也壞了三天了"
    [held] = ran.slots["more_reports"]
    assert (held["category"], held["description"], held["grid_code"]) == ("fire_safety", "三號樓消防通道被車堵死了",
                                                                          "G-HPL-01")
