"""/xuexi: the 党员学习资料库 in chat, a secretary's study materials, and 补学.

/xuexi shows the person's library (core.study.library) as topic buttons; a topic lists its items
newest first, a page at a time, each opened by its button (the material is sent again: a text, a
link, or a photo or document by its Telegram file_id). 🔍 搜索 asks for words; /xuexi 词 searches
at once.

➕ 添加资料 (study.manage) offers the branch's sessions of the last 30 days and the next two weeks,
or 只放入资料库; /report's 📎 资料 button starts at its meeting. Then the material — a text, a link,
a document, a photo — and its topic: a button of the library's topics, a new one typed, or (for a
session's material) 不放入资料库. A material attached once the session's check-in has closed goes
at once to those who missed it (core.study.catchup.deliver); one attached before goes when it
closes (the leader's sweep).

已学（补学）under a session's materials asks for the 学习心得: typed (at least
STUDY_NOTE_MIN_CHARS characters) or a voice message. Too short, it is refused with the count
still needed and the question stays open; a second 补学 of the same session is refused politely.

The open question is the person's prompt (core.messaging.prompts STUDY: "words", "content",
"topic", "note"); every rule is checked in core.study.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot.replies import Buttons, Outgoing, answer_press, respond, show, take_answer
from core.access.permissions import NotAllowed
from core.config import get_settings
from core.messages import t
from core.messaging import prompts
from core.messaging.prompts import Asked
from core.models import Branch, EventOccurrence, Person, utcnow
from core.people import residents
from core.study import catchup, library, materials
from core.study.buttons import ADD, DONE, FIND, FOR, HOME, OPEN, PUT, SEARCH, TOPIC, button, parse

log = logging.getLogger("gridbot.bot.study")

TOPICS_SHOWN = 12
TITLE_SHOWN = 24  # characters of a title on an item's button


def is_press(data: object) -> bool:
    return parse(data) is not None


def takes_text(asked: Asked | None) -> bool:
    return asked is not None and asked.kind == prompts.STUDY


def wants_file(asked: Asked | None) -> bool:
    """A material is asked for: a photo or a document is it."""
    return takes_text(asked) and asked is not None and asked.value.get("step") == "content"


def wants_voice(asked: Asked | None) -> bool:
    """A 学习心得 is asked for: a voice message is it."""
    return takes_text(asked) and asked is not None and asked.value.get("step") == "note"


def attach_button(occurrence_id: int, branch_id: int, title: str) -> dict[str, Any]:
    """/report's 📎 资料 under a meeting: add a study material to it."""
    return button(t("study.button_attach", title=title), FOR, [occurrence_id, branch_id])


def _min_chars() -> int:
    return get_settings().study_note_min_chars


def _pairs(buttons: list[dict[str, Any]]) -> Buttons:
    return [buttons[i:i + 2] for i in range(0, len(buttons), 2)]


def _names(shelf: library.Shelf) -> str:
    if len(shelf.branches) > 2:
        return t("study.branches_many", first=shelf.branches[0].name, n=len(shelf.branches))
    return shelf.names


# -- reading ---------------------------------------------------------------------------------------

def _menu(s: Session, person: Person | None) -> tuple[str, Buttons]:
    shelf = library.shelf_of(s, person)
    managed = materials.managed_branches(s, person)
    if not shelf.branches and not managed:
        return t("study.not_member"), []
    total = library.count(s, shelf)
    rows = _pairs([button(t("study.button_topic", topic=topic, count=n), TOPIC, [topic, 0])
                   for topic, n in library.topics(s, shelf)[:TOPICS_SHOWN]])
    if total:
        rows.append([button(t("study.button_search"), SEARCH)])
    if managed:
        rows.append([button(t("study.button_add"), ADD)])
    return (t("study.menu", branches=_names(shelf), total=total) if total
            else t("study.menu_empty", branches=_names(shelf))), rows


def _page(s: Session, person: Person | None, *, topic: str | None = None, query: str | None = None,
          number: int = 0) -> tuple[str, Buttons]:
    shelf = library.shelf_of(s, person)
    if not shelf.branches:
        return t("study.not_member"), []
    back = [button(t("study.button_back"), HOME)]
    page = library.page_of(s, shelf, topic=topic, query=query, number=number)
    if not page.total:
        return t("study.search_none", words=query or topic or ""), [back]
    tz = get_settings().tz
    first = page.number * library.PAGE + 1
    head = (t("study.topic_page", topic=topic, total=page.total, page=page.number + 1, pages=page.pages)
            if topic is not None else
            t("study.search_page", words=query, total=page.total, page=page.number + 1, pages=page.pages))
    lines = [head] + [t("study.item_line", **library.line_values(m, first + i, tz)) for i, m in enumerate(page.items)]
    rows: Buttons = [[button(t("study.button_item", n=first + i, title=m.title[:TITLE_SHOWN]), OPEN, m.id)]
                     for i, m in enumerate(page.items)]
    what, key = (TOPIC, topic) if topic is not None else (FIND, query)
    nav = []
    if page.has_previous:
        nav.append(button(t("study.button_prev"), what, [key, page.number - 1]))
    if page.has_next:
        nav.append(button(t("study.button_next"), what, [key, page.number + 1]))
    return "\n".join(lines), rows + ([nav] if nav else []) + [back]


