"""A party member's duties ("我这周有什么安排"): thin over core.duties.duties_payload.

The duty buttons must reach the bot's callback handler (bot/duties_buttons.py), not Rasa:
their payloads are core.duties' callback strings ("ev:y:12"), which the bot routes to the
duty handler before anything that would go back to Rasa.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from core import duties, workflow
from core.messages import t


class ActionMyDuties(Action):
    def name(self) -> str:
        return "action_my_duties"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        sender = common.sender_id(tracker)
        with common.session() as s:
            person = workflow.person_by_telegram(s, sender) if sender is not None else None
            if person is None:
                dispatcher.utter_message(text=t("duty.deny.unknown_person"))
                return []
            payload = duties.duties_payload(s, person)
        buttons = [{"title": b["text"], "payload": b["callback_data"]}
                   for row in payload.get("buttons", []) for b in row]
        dispatcher.utter_message(text=payload["text"], buttons=buttons)
        return []
