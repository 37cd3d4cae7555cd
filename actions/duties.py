"""A party member's duties ("我这周有什么安排"): thin over core.duties.overview.duties_payload.

The duty buttons must reach the bot's callback handler (bot/duties_buttons.py), not Rasa:
their payloads are core.duties.service' callback strings ("ev:y:12"), which the bot routes to the
duty handler before anything that would go back to Rasa.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions import common
from actions.deps import GridAction
from core.access.permissions import NotAllowed
from core.duties import attendance, overview
from core.duties import common as duty_common
from core.messages import t
from core.models import Person
from core.people import residents
from core.presentation import callbacks


def _member(session: Session, tracker: Tracker, dispatcher: CollectingDispatcher) -> Person | None:
    """The person who wrote, or None after telling them gridbot does not know them."""
    sender = common.sender_id(tracker)
    person = residents.person_by_telegram(session, sender) if sender is not None else None
    if person is None:
        dispatcher.utter_message(text=t("duty.deny.unknown_person"))
    return person


class ActionMyDuties(GridAction):
    def name(self) -> str:
        return "action_my_duties"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        with self.deps.session() as s:
            person = _member(s, tracker, dispatcher)
            if person is None:
                return []
            payload = overview.duties_payload(s, person, tz=self.deps.tz)
        buttons = [{"title": b["text"], "payload": b["callback_data"]}
                   for row in payload.get("buttons", []) for b in row]
        dispatcher.utter_message(text=payload["text"], buttons=buttons)
        return []


class ActionRsvp(GridAction):
    """"我参加" / "我请假，要去医院" in words: answers the next study session the member is invited to.

    参加 is recorded at once. 请假 with a reason in the message is recorded with the member's
    words; without one, the session is shown with its 请假 button, whose press asks the reason.
    """

    def name(self) -> str:
        return "action_rsvp"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        attending = common.intent_name(tracker) == "rsvp_attend"
        text = common.message_text(tracker)
        with self.deps.session() as s:
            person = _member(s, tracker, dispatcher)
            if person is None:
                return []
            duty = overview.next_invitation(s, person, tz=self.deps.tz)
            if duty is None:
                dispatcher.utter_message(text=t("duty.rasa.no_event"))
                return []
            label: dict[str, Any] = {"title": duty.title, "when": duty_common.fmt_at(duty.starts_at, ZoneInfo(duty.tz))}
            reason = None if attending else attendance.leave_reason(text)
            if not attending and reason is None:
                dispatcher.utter_message(text=t("duty.rasa.leave_how", **label), buttons=[
                    {"title": t("duty.button_leave"), "payload": callbacks.event_answer("n", duty.ref_id)}])
                return []
            try:
                attendance.rsvp(s, duty.ref_id, person, attending, reason)
            except NotAllowed as exc:
                dispatcher.utter_message(text=str(exc))
                return []
        key = "duty.rasa.attending" if attending else "duty.rasa.leave"
        dispatcher.utter_message(text=t(key, **label))
        return []