def _send_material(s: Session, out: Outgoing, chat_id: int, person: Person | None, material_id: int) -> None:
    shown = materials.payload(library.material_for(s, person, material_id))
    out.send_with(chat_id, shown.pop("text"), **shown)


async def on_xuexi(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/xuexi: the library's topics; /xuexi 词: the items with those words."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    chat_id, query = message.chat_id, " ".join(context.args or []).strip()

    def work(s: Session, out: Outgoing) -> None:
        prompts.clear(s, user.id, prompts.STUDY)
        person = residents.person_by_telegram(s, user.id)
        text, rows = _page(s, person, query=query) if query else _menu(s, person)
        out.send(chat_id, text, rows or None)

    await respond(context, work)


# -- adding materials ----------------------------------------------------------------------------

def _pick_session(s: Session, person: Person | None) -> tuple[str, Buttons]:
    managed = materials.managed_branches(s, person)
    if not managed:
        raise NotAllowed(t("deny.action", action=t("action.study.manage")))
    sessions = materials.sessions_for(s, [b.id for b in managed], utcnow())
    names = {b.id: b.name for b in managed}
    rows: Buttons = []
    for occ in sessions:
        label = t("study.button_session", when=materials.session_label(occ)["when"], title=occ.event.title)
        rows.append([button(label if len(managed) == 1 else f"{label} · {names[occ.event.branch_id]}",
                            FOR, [occ.id, occ.event.branch_id])])
    rows += [[button(t("study.button_library_only", branch=b.name), FOR, [0, b.id])] for b in managed[:4]]
    return t("study.ask_session") if sessions else t("study.no_sessions"), rows


def _ask_content(s: Session, out: Outgoing, chat_id: int, user_id: int, value: Any) -> None:
    occurrence_id, branch_id = int(value[0]), int(value[1])
    person = residents.person_by_telegram(s, user_id)
    occ = materials.target(s, person, branch_id, occurrence_id or None)
    prompts.ask(s, user_id, prompts.STUDY, {"step": "content", "branch": branch_id,
                                            "occurrence": occ.id if occ is not None else None})
    out.send(chat_id, t("study.ask_content_for", **materials.session_label(occ)) if occ is not None
             else t("study.ask_content"))


def _ask_topic(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any]) -> None:
    branch = s.get(Branch, int(draft["branch"]))
    topics = materials.branch_topics(s, branch)[:TOPICS_SHOWN] if branch is not None else []
    rows = _pairs([button(topic, PUT, topic) for topic in topics])
    if draft.get("occurrence"):
        rows.append([button(t("study.button_no_topic"), PUT, "")])
    prompts.ask(s, user_id, prompts.STUDY, {**draft, "step": "topic"})
    out.send(chat_id, t("study.ask_topic", limit=materials.TOPIC_LIMIT), rows or None)


def _save(s: Session, out: Outgoing, chat_id: int, user_id: int, draft: dict[str, Any], topic: str | None) -> None:
    person = residents.person_by_telegram(s, user_id)
    content = materials.Content.from_dict(draft["content"])
    occurrence_id = int(draft["occurrence"]) if draft.get("occurrence") else None
    row = materials.add(s, person, branch_id=int(draft["branch"]), content=content, topic=topic,
                        occurrence_id=occurrence_id)
    prompts.clear(s, user_id, prompts.STUDY)
    lines = [t("study.added", title=row.title, kind=t(f"study.kind.{row.kind.value}"))]
    occ = s.get(EventOccurrence, occurrence_id) if occurrence_id is not None else None
    if occ is not None:
        lines.append(t("study.added_session", **materials.session_label(occ)))
    lines.append(t("study.added_topic", topic=row.topic) if row.topic else t("study.added_no_topic"))
    if occ is not None:
        now = utcnow()
        reached = catchup.deliver(s, occ, now)
        lines.append(t("study.delivered_now", count=reached) if catchup.ended(occ, now) else t("study.delivered_later"))
    out.send(chat_id, "\n".join(lines),
             [[button(t("study.button_more"), FOR, [occurrence_id or 0, int(draft["branch"])])]])


# -- 补学 ---------------------------------------------------------------------------------------------

def _catch_up(s: Session, out: Outgoing, chat_id: int, user_id: int, asked: Asked, *, note: str | None = None,
              voice: str | None = None) -> None:
    occurrence_id = int(asked.value["occurrence"])
    person = residents.person_by_telegram(s, user_id)
    try:
        catchup.record(s, occurrence_id, person, note=note, voice_file_id=voice, min_chars=_min_chars())
    except catchup.NoteTooShort as exc:
        prompts.ask(s, user_id, prompts.STUDY, asked.value)  # the question stays open
        out.send(chat_id, str(exc))
        return
    except NotAllowed as exc:  # e.g. a second 补学: said politely, the question closed
        out.send(chat_id, str(exc))
        return
    occ = s.get(EventOccurrence, occurrence_id)
    assert occ is not None
    out.send(chat_id, t("study.note_recorded", **materials.session_label(occ)))


