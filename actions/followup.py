"""After filing, in words: the reporter's changes to her tickets, and a person to talk to.

- withdraw_ticket (我要撤回工单), fix_ticket_category (类别选错了), add_to_ticket (我要补充情况):
  her tickets that the change applies to, each a button the bot handles (bot/followup.py,
  "rc:<what>:<id>"), which changes the ticket through core.tickets.changes.
- `attach_if_own`, called first by action_start_report: a complaint about something she has
  already reported ("电梯还是不动啊，你们根本没修") is added to her own ticket as a 补充 and the
  handler is told, instead of a new report offering 我也遇到了 on her own ticket.
- request_callback (找个人给我打电话 / 转人工 / 我要找网格员): a callback request for her grid's
  workers (core.people.callbacks); without a phone she is asked for it with the share-contact button.
- community_contact (社区电话多少): the community's and its 党群服务中心's phone, address and
  hours from the registry (core.places.contacts).
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import common
from actions.common import entities, intent_name, message_text
from actions.deps import Deps, GridAction
from core.messages import t
from core.models import Ticket, TicketStatus
from core.people import callbacks, phones, residents
from core.places import contacts, directory
from core.places.router import RouteStatus
from core.presentation import callbacks as button_data
from core.presentation import cards
from core.tickets import changes

log = logging.getLogger("gridbot.actions.followup")
COMPLAINT_PREFIX = "complaint_"


def _ticket_buttons(tickets: list[Ticket], what: str, code: str) -> list[dict[str, str]]:
    return [{"title": t(f"change.button_{what}", number=x.number) + f"｜{x.category.name}｜{_short(x.description)}",
             "payload": f"rc:{code}:{x.id}"} for x in tickets]


def _short(text: str, limit: int = 12) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class _PickTicket:
    """Her tickets the change applies to, as buttons (one press makes or starts the change).
    A mixin, not an action of its own."""

    deps: Deps

    what = ""  # core.tickets.changes.changeable's name of the change
    code = ""  # bot/followup.py's button code
    button = ""  # change.button_<button>

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        sender = common.sender_id(tracker)
        with self.deps.reading() as s:
            person = residents.person_by_telegram(s, sender) if sender is not None else None
            tickets = changes.changeable(s, person, self.what) if person is not None else []
            if not tickets:
                dispatcher.utter_message(text=t(f"change.none_{self.what}"))
                return []
            buttons = _ticket_buttons(tickets, self.button, self.code)
        dispatcher.utter_message(text=t(f"change.pick_{self.what}"), buttons=buttons)
        return []


class ActionWithdrawTicket(_PickTicket, GridAction):
    what, code, button = "withdraw", "w", "withdraw"

    def name(self) -> str:
        return "action_withdraw_ticket"


class ActionFixTicketCategory(_PickTicket, GridAction):
    what, code, button = "category", "c", "category"

    def name(self) -> str:
        return "action_fix_ticket_category"


class ActionAddToTicket(_PickTicket, GridAction):
    what, code, button = "supplement", "s", "supplement"

    def name(self) -> str:
        return "action_add_to_ticket"


def _building_named(deps: Deps, tracker: Tracker) -> int | None:
    """The building the message names, when the router places it for sure."""
    named = entities(tracker, "building")
    if not named:
        return None
    router = deps.router()
    estate = router.estate_named(message_text(tracker))
    result = router.by_text(f"{estate}{named[0]}" if estate else named[0])
    best = result.best
    if result.status is not RouteStatus.matched or best is None or best.kind != "building":
        return None
    with deps.reading() as s:
        return directory.building(s, best.code).id


def attach_if_own(deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType] | None:
    """A complaint she already reported becomes a 补充 of her ticket (core.tickets.changes
    .followup_target); None when it is a new report. Retried after a crash it adds nothing twice
    (the message's submission key is kept with the event)."""
    intent = intent_name(tracker)
    text = message_text(tracker)
    sender = common.sender_id(tracker)
    if not intent.startswith(COMPLAINT_PREFIX) or sender is None or not text or text.startswith("/") \
            or common.is_warm_up(tracker):
        return None
    code = intent[len(COMPLAINT_PREFIX):]
    photo = common.metadata(tracker).get("photo")
    building_id = _building_named(deps, tracker)
    with deps.session() as s:
        person = residents.person_by_telegram(s, sender)
        ticket = changes.followup_target(s, person, code, text, building_id=building_id)
        if ticket is None:
            return None
        changes.supplement(s, ticket.id, person, text, str(photo) if photo else None,
                                  key=common.submission_key(tracker))
        number, status, ticket_id = ticket.number, ticket.status, ticket.id
    log.info("a complaint was added to the reporter's own ticket %s", number)
    key = {TicketStatus.resolved: "change.followup_resolved", TicketStatus.closed: "change.followup_closed"}
    reply = t(key.get(status, "change.followup"), number=number, status=cards.status_name(status))
    if photo:
        reply += t("change.followup_photo")
    buttons: list[dict[str, Any]] = []
    if status is TicketStatus.resolved:  # 未解决 reopens it (bot/ticket_buttons.py, core.tickets.visit)
        buttons = [{"title": t("visit.solved_0"), "payload": button_data.solved(ticket_id, False)}]
    dispatcher.utter_message(text=reply, buttons=buttons)
    from actions.report_form import reset_report  # here: report_form calls this module first
    return [*reset_report(), FollowupAction("action_listen")]


class ActionRequestCallback(GridAction):
    """找个人给我打电话: a callback request for the grid's workers."""

    def name(self) -> str:
        return "action_request_callback"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        sender = common.sender_id(tracker)
        if sender is None or common.is_warm_up(tracker):
            return []
        with self.deps.session() as s:
            person = residents.reporter_for(s, sender, str(common.metadata(tracker).get("display_name") or ""))
            assert person is not None
            row, new = callbacks.request(s, person, message_text(tracker), tz=self.deps.tz)
            if row is None:
                text = t("callback.bind_first") + "\n\n" + contacts.contact_text(s, None)
            elif not new:
                text = t("callback.already")
            elif person.phone:
                text = t("callback.filed")
            else:  # the answer is the share-contact question itself (a reply keyboard, core.people.phones)
                phones.ask(s, sender, text=t("callback.filed_no_phone"))
                return []
        dispatcher.utter_message(text=text)
        return []


class ActionCommunityContact(GridAction):
    """社区电话多少: from the registry, the resident's own community first."""

    def name(self) -> str:
        return "action_community_contact"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        sender = common.sender_id(tracker)
        with self.deps.reading() as s:
            person = residents.person_by_telegram(s, sender) if sender is not None else None
            text = contacts.contact_text(s, person)
        dispatcher.utter_message(text=text)
        return []
