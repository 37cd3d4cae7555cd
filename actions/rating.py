"""The return visit answered in words (Rasa's `rate` intent): "好了，谢谢", "还是不行", "满意", "还行".

The words answer the newest ticket whose visit still takes an answer (core.tickets.ratings): what
they say about solving answers 问题解决了吗, what they say of satisfaction answers 您满意吗, and
whatever is still missing is asked with the buttons of that row only. 未解决 reopens the ticket and
asks what is still wrong — the next message is the answer (core.messaging.prompts.REOPEN, taken
by the bot).
"""

from __future__ import annotations

import logging

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.deps import Deps, GridAction
from actions.report_form import pending, show_summary
from core.access.permissions import NotAllowed
from core.messages import t
from core.people import residents
from core.tickets import ratings, visit

log = logging.getLogger("gridbot.actions.rating")


def visit_buttons(ticket_id: int, questions: tuple[str, ...]) -> list[dict[str, str]]:
    """Rasa buttons whose payload is the bot's answer data (bot/ticket_buttons.py takes the press)."""
    return [{"title": title, "payload": data} for title, data in ratings.payloads(ticket_id, questions)]


def ask(dispatcher: CollectingDispatcher, ticket_id: int, number: str, question: str, lead: str = "") -> None:
    """One question of the visit, with its row of buttons."""
    dispatcher.utter_message(text=lead + t(f"visit.ask_{question}", number=number),
                             buttons=visit_buttons(ticket_id, (question,)))


def visit_in_words(deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, *, thanks: bool = False) -> bool:
    """Answer the return visit with the message's words; False when it answered nothing. With
    `thanks` (thanks that say something, "已经好了 太谢谢了", action_reply) only a visit that waits
    and words that answer it are taken, else the caller gives its usual answer."""
    sender = common.sender_id(tracker)
    said = ratings.answers_of(common.message_text(tracker))
    if thanks and said == (None, None):
        return False
    with deps.session() as s:
        person = residents.person_by_telegram(s, sender) if sender is not None else None
        waiting = ratings.awaiting(s, person) if person is not None else []
        if not waiting:
            if thanks:
                return False
            if pending(tracker):  # "还行" while a report waits for 确认: that report first
                show_summary(deps, dispatcher, tracker, lead=t("report.pending"))
            else:
                dispatcher.utter_message(text=t("rating.nothing"))
            return True
        ticket = waiting[0]
        number, ticket_id, open_ = ticket.number, ticket.id, visit.missing(ticket)
        solved = said.solved if "solved" in open_ else None
        score = said.score if "score" in open_ else None
        given = [q for q, v in (("solved", solved), ("score", score)) if v is not None]
        if not given:  # nothing (new) understood: the first question still open, by buttons
            if thanks:
                return False
            ask(dispatcher, ticket_id, number, open_[0])
            return True
        try:
            answered = ratings.answer(s, ticket_id, person, solved=solved, score=score, tz=deps.tz)
        except NotAllowed as exc:
            dispatcher.utter_message(text=str(exc))
            return True
        missing = answered.missing
    log.info("ticket %s: return visit answered in words %s", number, given)
    if answered.reopened:
        dispatcher.utter_message(text=t("rating.ask_reason", number=number))
    elif not missing:
        dispatcher.utter_message(text=t("rating.thanks"))
    if missing:
        ask(dispatcher, ticket_id, number, missing[0], lead="" if answered.reopened else t("visit.noted"))
    return True


class ActionRate(GridAction):
    def name(self) -> str:
        return "action_rate"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        visit_in_words(self.deps, dispatcher, tracker)
        return []
