"""三张清单 in chat: /qingdan opens a menu of buttons (提供资源, 提出需求, 撮合项目, 看清单).

提供资源: the kind, the content and quantity typed ("会议室 1"), the period. A community admin who
is not a liaison first picks the registry organisation. 提出需求: the category, the place ("我的
楼栋" or typed), who benefits; a resident's need goes to the grid's reviewers with 同意 / 不同意
(不同意 asks for the reason, which the resident is told). 撮合项目: a listed need, then one of the
suggested resources; the project card carries the next step (开始实施, 已完成 with a note, 评估结项);
已完成 asks the grid's residents for stars. The draft is the person's open question
(core.messaging.prompts LISTS); every rule is checked in core.lists.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot.replies import Buttons, Outgoing, answer_press, button, respond, show, take_answer
from core.access.permissions import NotAllowed, allowed, scope_of_grid
from core.lists import entries, projects, views
from core.messages import t
from core.messaging import prompts
from core.messaging.prompts import Asked
from core.models import (
    Building,
    Need,
    PartyOrganisation,
    Person,
    Project,
    ProjectStatus,
    utcnow,
)
from core.people import residents

log = logging.getLogger("gridbot.bot.lists")

PRESS = "qd"  # button data: ["qd", what, value]
SHOWN = 8  # needs offered as buttons


def is_press(data: object) -> bool:
    return isinstance(data, list) and 2 <= len(data) <= 3 and data[0] == PRESS


def minutes_button(consultation_id: int) -> dict[str, Any]:
    """转为需求 under published minutes: the 议事 flow's way into a project."""
    return button(t("lists.button_minutes"), [PRESS, "minutes", consultation_id])


