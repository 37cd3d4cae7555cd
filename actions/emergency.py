"""Emergencies skip the form: the numbers to call come first (utter_emergency), then an urgent ticket.

Consent rules as for every report: the card names the reporter (masked) and 联系人 shows
their phone only if they consented at /start; otherwise the ticket is anonymous. The
place, not the person, is what handlers need; the resident calls 119/120/110 themselves.
Beyond `emergency_limit_per_hour` urgent tickets a resident still gets the numbers (the
rule utters them first) but no further ticket is filed and nobody is paged again.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.common import entities, entity
from actions.deps import Deps, GridAction
from actions.report_form import _by_code, _place_events, pending, reset_report, show_summary
from core.access import limits
from core.messages import t
from core.models import Building, Grid, Landmark
from core.people import residents
from core.tickets import lifecycle as tickets
from core.tickets import remarks
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket

log = logging.getLogger("gridbot.actions.emergency")

# Words that say the emergency was a mistake rather than over (the button says which).
_FALSE_ALARM = ("误报", "搞错", "弄错", "按错", "发错", "看错", "不是真的", "虚惊", "误会")


PLACE_SLOTS = ("place", "grid_code", "building_code", "landmark_code", "latitude", "longitude")


def _place(deps: Deps, tracker: Tracker) -> dict[str, Any]:
    """Where the emergency is: a place this message names; else the place the report form
    already resolved (an emergency typed while the form asked for more); else the home."""
    named = entities(tracker, "landmark", "gate", "building", "unit") or entity(tracker, "latitude") is not None
    if not named and tracker.get_slot("grid_code"):
        return {name: tracker.get_slot(name) for name in PLACE_SLOTS}
    return {e["name"]: e["value"] for e in _place_events(deps, tracker) if e.get("event") == "slot"}


def _after(tracker: Tracker) -> list[EventType]:
    """The form's slots go, unless a report waits for 确认: that one is kept (it is shown again
    with the next message), an emergency does not silently drop it."""
    return [SlotSet("requested_slot", None)] if pending(tracker) else [*reset_report(), SlotSet("requested_slot", None)]


class ActionFileEmergency(GridAction):
    def name(self) -> str:
        return "action_file_emergency"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if common.is_warm_up(tracker):
            return _after(tracker)
        slots = _place(self.deps, tracker)
        sender = common.sender_id(tracker)
        with self.deps.session() as s:
            reporter = residents.reporter_for(s, sender, str(common.metadata(tracker).get("display_name") or ""))
            verdict = limits.emergencies(s, reporter.id, settings=self.deps.settings) if reporter is not None else None
            if verdict is not None and not verdict.allowed:
                log.warning("emergency not filed: the sender reached %d urgent tickets within an hour",
                            verdict.limit)
                dispatcher.utter_message(text=t("limit.emergency", limit=verdict.limit))
                return _after(tracker)
            grid = _by_code(s, Grid, slots.get("grid_code"))
            if grid is None and reporter is not None and reporter.building_id is not None:
                home = s.get(Building, reporter.building_id)
                grid = home.grid if home is not None else None
            building = _by_code(s, Building, slots.get("building_code"))
            landmark = _by_code(s, Landmark, slots.get("landmark_code"))
            ticket = ticket_service.submit_report(s, NewTicket(
                category_code="emergency", description=common.message_text(tracker) or "紧急情况",
                reporter_id=reporter.id if reporter else None,
                community_id=grid.community_id if grid else None, grid_id=grid.id if grid else None,
                building_id=building.id if building else None, landmark_id=landmark.id if landmark else None,
                location_text=slots.get("place"), lat=slots.get("latitude"), lon=slots.get("longitude"),
                photo_file_ids=common.photo_ids(tracker),
                anonymous=reporter is None or not reporter.contact_consent,
                submission_key=common.submission_key(tracker),
            ), tz=self.deps.tz, notify_reporter=False)
            number = ticket.number
            told = ("emergency.filed" if ticket.grid_id is not None
                    else "emergency.filed_community" if ticket.community_id is not None
                    else "emergency.filed_unplaced")
        log.warning("emergency ticket %s filed", number)
        dispatcher.utter_message(text=t(told, number=number))  # says whom it told, no more
        return [*_after(tracker), SlotSet("emergency_ticket", number)]


class ActionEmergencyOver(GridAction):
    """"没事了" / "是误报" after an urgent ticket went out: the ticket is never deleted or cancelled;
    the resident's word is an event on it (core.tickets.remarks) that the handlers see, and they close it."""

    def name(self) -> str:
        return "action_emergency_over"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        number = entity(tracker, "ticket") or tracker.get_slot("emergency_ticket")
        sender = common.sender_id(tracker)
        outcome = entity(tracker, "outcome")
        if outcome not in ("over", "false_alarm"):
            text = common.message_text(tracker)
            outcome = "false_alarm" if any(w in text for w in _FALSE_ALARM) else "over"
        note = t(f"emergency.note_{outcome}")
        with self.deps.session() as s:
            ticket = tickets.get_by_number(s, str(number)) if number else None
            person = residents.person_by_telegram(s, sender) if sender is not None else None
            if ticket is None or not ticket.urgent or person is None or ticket.reporter_id != person.id \
                    or ticket.status.value in ("closed", "rejected", "duplicate"):
                dispatcher.utter_message(text=t("emergency.nothing_to_mark"))
                if pending(tracker):  # "没事了" is no answer to a report that waits for 确认
                    show_summary(self.deps, dispatcher, tracker, lead=t("report.pending"))
                return [SlotSet("emergency_ticket", None)]
            remarks.remark(s, ticket, person, note, t("emergency.line_marked", number=ticket.number, note=note))
            number = ticket.number
        log.warning("emergency ticket %s: the reporter says %s", number, outcome)
        dispatcher.utter_message(text=t("emergency.marked", number=number, note=note))
        return [SlotSet("emergency_ticket", None)]
