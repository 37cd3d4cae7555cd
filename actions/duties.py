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
from core.duties import attendance, overview, shifts, words
from core.duties import common as duty_common
from core.messages import t
from core.models import Person, utcnow
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
            payload = words.extend_payload(s, person, overview.duties_payload(s, person, tz=self.deps.tz),
                                           tz=self.deps.tz)
        buttons = [{"title": b["text"], "payload": b["callback_data"]}
                   for row in payload.get("buttons", []) for b in row]
        dispatcher.utter_message(text=payload["text"], buttons=buttons)
        return []


class ActionRsvp(GridAction):
    """"我参加" / "我请假，要去医院" / "我周三那个值班去不了了，帮我取消报名" in words.

    The words are matched to the member's coming duties by the day, the kind (值班/执勤 are
    shifts; 党小组会, 党课, 学习, 读书会 … are sessions) and the title they name
    (core.duties.words.named). One match is answered; two or more, or none, and the member is
    asked which, with a button per duty. Words that name nothing answer the next session the
    member is invited to. A shift is signed up for or given back (before its cutoff); a
    session's 参加 is recorded at once, its 请假 with the reason in the message, or, without one,
    the 请假 button asks for it.
    """

    def name(self) -> str:
        return "action_rsvp"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        attending = common.intent_name(tracker) == "rsvp_attend"
        text = common.message_text(tracker)
        tz = self.deps.tz
        with self.deps.session() as s:
            person = _member(s, tracker, dispatcher)
            if person is None:
                return []
            named = words.named(s, person, text, tz=tz)
            if named.named_something and len(named.found) != 1:
                return self._which(s, dispatcher, person, named, attending, tz)
            duty = named.found[0] if named.named_something else overview.next_invitation(s, person, tz=tz)
            if duty is None:
                dispatcher.utter_message(text=t("duty.rasa.no_event"))
                return []
            label: dict[str, Any] = {"title": duty.title, "when": duty_common.fmt_at(duty.starts_at, ZoneInfo(duty.tz))}
            if duty.kind == "shift":
                return self._shift(s, dispatcher, person, duty.ref_id, attending, label, tz)
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

    @staticmethod
    def _which(s: Session, dispatcher: CollectingDispatcher, person: Person, named: words.Named,
               attending: bool, tz: ZoneInfo) -> list[EventType]:
        options = named.found or [d for d in overview.my_duties(s, person, tz=tz, days=62) if d.starts_at > utcnow()]
        if not options:
            dispatcher.utter_message(text=t("duty.words.nothing"))
            return []
        rows = words.choice_buttons(options, "attend" if attending else "leave", tz)
        key = "duty.words.none_named" if not named.found else (
            "duty.words.which_attend" if attending else "duty.words.which_leave")
        dispatcher.utter_message(text=t(key), buttons=[
            {"title": b["text"], "payload": b["callback_data"]} for row in rows for b in row])
        return []

    @staticmethod
    def _shift(s: Session, dispatcher: CollectingDispatcher, person: Person, shift_id: int, attending: bool,
               label: dict[str, Any], tz: ZoneInfo) -> list[EventType]:
        try:
            if attending:
                shifts.sign_up(s, shift_id, person)
            else:
                shifts.cancel_signup(s, shift_id, person, tz=tz)
        except NotAllowed as exc:
            dispatcher.utter_message(text=str(exc))
            return []
        key = "duty.words.shift_signed_up" if attending else "duty.words.shift_cancelled"
        dispatcher.utter_message(text=t(key, **label))
        return []