def takes_text(asked: Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.LISTS


def wants_photo(asked: Asked | None) -> bool:
    """A completion note is open: a photo with its caption is the note."""
    return takes_text(asked) and asked is not None and asked.value.get("step") == "note"


def _rows(labels: list[tuple[str, list[Any]]], width: int = 3) -> Buttons:
    buttons = [button(label, data) for label, data in labels]
    return [buttons[i:i + width] for i in range(0, len(buttons), width)] + [[button(t("lists.button_cancel"),
                                                                                     [PRESS, "cancel"])]]


def _menu(s: Session, person: Person | None) -> Buttons:
    labels = []
    if entries.liaison_of(s, person) is not None or views.admin_communities(s, person):
        labels.append((t("lists.button_offer"), [PRESS, "offer"]))
    labels.append((t("lists.button_need"), [PRESS, "need"]))
    if views.admin_communities(s, person):
        labels.append((t("lists.button_match"), [PRESS, "match"]))
    labels.append((t("lists.button_view"), [PRESS, "view"]))
    return [[button(label, data) for label, data in labels[:2]], [button(label, data) for label, data in labels[2:]]]


async def on_qingdan(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id = message.chat_id

    def work(s: Session, out: Outgoing) -> None:
        prompts.clear(s, user.id, prompts.LISTS)
        out.send(chat_id, t("lists.menu"), _menu(s, residents.person_by_telegram(s, user.id)))

    await respond(context, work)


def _card_buttons(row: Project) -> Buttons:
    step = {ProjectStatus.planned: "lists.button_start", ProjectStatus.under_way: "lists.button_done",
            ProjectStatus.done: "lists.button_evaluate"}.get(row.status)
    return [[button(t(step), [PRESS, "step", row.id])]] if step else []


def _ask_kind(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    prompts.ask(s, user_id, prompts.LISTS, {**draft, "step": "kind"})
    out.send(chat_id, t("lists.ask_kind"), _rows([(k, [PRESS, "kind", k]) for k in entries.KINDS]))



def _submit_need(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any],
                 beneficiaries: str) -> str:
    person = residents.person_by_telegram(s, user_id)
    need = entries.post_need(s, person, int(draft["grid"]), category=str(draft["category"]),
                             place=str(draft["place"]), beneficiaries=beneficiaries)
    prompts.clear(s, user_id, prompts.LISTS)
    text = entries.describe_need(s, need)
    if need.status.value == "pending":
        for reviewer in entries.reviewers(s, need):
            assert reviewer.telegram_id is not None
            out.send(reviewer.telegram_id, t("lists.to_review", need=text),
                     [[button(t("lists.button_approve"), [PRESS, "yes", need.id]),
                       button(t("lists.button_decline"), [PRESS, "no", need.id])]])
        return t("lists.need_pending", need=text)
    return t("lists.need_listed", need=text)


def _review(s: Session, out: Outgoing, chat_id: int, message_id: int | None, user_id: int, need_id: int, *,
            approve: bool, reason: str = "") -> None:
    need = entries.review(s, residents.person_by_telegram(s, user_id), need_id, approve=approve, reason=reason)
    done = t("lists.approved") if approve else t("lists.declined", reason=need.reason or "")
    show(out, chat_id, message_id, t("lists.to_review", need=entries.describe_need(s, need)) + "\n" + done)
    poster = s.get(Person, need.posted_by_id) if need.posted_by_id else None
    if poster is not None and poster.telegram_id is not None:
        out.send(poster.telegram_id, t("lists.told_approved", category=need.category, place=need.place) if approve
                 else t("lists.told_declined", reason=need.reason or ""))


def _complete(s: Session, out: Outgoing, chat_id: int, user_id: int, project_id: int, note: str,
              photos: list[str]) -> None:
    row = projects.advance(s, residents.person_by_telegram(s, user_id), project_id, note=note, photos=photos)
    out.send(chat_id, t("lists.advanced", project=projects.describe(s, row)), _card_buttons(row))
    need = s.get(Need, row.need_id)
    assert need is not None
    stars = [[button("⭐" * n, [PRESS, "rate", row.id * 10 + n]) for n in range(1, 6)]]
    for person in projects.beneficiaries(s, row):
        assert person.telegram_id is not None
        out.send(person.telegram_id, t("lists.completed", category=need.category, place=need.place, note=row.note or ""),
                 stars)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A typed step: a resource's content and quantity, a need's place, a completion note, a
    reviewer's reason."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id = message.chat_id
    text = (message.text or message.caption or "").strip()
    photos = [message.photo[-1].file_id] if message.photo else []
    step, draft = asked.value.get("step"), dict(asked.value)

    def work(s: Session, out: Outgoing) -> None:
        if not take_answer(s, out, chat_id, user.id, prompts.LISTS, text, needed="lists.needed",
                           cancelled="lists.cancelled"):
            return
        try:
            if step == "title":
                title, quantity = entries.parse_offer(text)
                prompts.ask(s, user.id, prompts.LISTS, {**draft, "step": "period", "title": title, "quantity": quantity})
                out.send(chat_id, t("lists.ask_period"), _rows([(p, [PRESS, "period", p]) for p in entries.PERIODS]))
            elif step == "place":
                _ask_beneficiaries(s, out, chat_id, user.id, {**draft, "place": entries.clean(text)})
            elif step == "reason":
                _review(s, out, chat_id, None, user.id, int(draft["need"]), approve=False, reason=text)
            elif step == "note":
                _complete(s, out, chat_id, user.id, int(draft["project"]), text, photos)
            else:  # a buttons-only step
                prompts.ask(s, user.id, prompts.LISTS, asked.value)
                out.send(chat_id, t("lists.needed"))
        except NotAllowed as exc:
            if step in ("title", "place", "note"):
                prompts.ask(s, user.id, prompts.LISTS, asked.value)
            out.send(chat_id, str(exc))

    await respond(context, work)


def _ask_beneficiaries(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    prompts.ask(s, user_id, prompts.LISTS, {**draft, "step": "beneficiaries"})
    out.send(chat_id, t("lists.ask_beneficiaries"), _rows([(b, [PRESS, "who", b]) for b in entries.BENEFICIARIES], 2))


def _need_grid(s: Session, person: Person | None) -> int:
    return entries.home_grid(s, person).id


def _press(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None,
           data: list[Any]) -> str | None:
    what, value = data[1], data[2] if len(data) > 2 else ""
    person = residents.person_by_telegram(s, user_id)
    if what == "yes":
        _review(s, out, chat_id, message_id, user_id, int(value), approve=True)
        return None
    if what == "no":
        need = s.get(Need, int(value))
        if need is None or not allowed(s, person, "lists.review", scope_of_grid(s, need.grid_id)):
            return t("deny.action", action=t("action.lists.review"))
        prompts.ask(s, user_id, prompts.LISTS, {"step": "reason", "need": need.id})
        out.send(chat_id, t("lists.ask_reason"))
        return None
    if what == "step":
        row = s.get(Project, int(value))
        if row is not None and row.status is ProjectStatus.under_way:
            projects.check_owner(s, person, row)
            prompts.ask(s, user_id, prompts.LISTS, {"step": "note", "project": row.id})
            out.send(chat_id, t("lists.ask_note"))
            return None
        row = projects.advance(s, person, int(value))
        show(out, chat_id, message_id, t("lists.advanced", project=projects.describe(s, row)), _card_buttons(row))
        return None
    if what == "rate":
        projects.rate(s, person, int(value) // 10, int(value) % 10)
        show(out, chat_id, message_id, t("lists.rated", stars=int(value) % 10))
        return None
    if what == "minutes":  # 议事: minutes → a listed need (bot/consult_chat.py shows the button)
        need = entries.need_from_minutes(s, person, int(value))
        out.send(chat_id, t("lists.minutes_need", need=entries.describe_need(s, need)))  # 转为工单 stays
        return None
    if what == "view":
        out.send(chat_id, views.overview(s, person))
        return None
    if what == "offer":
        admin = views.admin_communities(s, person)
        if entries.liaison_of(s, person) is not None:
            _ask_kind(s, out, chat_id, user_id, {})
        elif admin:
            ids = [c.id for c in admin]
            orgs = views.unit_organisations(s)
            prompts.ask(s, user_id, prompts.LISTS, {"step": "org", "community": ids[0]})
            out.send(chat_id, t("lists.ask_org"), _rows([(o.name, [PRESS, "org", o.id]) for o in orgs][:SHOWN], 1))
        else:
            return t("lists.deny.offer")
        return None
    if what == "need":
        grid = _need_grid(s, person)
        prompts.ask(s, user_id, prompts.LISTS, {"step": "category", "grid": grid})
        out.send(chat_id, t("lists.ask_category"), _rows([(c, [PRESS, "cat", c]) for c in entries.CATEGORIES]))
        return None
    if what == "match":
        needs = projects.open_needs(s, person)
        if not needs:
            return t("lists.no_needs")
        prompts.ask(s, user_id, prompts.LISTS, {"step": "match"})
        out.send(chat_id, t("lists.ask_need", count=len(needs)),
                 _rows([(f"{n.category}·{n.place}", [PRESS, "pick", n.id]) for n in needs[:SHOWN]], 1))
        return None
    asked = prompts.current(s, user_id)
    if asked is None or asked.kind != prompts.LISTS:
        return t("button_invalid")
    draft, step = dict(asked.value), asked.value.get("step")
    if what == "cancel":
        prompts.clear(s, user_id, prompts.LISTS)
        show(out, chat_id, message_id, t("lists.cancelled"))
    elif what == "org" and step == "org":
        org = s.get(PartyOrganisation, int(value))
        if org is None:
            return t("button_invalid")
        show(out, chat_id, message_id, org.name)
        _ask_kind(s, out, chat_id, user_id, {**draft, "org": org.id})
    elif what == "kind" and step == "kind" and value in entries.KINDS:
        show(out, chat_id, message_id, str(value))
        prompts.ask(s, user_id, prompts.LISTS, {**draft, "step": "title", "kind": value})
        out.send(chat_id, t("lists.ask_title"))
    elif what == "period" and step == "period":
        start, end = entries.period(str(value), utcnow().date())
        org = draft.get("org")
        resource = entries.offer(s, person, kind=str(draft["kind"]), title=str(draft["title"]),
                            quantity=int(draft["quantity"]), available_from=start, available_to=end,
                            organisation_id=int(org) if org is not None else None,
                            community_id=int(draft["community"]) if "community" in draft else None)
        prompts.clear(s, user_id, prompts.LISTS)
        show(out, chat_id, message_id, t("lists.offered", resource=entries.describe_resource(resource)))
    elif what == "cat" and step == "category" and value in entries.CATEGORIES:
        show(out, chat_id, message_id, str(value))
        prompts.ask(s, user_id, prompts.LISTS, {**draft, "step": "place", "category": value})
        out.send(chat_id, t("lists.ask_place"), [[button(t("lists.button_home"), [PRESS, "home"])]])
    elif what == "home" and step == "place":
        building = s.get(Building, person.building_id) if person and person.building_id else None
        if building is None:
            return t("lists.deny.no_home")
        show(out, chat_id, message_id, building.address)
        _ask_beneficiaries(s, out, chat_id, user_id, {**draft, "place": building.address})
    elif what == "who" and step == "beneficiaries" and value in entries.BENEFICIARIES:
        show(out, chat_id, message_id, _submit_need(s, out, chat_id, user_id, draft, str(value)))
    elif what == "pick" and step == "match":
        need = s.get(Need, int(value))
        if need is None:
            return t("button_invalid")
        found = projects.suggest(s, need, utcnow().date())
        if not found:
            return t("lists.no_resources")
        prompts.ask(s, user_id, prompts.LISTS, {"step": "resource", "need": need.id})
        show(out, chat_id, message_id, t("lists.ask_resource", need=entries.describe_need(s, need)),
               _rows([(f"{r.organisation}·{r.title}", [PRESS, "res", r.id]) for r in found], 1))
    elif what == "res" and step == "resource":
        row = projects.match(s, person, int(draft["need"]), int(value))
        prompts.clear(s, user_id, prompts.LISTS)
        show(out, chat_id, message_id, t("lists.matched", project=projects.describe(s, row)), _card_buttons(row))
    else:
        return t("button_invalid")
    return None


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    await answer_press(update, context, lambda s, out, user_id, chat_id, message_id:
                       _press(s, out, user_id, chat_id, message_id, data))


def handlers() -> list[BaseHandler]:
    return [CommandHandler("qingdan", on_qingdan, filters=filters.ChatType.PRIVATE)]