# -- typed answers, files, voice --------------------------------------------------------------------

async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A typed step: search words, a material, a new topic, a 学习心得."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id, text = message.chat_id, (message.text or "").strip()
    step, draft = asked.value.get("step"), dict(asked.value)
    needed = {"words": "study.needed_words", "note": "study.note_needed"}.get(str(step), "study.needed")
    cancelled = "study.note_cancelled" if step == "note" else "study.cancelled"

    def work(s: Session, out: Outgoing) -> None:
        if not take_answer(s, out, chat_id, user.id, prompts.STUDY, text, needed=needed, cancelled=cancelled):
            return
        try:
            if step == "words":
                page_text, rows = _page(s, residents.person_by_telegram(s, user.id), query=text)
                out.send(chat_id, page_text, rows)
            elif step == "content":
                _ask_topic(s, out, chat_id, user.id, {**draft, "content": materials.content_of(text).as_dict()})
            elif step == "topic":
                _save(s, out, chat_id, user.id, draft, materials.clean_topic(text))
            elif step == "note":
                _catch_up(s, out, chat_id, user.id, asked, note=text)
        except NotAllowed as exc:
            if step in ("content", "topic"):
                prompts.ask(s, user.id, prompts.STUDY, asked.value)  # asked again
            out.send(chat_id, str(exc))

    await respond(context, work)
    await context.application.bot_data["services"].dispatch()  # materials to the absent, now


async def on_file(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A photo or a document as the material (`wants_file(asked)`)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    chat_id, draft = message.chat_id, dict(asked.value)
    photo = message.photo[-1].file_id if message.photo else None
    document = message.document

    def work(s: Session, out: Outgoing) -> None:
        try:
            content = materials.content_of(message.caption, photo=photo,
                                           document=document.file_id if document is not None else None,
                                           file_name=document.file_name if document is not None else None)
        except NotAllowed as exc:
            out.send(chat_id, str(exc))
            return
        _ask_topic(s, out, chat_id, user.id, {**draft, "content": content.as_dict()})

    await respond(context, work)


async def on_voice(update: Update, context: ContextTypes.DEFAULT_TYPE, asked: Asked) -> None:
    """A voice message as the 学习心得 (`wants_voice(asked)`)."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None and message.voice is not None
    chat_id, voice = message.chat_id, message.voice.file_id

    def work(s: Session, out: Outgoing) -> None:
        prompts.clear(s, user.id, prompts.STUDY)
        _catch_up(s, out, chat_id, user.id, asked, voice=voice)

    await respond(context, work)


# -- buttons ------------------------------------------------------------------------------------------

def _press(s: Session, out: Outgoing, user_id: int, chat_id: int, message_id: int | None,
           data: list[Any]) -> str | None:
    parsed = parse(data)
    if parsed is None:
        return t("button_invalid")
    what, value = parsed
    person = residents.person_by_telegram(s, user_id)
    if what == HOME:
        show(out, chat_id, message_id, *_menu(s, person))
    elif what in (TOPIC, FIND) and isinstance(value, list) and len(value) == 2:
        key, number = str(value[0]), int(value[1])
        show(out, chat_id, message_id, *(_page(s, person, topic=key, number=number) if what == TOPIC
                                         else _page(s, person, query=key, number=number)))
    elif what == OPEN:
        _send_material(s, out, chat_id, person, int(str(value)))
    elif what == SEARCH:
        prompts.ask(s, user_id, prompts.STUDY, {"step": "words"})
        out.send(chat_id, t("study.ask_words"))
    elif what == ADD:
        show(out, chat_id, message_id, *_pick_session(s, person))
    elif what == FOR and isinstance(value, list) and len(value) == 2:
        _ask_content(s, out, chat_id, user_id, value)
    elif what == PUT:
        asked = prompts.current(s, user_id)
        if asked is None or asked.kind != prompts.STUDY or asked.value.get("step") != "topic":
            return t("button_invalid")
        if message_id is not None:
            out.markup(chat_id, message_id)
        _save(s, out, chat_id, user_id, dict(asked.value), str(value) or None)
    elif what == DONE:
        occ = catchup.check(s, int(str(value)), person)
        prompts.ask(s, user_id, prompts.STUDY, {"step": "note", "occurrence": occ.id})
        out.send(chat_id, t("study.ask_note", min=_min_chars()))
    else:
        return t("button_invalid")
    return None


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE, data: list[Any]) -> None:
    await answer_press(update, context, lambda s, out, user_id, chat_id, message_id:
                       _press(s, out, user_id, chat_id, message_id, data))
    await context.application.bot_data["services"].dispatch()  # materials to the absent, now


def handlers() -> list[BaseHandler]:
    return [CommandHandler("xuexi", on_xuexi, filters=filters.ChatType.PRIVATE)]
