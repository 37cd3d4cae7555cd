"""A rating typed in words: "满意", "还行", "不满意" (Rasa's `rate` intent).

It rates the newest ticket the resident may still rate (core.tickets.ratings); 不满意 reopens it and asks
what is still wrong — their next message is the answer (core.messaging.prompts.REOPEN, taken by the bot).
"""

from __future__ import annotations

import logging

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.deps import GridAction
from actions.report_form import pending, show_summary
from core.access.permissions import NotAllowed
from core.messages import t
from core.models import TicketStatus
from core.people import residents
from core.tickets import ratings

log = logging.getLogger("gridbot.actions.rating")


def rating_buttons(ticket_id: int) -> list[dict[str, str]]:
    """Rasa buttons whose payload is the bot's rating data (bot/ticket_buttons.py takes the press)."""
    return [{"title": title, "payload": data} for title, data in ratings.payloads(ticket_id)]


class ActionRate(GridAction):
    def name(self) -> str:
        return "action_rate"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        sender = common.sender_id(tracker)
        score = ratings.score_of(common.message_text(tracker))
        with self.deps.session() as s:
            person = residents.person_by_telegram(s, sender) if sender is not None else None
            waiting = ratings.awaiting(s, person) if person is not None else []
            if not waiting:
                if pending(tracker):  # "还行" while a report waits for 确认: that report first
                    show_summary(self.deps, dispatcher, tracker, lead=t("report.pending"))
                else:
                    dispatcher.utter_message(text=t("rating.nothing"))
                return []
            ticket = waiting[0]
            if score is None:
                dispatcher.utter_message(text=t("rating.offer") + f"（{ticket.number}）",
                                         buttons=rating_buttons(ticket.id))
                return []
            try:
                rated = ratings.rate(s, ticket.id, person, score, tz=self.deps.tz)
            except NotAllowed as exc:
                dispatcher.utter_message(text=str(exc))
                return []
            number, reopened = rated.number, rated.status is TicketStatus.reopened
        log.info("ticket %s rated %d in words", number, score)
        dispatcher.utter_message(text=t("rating.ask_reason", number=number) if reopened else t("rating.thanks"))
        return []
