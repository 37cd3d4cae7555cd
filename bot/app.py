"""Composition root of the bot process.

`build_application` assembles python-telegram-bot's Application: Defaults,
handlers, the error handler, and — owned by post_init/post_shutdown — the Rasa
client, the outbox dispatcher and the inbox replay loop. Free text goes
inbox → Rasa → outbox; nothing a resident says is lost when Rasa is down.
Nothing a conversation needs lives in this process: buttons' data (core.messaging.buttons)
and open questions (core.messaging.prompts) are in the database, and every message a
handler sends is an outbox row (bot/replies.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker
from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    Document,
    Message,
    Update,
)
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot import (
    baodao,
    binding,
    broadcast_chat,
    consult_chat,
    duties_buttons,
    followup,
    lists_chat,
    mobilise_answers,
    mobilise_chat,
    rating,
    roles,
    schedule_chat,
    spaces_chat,
    stats,
    study_chat,
    ticket_buttons,
    web_login,
)
from bot.broadcast_sender import BroadcastSender, LastByteRequest, sender_bot
from bot.conversation import PassResult, answer_pending
from bot.dispatcher import OutboxDispatcher
from bot.rasa_client import RasaClient, RasaRefused, RasaUnavailable
from bot.ratelimit import RateLimiter, shared_budget
from bot.replies import respond, say
from bot.telegram_link import TelegramLink, TrackedRequest, connect, quiet_network_tracebacks
from core import secret as shared
from core.access import commands
from core.config import Settings, get_settings
from core.db import make_engine, make_session_factory, read_scope, session_scope
from core.health import Health
from core.logs import install_redaction
from core.messages import t
from core.messaging import buttons, claims, inbox, outbox, prompts
from core.messaging.claims import Claims
from core.metrics import HealthCollector, Metrics, serve_in_thread
from core.mobilise import sweep as mobilise_sweep
from core.models import utcnow
from core.people import residents
from core.places.router import Router, RouterCache
from core.presentation import callbacks
from core.protocol import intent_payload
from core.scheduler import DutyScheduler
from core.spaces.rules import Rules as SpaceRules
from core.text import normalise
from core.tickets import deadlines

log = logging.getLogger("gridbot.bot")

NO_TOKEN_MESSAGE = (
    "TELEGRAM_BOT_TOKEN is not set: Telegram is off and this process idles. Set it in the "
    "environment or in .env to serve Telegram; `make run` without it opens the offline chat."
)
RASA_TEXT_LIMIT = 1000  # characters of one message that go to the classifier
REPLAY_SECONDS = 5.0
REPLAY_CONCURRENCY = 8
CLAIM_RETRY_SECONDS = 0.02  # how often a sender's claim is asked for while another process holds it
DB_THREADS = 1
WARM_UP_RETRY_SECONDS = 2.0  # while Rasa loads its model
WARM_UP_TRIES = 30  # answers without the action server's part: a minute, then no more
# What replaces a leading "/" of words a user typed (see `as_words`): DIVISION SLASH looks like
# "/" and, unlike the full-width "／", Rasa's normaliser (NFKC in nlu/normalizer.py) keeps it.
SLASH_ESCAPE = "\u2215"
# Messages the bot cannot take, by the Message attribute that holds them: the answer says what
# it can take instead. First match wins (a GIF carries an animation and a document).
KIND_ANSWERS = (
    ("sticker", "sticker"), ("voice", "kind.voice"), ("audio", "kind.audio"),
    ("video_note", "kind.video_note"), ("video", "kind.video"), ("animation", "kind.animation"),
    ("document", "kind.document"), ("contact", "kind.contact"), ("poll", "kind.poll"),
    ("dice", "kind.game"), ("game", "kind.game"),
)
LIVE_LOCATION = "live_location_answered"  # chat_data: the live location whose moves were answered


class Services:
    """Long-lived resources of one Application, created in post_init."""

    def __init__(self, factory: sessionmaker[Session], rasa: RasaClient, settings: Settings,
                 metrics: Metrics | None = None) -> None:
        self.factory = factory
        self.settings = settings
        self.rasa = rasa
        self.metrics = metrics or Metrics()  # this process's /metrics (core/metrics.py)
        self.dispatcher: OutboxDispatcher | None = None
        self.scheduler: DutyScheduler | None = None  # duty reminders; only with background=True
        self.broadcasts: BroadcastSender | None = None  # /broadcast notices; only with background=True
        # One rate budget for everything this process sends (bot/ratelimit.py): the dispatcher's
        # replies, cards and reminders before the broadcast sender's notices.
        # On PostgreSQL the budget is shared with every other bot process (core/ratebudget.py).
        engine = factory.kw.get("bind")
        # TELEGRAM_RATE: the overall requests a second (Telegram's 30 unless it raised them).
        self.limiter = RateLimiter(rate=settings.telegram_rate,
                                   shared=shared_budget(engine, settings.telegram_rate))
        # Which process answers a person now, across replicas (core/messaging/claims.py).
        self.claims = Claims(engine)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        # One inbox pass per sender at a time keeps each sender's order; different
        # senders are answered concurrently.
        self._locks: dict[int, asyncio.Lock] = {}
        self._routers = RouterCache(factory)

    def lock(self, sender_id: int) -> asyncio.Lock:
        return self._locks.setdefault(sender_id, asyncio.Lock())

    async def answer(self, sender_id: int, *, wait: bool = True) -> PassResult:
        """Answer one sender's waiting messages and send the replies straight away, in order.
        Across bot processes the sender's inbox claim makes it one process at a time; `wait`
        False (the replay pass) leaves a sender another process is answering to that process."""
        async with self.lock(sender_id):
            if not await self._claim(sender_id, wait):
                return PassResult()
            try:
                dispatcher = self.dispatcher
                result = await answer_pending(self.factory, self.rasa, sender_id, claim=dispatcher is not None)
                if dispatcher is not None and result.claimed:
                    await dispatcher.send_claimed(result.claimed)
            finally:
                await asyncio.to_thread(self.claims.release, claims.INBOX, sender_id)
            self._count(result)
            return result

    async def _claim(self, sender_id: int, wait: bool) -> bool:
        while True:
            if await asyncio.to_thread(self.claims.try_claim, claims.INBOX, sender_id):
                return True
            if not wait or self.stop.is_set():
                return False
            await self.pause(CLAIM_RETRY_SECONDS)  # another process answers this sender now

    def _count(self, result: PassResult) -> None:
        metrics, now = self.metrics, utcnow()
        for received in result.received:  # replies sent now (or queued, without a dispatcher)
            metrics.reply_seconds.observe(max(0.0, (now - received).total_seconds()))
        if result.rasa_down:
            metrics.rasa_errors.labels("refused" if result.refused else "unavailable").inc()
        for action in result.failed_actions:
            metrics.action_errors.labels(action).inc()

    async def answer_all(self) -> None:
        """Replay every sender's waiting messages (after a Rasa outage)."""
        senders = await asyncio.to_thread(_waiting_senders, self.factory)
        gate = asyncio.Semaphore(REPLAY_CONCURRENCY)  # do not flood Rasa as it comes back

        async def one(sender: int) -> PassResult:
            async with gate:
                return await self.answer(sender, wait=False)

        results = await asyncio.gather(*(one(s) for s in senders))
        if any(r.answered or r.rasa_down for r in results):
            await self.dispatch()

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the bot is stopping (the background loops' wait)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)

    async def dispatch(self) -> None:
        """Send what a handler queued for other people (cards, notices) promptly. With the
        background loop running it is woken and the handler goes on: a person's lane never waits
        for other people's messages to be sent (their own replies went out with the answer).
        Without it (tests driving the Application step by step) the pass runs here."""
        if self.dispatcher is None:
            return
        if self.dispatcher.running:
            self.dispatcher.wake()
        else:
            await self.dispatcher.run_once()

    async def router(self) -> Router:
        """The grid registry's router; a re-import is picked up within seconds."""
        return await asyncio.to_thread(self._routers.get)  # it may read the database


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data["services"]


async def submit(context: ContextTypes.DEFAULT_TYPE, *, user_id: int, chat_id: int, message_id: int,
                 text: str, display_name: str = "", **extra: object) -> None:
    """Keep what the user said (inbox), ask Rasa, queue its answers (outbox), send them."""
    svc = services(context)
    meta = {"message_id": message_id, "original_text": text, "display_name": display_name, **extra}
    too_long = len(text) > RASA_TEXT_LIMIT

    def record() -> None:
        with session_scope(svc.factory) as session:
            row = inbox.accept(session, sender_id=user_id, chat_id=chat_id,
                               text=text[:RASA_TEXT_LIMIT], meta=meta)
            if too_long:
                outbox.enqueue(session, dedupe_key=f"too-long:{row.id}", kind="notice",
                               chat_id=chat_id, payload={"text": t("too_long", limit=RASA_TEXT_LIMIT)})

    await asyncio.to_thread(record)
    result = await svc.answer(user_id)
    if result.rasa_down or (result.waiting and not result.answered and not result.failed):
        await asyncio.to_thread(_tell_waiting, svc.factory, chat_id, message_id)
    await svc.dispatch()


def payload(intent: str, **entities: object) -> str:
    """A Rasa intent payload such as /share_photo{"photo":"..."} (bypasses the classifier)."""
    return intent_payload(intent, **entities)


def as_words(text: str) -> str:
    """What a user typed, as it goes to Rasa: stripped, and never an intent payload.

    Rasa takes a message that starts with "/" as `/intent{entities}` and skips the classifier,
    so typed or pasted text such as /join_ticket{"ticket": ...} would act like a button press.
    Only the bot writes payloads (`payload`). Rasa's RegexMessageHandler looks for the "/" after
    the pipeline's normaliser (core.text.normalise: NFKC folds a full-width "／" into "/"), so the
    check is made on the normalised text too.
    """
    text = text.strip()
    if text.startswith("/"):
        text = SLASH_ESCAPE + text[1:]
    if normalise(text).startswith("/"):  # e.g. a full-width "／" typed by the user
        text = SLASH_ESCAPE + text
    return text


async def _submit_message(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str,
                          **extra: object) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    await submit(context, user_id=user.id, chat_id=message.chat_id, message_id=message.message_id,
                 text=text, display_name=user.full_name, **extra)


async def _prompt(svc: Services, user_id: int) -> prompts.Asked | None:
    """The question this user was last asked and not yet answered (core.messaging.prompts)."""
    def read() -> prompts.Asked | None:
        with read_scope(svc.factory) as session:
            return prompts.current(session, user_id)
    return await asyncio.to_thread(read)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.text is None:
        return
    svc = services(context)
    if not message.text.strip():  # only spaces (full-width too): nothing to understand, say what helps
        await say(context, message.chat_id, t("default"))
        return
    asked = await _prompt(svc, user.id)
    if asked is not None and asked.kind == prompts.NOTE:
        await ticket_buttons.on_note(update, context, asked)
        await svc.dispatch()
        return
    if asked is not None and asked.kind == prompts.LEAVE:
        await duties_buttons.on_reason(update, context, asked)
        return
    if asked is not None and asked.kind == prompts.REOPEN and not await _urgent(svc, message.text):
        await rating.on_reason(update, context, asked)
        return
    if broadcast_chat.takes_text(asked, message.text):
        assert asked is not None
        await broadcast_chat.on_message(update, context, asked)
        return
    if mobilise_chat.takes_text(asked):  # 战时: the order, a task, an ETA, words where a location was asked
        assert asked is not None
        await mobilise_chat.on_text(update, context, asked)
        return
    if consult_chat.takes_text(asked):  # 议事: a question, options, a comment, minutes, an answer
        assert asked is not None
        await consult_chat.on_message(update, context, asked)
        return
    if schedule_chat.typed_step(asked):
        assert asked is not None
        await schedule_chat.on_message(update, context, asked)
        return
    if asked is not None and asked.kind in followup.PROMPTS and await followup.on_prompt(update, context, asked):
        await svc.dispatch()
        return
    if spaces_chat.takes_text(asked):  # a /yuyue step: a typed day, the purpose, people; a manager's reason
        assert asked is not None
        await spaces_chat.on_text(update, context, asked)
        await svc.dispatch()  # a manager's card, the booker's answer
        return
    if study_chat.takes_text(asked):  # /xuexi: search words, a material, its topic, a 学习心得
        assert asked is not None
        await study_chat.on_text(update, context, asked)
        return
    if lists_chat.takes_text(asked):  # a /qingdan step, a reviewer's reason, a completion note
        assert asked is not None
        await lists_chat.on_text(update, context, asked)
        return
    if baodao.takes_text(asked):  # a /baodao step, or a decider's reason
        assert asked is not None
        await baodao.on_text(update, context, asked)
        return
    place = baodao.nav_place(message.text)  # 附近的党组织 [place]
    if place is not None:
        await baodao.on_nav_text(update, context, place)
        return
    # the place 附近的党组织 asked for; a text that names none (a report, an emergency) goes on to Rasa
    if baodao.takes_nav(asked) and not await _urgent(svc, message.text) \
            and await baodao.on_nav_answer(update, context):
        return
    if asked is not None and asked.kind == prompts.BINDING and not await _urgent(svc, message.text) \
            and await binding.on_text(update, context, await svc.router()):
        return
    await _submit_message(update, context, as_words(message.text))


async def _urgent(svc: Services, text: str) -> bool:
    """Is a text typed while binding an emergency ("5号楼厨房着火了")? Then it goes to Rasa, not
    to the address lookup; binding waits. The NLU decides, as for every other message."""
    return await svc.rasa.intent_of(text) == "emergency"


async def show_menu(context: ContextTypes.DEFAULT_TYPE, user_id: int) -> None:
    """This person's command menu (setMyCommands for their chat): what their roles allow,
    from the same table as /help (core/access/commands.py). Not a message: sent directly."""
    def menu() -> list[BotCommand]:
        with read_scope(services(context).factory) as s:
            roles = commands.roles_of(s, residents.person_by_telegram(s, user_id))
        return [BotCommand(c.name, c.description) for c in commands.commands_for(roles)]

    try:
        await context.bot.set_my_commands(await asyncio.to_thread(menu), scope=BotCommandScopeChat(user_id))
    except TelegramError as exc:  # a menu is a convenience: the answer goes out regardless
        log.warning("command menu not set: %s", exc)


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await binding.start(update, context)
    if update.effective_user is not None:
        await show_menu(context, update.effective_user.id)


async def on_my(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _submit_message(update, context, payload("check_status"))


async def _queue_reply(update: Update, context: ContextTypes.DEFAULT_TYPE, build: Callable[..., None]) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    svc = services(context)
    await asyncio.to_thread(build, svc.factory, user.id, message.chat_id, message.message_id, svc.settings.tz)
    await svc.dispatch()


async def on_duties(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/duties: the presser's study sessions and shifts of the next two weeks, with buttons."""
    await _queue_reply(update, context, duties_buttons.duties_message)


async def on_report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/report (secretaries): attendance of the branch's next/last meeting and this month's summary;
    a community admin first gets the month across the community's branches."""
    await roles.on_community_report(update, context)
    await _queue_reply(update, context, duties_buttons.report_message)


async def on_stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats (secretaries, community and street admins): this month's rates so far."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    svc = services(context)
    await asyncio.to_thread(stats.stats_message, svc.factory, svc.settings, user.id, message.chat_id,
                            message.message_id)
    await svc.dispatch()


async def on_web(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/web (secretaries, grid workers, community and street admins): a one-time login link."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    svc = services(context)
    await asyncio.to_thread(web_login.link_message, svc.factory, svc.settings, user.id, message.chat_id,
                            message.message_id)
    await svc.dispatch()


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _submit_message(update, context, payload("help"))
    if update.effective_user is not None:
        await show_menu(context, update.effective_user.id)


async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or not message.photo:
        return
    svc = services(context)
    asked = await _prompt(svc, update.effective_user.id) if update.effective_user is not None else None
    if asked is not None and asked.kind == prompts.NOTE:
        await ticket_buttons.on_note(update, context, asked)
        await svc.dispatch()
        return
    if broadcast_chat.wants_content(asked) and asked is not None:
        await broadcast_chat.on_message(update, context, asked)
        return
    if study_chat.wants_file(asked) and asked is not None:  # a study material (/xuexi, /report's 资料)
        await study_chat.on_file(update, context, asked)
        return
    if lists_chat.wants_photo(asked) and asked is not None:  # a project's completion note with its photo
        await lists_chat.on_text(update, context, asked)
        return
    if asked is not None and asked.kind == prompts.SUPPLEMENT and await followup.on_prompt(update, context, asked):
        await svc.dispatch()
        return
    photo = message.photo[-1].file_id  # the largest size
    caption = as_words(message.caption or "")
    if caption:  # a photo with words is one message: the words, the photo in the metadata
        await _submit_message(update, context, caption, photo=photo)
    else:
        await _submit_message(update, context, payload("share_photo", photo=photo))


async def on_location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A shared location, a venue (a place picked on the map) or the start of a live location."""
    message = update.effective_message
    if message is None:
        return
    location = message.location or (message.venue.location if message.venue else None)
    if location is None:
        return
    svc = services(context)
    user = update.effective_user
    asked = await _prompt(svc, user.id) if message.location is not None and user is not None else None
    if asked is not None and asked.kind == prompts.BINDING:
        await binding.on_location(update, context, await svc.router(), svc.factory)
        return
    if baodao.takes_nav(asked):  # 附近的党组织 asked for a place
        await baodao.on_nav_location(update, context, location.latitude, location.longitude)
        return
    if mobilise_chat.takes_location(asked) and asked is not None:  # 战时 到岗签到: checked against the grid
        await mobilise_answers.on_location(update, context, asked, await svc.router())
        return
    await _submit_message(update, context, payload("share_location", latitude=location.latitude,
                                                   longitude=location.longitude))


def _resolve(factory: sessionmaker[Session], data: object) -> tuple[bool, object]:
    with read_scope(factory) as session:
        return buttons.resolve(session, data)


async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every button press. Its data is "b:<token>": the data the button stands for is read from
    the database (core.messaging.buttons) here, before anything decides what the press means — one
    handler takes every press, because python-telegram-bot's CallbackQuery is frozen and its
    handlers match on the raw data. The 已读 button of broadcasts carries "bc:r:<id>" as is.
    Anything else (forged, tampered, purged) gets the "button_invalid" answer."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    svc = services(context)
    read = broadcast_chat.read_press(query.data)  # 已读 on a broadcast notice
    if read is not None:
        await broadcast_chat.on_read(update, context, read)
        return
    issued, data = await asyncio.to_thread(_resolve, svc.factory, query.data)
    if not issued:
        log.info("refused a press with callback data the bot did not issue (user %s)", user.id)
        await query.answer(t("button_invalid"), show_alert=True)
        return
    if spaces_chat.is_press(data):  # 共享空间 (bot/spaces_chat.py)
        await spaces_chat.on_press(update, context, data)
        await svc.dispatch()  # a manager's card, the booker's answer
        return
    if mobilise_chat.is_press(data):  # 战时 mobilisation (bot/mobilise_chat.py, bot/mobilise_answers.py)
        await mobilise_chat.on_press(update, context, data)
        return
    if lists_chat.is_press(data):  # 三张清单 (bot/lists_chat.py)
        await lists_chat.on_press(update, context, data)  # type: ignore[arg-type]
        return
    if baodao.is_press(data):  # /baodao steps, 同意 / 不同意
        await baodao.on_press(update, context, data)  # type: ignore[arg-type]
        return
    if binding.is_press(data):
        await binding.on_press(update, context, data)  # type: ignore[arg-type]
        return
    if roles.is_pick(data):
        await roles.on_pick(update, context, data)  # type: ignore[arg-type]
        return
    if ticket_buttons.is_pick(data):  # 指派: the member picked
        await ticket_buttons.on_pick(update, context, data)  # type: ignore[arg-type]
        await svc.dispatch()
        return
    if broadcast_chat.is_press(data):
        await broadcast_chat.on_press(update, context, data)  # type: ignore[arg-type]
        return
    if schedule_chat.is_press(data):
        await schedule_chat.on_press(update, context, data)  # type: ignore[arg-type]
        return
    if consult_chat.is_press(data):  # 议事 (bot/consult_chat.py)
        await consult_chat.on_press(update, context, data)
        return
    if study_chat.is_press(data):  # 党员学习资料库 and 补学 (bot/study_chat.py)
        await study_chat.on_press(update, context, data)  # type: ignore[arg-type]
        return
    if followup.is_press(data):
        await followup.on_press(update, context, data, svc.settings.tz)  # type: ignore[arg-type]
        await svc.dispatch()
        return
    if isinstance(data, str):
        parsed = callbacks.parse_ticket(data)
        if parsed is not None:
            if await ticket_buttons.on_press(update, context, parsed, svc.factory, svc.settings.tz):
                await svc.dispatch()
            return
        duty = duties_buttons.parse(data)
        if duty is not None:
            if await duties_buttons.on_press(update, context, duty, svc.factory, svc.settings.tz):
                await svc.dispatch()
            return
        if data.startswith("/") and query.message is not None and query.message.chat.type == "private":
            await query.answer()
            chat_id, message_id = query.message.chat.id, query.message.message_id
            # one press per question: the buttons go while Rasa answers (neither waits for the other)
            removed = asyncio.create_task(respond(context, lambda _s, out: out.markup(chat_id, message_id)))
            try:
                await submit(context, user_id=user.id, chat_id=chat_id, message_id=message_id, text=data,
                             display_name=user.full_name)
            finally:
                await removed
            return
    log.info("refused a press whose data this bot cannot read (user %s)", user.id)
    await query.answer(t("button_invalid"), show_alert=True)


def _waiting_senders(factory: sessionmaker[Session]) -> list[int]:
    with read_scope(factory) as session:
        return sorted({m.sender_id for m in inbox.pending(session, limit=1000)})


def _tell_waiting(factory: sessionmaker[Session], chat_id: int, message_id: int) -> None:
    with session_scope(factory) as session:
        outbox.enqueue(session, dedupe_key=f"rasa-down:{chat_id}:{message_id}", kind="notice",
                       chat_id=chat_id, payload={"text": t("rasa_down")})


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.edited_message
    if message is None:
        return
    if message.location is not None:
        # A live location moving: Telegram sends an edit every few seconds. The start was
        # taken as a shared location (on_location); its moves are answered once.
        if context.chat_data is not None:
            if context.chat_data.get(LIVE_LOCATION) == message.message_id:
                return
            context.chat_data[LIVE_LOCATION] = message.message_id
        await say(context, message.chat_id, t("kind.live_location"))
        return
    await say(context, message.chat_id, t("edited"))


def kind_answer(message: Message) -> str:
    """The answer to a message the bot cannot take: what it can take instead (words, photos, places)."""
    for attribute, key in KIND_ANSWERS:
        value = getattr(message, attribute, None)
        if value:
            if isinstance(value, Document) and (value.mime_type or "").startswith("image/"):
                return t("kind.image_document")  # a photo sent "as a file"
            return t(key)
    return t("kind.other")


async def on_other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Everything in a private chat that is not text, a command, a photo or a place (a document
    may be the content of a /broadcast or a study material, a voice message a 补学's 学习心得)."""
    message = update.effective_message
    if message is None:
        return
    if (message.document is not None or message.voice is not None) and update.effective_user is not None:
        asked = await _prompt(services(context), update.effective_user.id)
        if message.document is not None and broadcast_chat.wants_content(asked) and asked is not None:
            await broadcast_chat.on_message(update, context, asked)
            return
        if message.document is not None and study_chat.wants_file(asked) and asked is not None:
            await study_chat.on_file(update, context, asked)
            return
        if message.voice is not None and study_chat.wants_voice(asked) and asked is not None:
            await study_chat.on_voice(update, context, asked)
            return
    await say(context, message.chat_id, kind_answer(message))


async def on_unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command no CommandHandler took, such as a typed /join_ticket{...}: never sent to Rasa."""
    if update.effective_message is not None:
        await say(context, update.effective_message.chat_id, t("kind.unknown_command"))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update is None and isinstance(context.error, NetworkError):
        # Polling could not reach Telegram: python-telegram-bot retries with backoff, and the
        # getUpdates transport (bot/telegram_link.py) has said so once already.
        log.debug("polling: %s", context.error)
        return
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(Exception):
            await say(context, update.effective_chat.id, t("error"))


async def _warm_up(svc: Services) -> None:
    """Warm Rasa and the action server up once both answer (bot/rasa_client.py): retried while
    Rasa loads its model, and up to WARM_UP_TRIES times while the action server does not answer."""
    tries = 0
    while not svc.stop.is_set():
        started = time.perf_counter()
        try:
            if await svc.rasa.warm_up():
                log.info("Rasa and the action server warmed up in %.0f ms", (time.perf_counter() - started) * 1000)
                return
            tries += 1
            if tries >= WARM_UP_TRIES:
                log.warning("warm-up: Rasa answers but the report actions did not; giving up")
                return
        except RasaRefused as exc:
            log.error("warm-up: %s", exc)
            return
        except RasaUnavailable:
            pass
        except Exception:  # noqa: BLE001 - a warm-up is a courtesy; never stop the bot for it
            log.exception("Rasa warm-up failed")
            return
        await svc.pause(WARM_UP_RETRY_SECONDS)


async def _replay_loop(svc: Services) -> None:
    """Answer messages that waited for Rasa, once it is back."""
    while not svc.stop.is_set():
        try:
            await svc.answer_all()
        except Exception:  # noqa: BLE001 - keep the loop alive; logged
            log.exception("inbox replay failed")
        await svc.pause(REPLAY_SECONDS)


def build_application(settings: Settings, factory: sessionmaker[Session], *,
                      request: BaseRequest | None = None, rasa: RasaClient | None = None,
                      background: bool = True, link: TelegramLink | None = None,
                      metrics: Metrics | None = None) -> Application:
    """`link`: told when Telegram stops and starts answering getUpdates (only without `request`).
    core.secret.SecretError when the shared secret is not available (see Settings.shared_secret)."""
    svc = Services(factory, rasa or RasaClient(settings.rasa_url, settings.shared_secret()), settings, metrics)
    api_url = settings.telegram_api_url.rstrip("/")

    async def post_init(app: Application) -> None:
        # Database work runs off the event loop (asyncio.to_thread) on DB_THREADS threads:
        # each unit of work is a millisecond or two, and more threads would only queue
        # for SQLite's single write lock and for Python's GIL.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="gridbot-db"))
        svc.dispatcher = OutboxDispatcher(app.bot, factory, limiter=svc.limiter, metrics=svc.metrics)
        if background:
            svc.tasks = [asyncio.create_task(_warm_up(svc)),
                         asyncio.create_task(svc.dispatcher.run_forever(svc.stop)),
                         asyncio.create_task(_replay_loop(svc))]
            # Periodic work (reminders, short shifts, closing unrated tickets, forgetting old buttons):
            # one leader per database; what it queues, the dispatcher sends.
            svc.scheduler = DutyScheduler(settings.database_url, tz=settings.tz, limits=deadlines.Limits.of(settings),
                                          stats_rank_min=settings.stats_rank_min, space_rules=SpaceRules.of(settings),
                                          mobilise=mobilise_sweep.Timing.of(settings))
            svc.scheduler.start()
            scheduler = svc.scheduler
            svc.metrics.scheduler_leading.set_function(lambda: 1.0 if scheduler.is_leader else 0.0)
            # Broadcasts: their own plain Bot and transport (see bot/broadcast_sender.py).
            bot = sender_bot(app.bot.token, request or LastByteRequest(connection_pool_size=8),
                             base_url=f"{api_url}/bot", base_file_url=f"{api_url}/file/bot")
            await bot.initialize()
            svc.broadcasts = BroadcastSender(bot, factory, limiter=svc.limiter, on_finished=svc.dispatch)
            svc.tasks.append(asyncio.create_task(svc.broadcasts.run_forever(svc.stop)))

    async def post_shutdown(app: Application) -> None:
        svc.stop.set()
        if svc.scheduler is not None:
            await asyncio.to_thread(svc.scheduler.stop)
            svc.scheduler = None
        for task in svc.tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)
        if svc.broadcasts is not None:
            with contextlib.suppress(Exception):
                await svc.broadcasts.bot.shutdown()
        await svc.rasa.aclose()
        await asyncio.to_thread(svc.claims.close)

    builder = (
        Application.builder()
        .token(settings.telegram_bot_token or "0:offline")
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .defaults(Defaults(tzinfo=settings.tz))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    elif link is not None:
        builder = builder.get_updates_request(TrackedRequest(link, connection_pool_size=1))
    app = builder.build()
    app.bot_data["services"] = svc
    private = filters.ChatType.PRIVATE
    for handler in roles.handlers():  # /invite, /join
        app.add_handler(handler)
    for handler in baodao.handlers():  # /baodao, /roster, /dangzuzhi
        app.add_handler(handler)
    for handler in lists_chat.handlers():  # /qingdan
        app.add_handler(handler)
    for handler in spaces_chat.handlers():  # /yuyue
        app.add_handler(handler)
    for handler in mobilise_chat.handlers():  # /dongyuan, /zhanshi
        app.add_handler(handler)
    for handler in study_chat.handlers():  # /xuexi
        app.add_handler(handler)
    broadcast_chat.register(app)  # /broadcast, /cancel, /notify: before the catch-all of commands
    schedule_chat.register(app)  # /schedule
    for handler in consult_chat.handlers():  # /yishi, /tiyi, /queren
        app.add_handler(handler)
    # Only private chats are answered: the bot sits in branch groups, where it speaks only
    # through ticket cards and commands.
    app.add_handler(MessageHandler(private & filters.UpdateType.EDITED_MESSAGE, on_edited))
    app.add_handler(CommandHandler("start", on_start, filters=private))
    app.add_handler(CommandHandler("my", on_my, filters=private))
    app.add_handler(CommandHandler("help", on_help, filters=private))
    app.add_handler(CommandHandler("duties", on_duties, filters=private))
    app.add_handler(CommandHandler("report", on_report, filters=private))
    app.add_handler(CommandHandler("tickets", ticket_buttons.on_tickets, filters=private))
    app.add_handler(CommandHandler("stats", on_stats, filters=private))
    app.add_handler(CommandHandler("web", on_web, filters=private))
    app.add_handler(CallbackQueryHandler(on_callback))
    app.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(MessageHandler(private & filters.COMMAND, on_unknown_command))  # after every CommandHandler
    app.add_handler(MessageHandler(private & filters.PHOTO, on_photo))
    app.add_handler(MessageHandler(private & (filters.LOCATION | filters.VENUE), on_location))
    app.add_handler(MessageHandler(private & filters.CONTACT, followup.on_contact))  # 发送我的手机号
    # Every other message a person sends gets an answer; service messages (a pin, a timer) do not.
    app.add_handler(MessageHandler(private & ~filters.StatusUpdate.ALL, on_other))
    app.add_error_handler(on_error)
    return app


def main() -> int:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the bot token in URLs
    install_redaction(settings.telegram_bot_token)  # the token never reaches a log, at any level
    if not settings.telegram_bot_token:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        log.warning(NO_TOKEN_MESSAGE)
        stop.wait()
        log.info("bot stopped")
        return 0
    try:
        settings.shared_secret()
    except shared.SecretError as exc:
        log.error("%s", exc)
        return 2
    if settings.telegram_webhook_url:
        if not settings.telegram_webhook_url.startswith("https://"):
            log.warning("TELEGRAM_WEBHOOK_URL is not https://: Telegram delivers to HTTPS URLs only")
        try:
            settings.webhook_secret()
        except ValueError as exc:
            log.error("%s", exc)
            return 2
    factory = make_session_factory(make_engine(settings.database_url))
    link = TelegramLink()
    quiet_network_tracebacks()
    metrics = Metrics()
    app = build_application(settings, factory, link=link, metrics=metrics)
    stop_metrics = serve_metrics(settings, factory, metrics)

    async def run() -> int:
        # Telegram may not answer at start: connect() retries getMe with backoff (and logs once).
        try:
            if not await connect(app, link):
                log.info("bot stopped before Telegram answered")
                return 0
        except InvalidToken as exc:
            log.error("Telegram refused TELEGRAM_BOT_TOKEN (%s); check the token from @BotFather", exc)
            return 1
        # Everyone's menu starts as a resident's; /start and /help give each person theirs.
        with contextlib.suppress(TelegramError):
            await app.bot.set_my_commands([BotCommand(c.name, c.description) for c in commands.commands_for(frozenset())],
                                          scope=BotCommandScopeAllPrivateChats())
        if settings.telegram_webhook_url:
            # Telegram posts updates to us (bot/webhook.py): 200 only once an update is committed.
            from bot import webhook
            await webhook.serve(app, factory, settings, metrics)
        else:
            # Our getUpdates loop (bot/polling.py): an update is stored before Telegram is told it
            # arrived; network failures while running are retried there, never fatal.
            from bot import polling
            await polling.serve(app, factory, metrics)
        log.info("bot stopped")
        return 0

    try:
        return asyncio.run(run())
    finally:
        stop_metrics()


def serve_metrics(settings: Settings, factory: sessionmaker[Session], metrics: Metrics) -> Callable[[], None]:
    """The bot's /metrics on BIND_HOST:BOT_METRICS_PORT, with the figures of `gridbot health`;
    the function that stops it. A taken port is logged, not fatal: the bot serves without it."""
    from core.health import check

    def read() -> Health:
        with read_scope(factory) as session:
            return check(session, redis_url=settings.redis_url)

    metrics.registry.register(HealthCollector(read))
    if not settings.bot_metrics_port:
        return lambda: None
    try:
        stop = serve_in_thread(metrics, settings.bind_host, settings.bot_metrics_port, settings.shared_secret())
    except OSError as exc:
        log.error("no /metrics: cannot listen on %s:%d (%s)", settings.bind_host, settings.bot_metrics_port, exc)
        return lambda: None
    log.info("/metrics on %s:%d", settings.bind_host, settings.bot_metrics_port)
    return stop
