"""Status lookup: a resident's tickets, and one ticket's history."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.common import button, entity
from actions.deps import GridAction
from actions.rating import visit_buttons
from actions.report_form import pending
from core.access import commands
from core.messages import t
from core.people import residents
from core.presentation import cards
from core.tickets import ratings, visit
from core.tickets import service as ticket_service
from core.tickets.lifecycle import get_by_number


class ActionCheckStatus(GridAction):
    def name(self) -> str:
        return "action_check_status"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        sender = common.sender_id(tracker)
        number = entity(tracker, "ticket")
        with self.deps.reading() as s:
            person = residents.person_by_telegram(s, sender) if sender is not None else None
            if person is None:
                if not pending(tracker):
                    dispatcher.utter_message(text=t("status.none"))
                return []
            if number:
                ticket = get_by_number(s, str(number))
                if ticket is None or ticket not in ticket_service.tickets_of(s, person, limit=1000):
                    dispatcher.utter_message(text=t("status.not_yours"))
                    return []
                questions = visit.missing(ticket) if ticket in ratings.awaiting(s, person) else ()
                # the return visit still open: its first question offered here too (the 办结 notice may be long gone)
                dispatcher.utter_message(text=cards.history_text(s, ticket, person, tz=self.deps.tz)
                                         + ("\n\n" + t(f"visit.ask_{questions[0]}", number=ticket.number)
                                            if questions else ""),
                                         buttons=visit_buttons(ticket.id, questions[:1]) if questions else None)
                return []
            tickets = ticket_service.tickets_of(s, person)
            if not tickets:
                if not pending(tracker):  # else the waiting report is shown next (action_remind_pending)
                    dispatcher.utter_message(text=t("status.none"))
                return []
            lines = [t("status.line", number=x.number, category=x.category.name,
                       status=cards.status_label(x)) for x in tickets]
            buttons = [button(t("status.button_history", number=x.number), "check_status", ticket=x.number)
                       for x in tickets[:5]]
        dispatcher.utter_message(text=t("status.list") + "\n" + "\n".join(lines), buttons=buttons)
        return []


class ActionHelp(GridAction):
    """/help and "怎么用": what the bot takes, and the commands this person may use (core/access/commands.py)."""

    def name(self) -> str:
        return "action_help"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        sender = common.sender_id(tracker)
        with self.deps.reading() as s:
            person = residents.person_by_telegram(s, sender) if sender is not None else None
            roles = commands.roles_of(s, person)
        dispatcher.utter_message(text=commands.help_text(roles))
        return []
