"""`make fuzz`: generated bad input through the real Application, the real Rasa and action server.

Builds the real python-telegram-bot Application on the offline Bot API (bot/offline.py) in front
of the real stack (`python -m cli.run` offline, a throw-away SQLite database with the demo
community) and feeds it INPUTS updates from a seeded generator: random Unicode with control
characters, zero-width and right-to-left marks, 10,000-character texts, payload-looking text
(/restart, /join_ticket{...}, @lat,lon), forged, tampered and stale callback data, every kind
of message, edited messages, group messages and channel posts.

Counted: unhandled exceptions (raised by process_update or reaching the error handler) and
unanswered private messages (a private update after which the bot sent nothing to that chat
and answered no button). Last stdout line: {"inputs", "unhandled_exceptions", "unanswered"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAYLOADS = [
    "/restart", "/stop", '/join_ticket{"ticket":"2026-000001"}', '/inform{"place_code":"B-HPL-7"}',
    '/change_category{"category":"noise"}', "/affirm", "/emergency", "@39.9333,116.4446", "@", "@@@",
    '/share_location{"latitude":999,"longitude":-999}', "/share_photo{}", "/{}", "/" + "x" * 300,
    "'; DROP TABLE tickets; --", "{{slot}}", "[3号楼](building)", "<b>粗体</b>", "\\u0000", "%s%n%x",
]
WORDS = ["3号楼", "电梯坏了", "着火了", "救命", "消防通道", "养老金", "取消", "确认提交", "谢谢", "你好",
         "楼上装修", "满意", "不满意", "我的工单", "帮助", "二单元", "东门", "🔥", "😡", "！！！"]
ODD = ["\u200b", "\u200e", "\u202e", "\ufeff", "\u0007", "\u001b[31m", "\r", "\t", "\u3000", "𠀀", "ﷺ",
       "\U0001F9D1\u200d\U0001F692", "̶", "ᄀ", "ア", "é", "\u00ad", "\\", "\"", "'"]


def random_text(rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.15:
        return rng.choice(PAYLOADS)
    if shape < 0.2:
        return rng.choice(WORDS) * rng.randint(500, 2600)  # up to ~10,000 characters
    if shape < 0.55:
        return "".join(rng.choice(WORDS + ODD) for _ in range(rng.randint(1, 12)))
    length = rng.randint(1, 60)
    return "".join(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0x4E00, 0x9FFF),
                                   rng.randint(0xA0, 0x2FFF), rng.randint(0x1F300, 0x1FAFF),
                                   rng.randint(0x0, 0x1F)]))
                   for _ in range(length))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    from tests.app.stack import TEST_SECRET, prepare_db, start_stack, stop_stack, wait_until_ready  # noqa: PLC0415

    os.environ["GRIDBOT_SECRET"] = TEST_SECRET  # the stack's servers and the in-process bot share it

    work = Path(tempfile.mkdtemp(prefix="gridbot-fuzz-"))
    db = work / "fuzz.db"
    prepare_db(db)
    stack = start_stack(db)
    try:
        wait_until_ready(stack)
        result = asyncio.run(_fuzz(f"sqlite:///{db}", stack.rasa_url, args.inputs, args.users, args.seed))
    finally:
        stop_stack(stack, signal.SIGTERM)
        shutil.rmtree(work, ignore_errors=True)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.pop("by_kind").items()))
    print(f"{result['inputs']} inputs ({kinds}) in {result.pop('seconds')} s: "
          f"{result['unhandled_exceptions']} unhandled exceptions, {result['unanswered']} unanswered")
    for line in result.pop("examples"):
        print("  " + line)
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["unhandled_exceptions"] == 0 and result["unanswered"] == 0 else 1


async def _fuzz(db_url: str, rasa_url: str, inputs: int, users: int, seed: int) -> dict[str, Any]:
    from sqlalchemy.orm import sessionmaker  # noqa: PLC0415
    from telegram.ext import ContextTypes  # noqa: PLC0415

    from bot.app import build_application  # noqa: PLC0415
    from core.config import Settings  # noqa: PLC0415
    from core.db import make_engine  # noqa: PLC0415
    from tests.app.telegram_fake import FakeTelegram  # noqa: PLC0415
    from tests.app.telegram_updates import KINDS, UpdateBuilder  # noqa: PLC0415

    rng = random.Random(seed)
    fake = FakeTelegram()
    settings = Settings(_env_file=None, telegram_bot_token="123:ABC", rasa_url=rasa_url)  # type: ignore[call-arg]
    factory = sessionmaker(make_engine(db_url), expire_on_commit=False)
    app = build_application(settings, factory, request=fake, background=False)
    errors: list[str] = []

    async def count_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        errors.append(f"{type(context.error).__name__}: {context.error}"[:200])

    app.add_error_handler(count_error)
    await app.initialize()
    assert app.post_init is not None
    await app.post_init(app)
    build = UpdateBuilder(app.bot, fake)
    people = [800_000_000 + i for i in range(users)]
    sent_private: dict[int, Any] = {}  # a user's last update, for edits and stale buttons
    by_kind: Counter[str] = Counter()
    unanswered, raised, examples = 0, 0, []
    started = time.monotonic()
    try:
        for _ in range(inputs):
            user = rng.choice(people)
            roll = rng.random()
            private = True
            if roll < 0.45:
                kind, update = "text", build.text(user, random_text(rng))
            elif roll < 0.52:
                kind, update = "monospace", build.monospace(user, random_text(rng))
            elif roll < 0.62:
                kind = "message_kind"
                update = build.kind(user, rng.choice(KINDS), caption=random_text(rng) if rng.random() < 0.3 else None)
            elif roll < 0.67:
                kind, update = "photo", build.photo(user, file_id=f"fuzz-{rng.randint(0, 10**6)}",
                                                    caption=random_text(rng) if rng.random() < 0.5 else None)
            elif roll < 0.72:
                kind, update = "location", build.location(user, rng.uniform(-90, 90), rng.uniform(-180, 180))
            elif roll < 0.80 and user in sent_private:
                kind, update = "edited", build.edited(sent_private[user], random_text(rng))
            elif roll < 0.90:
                kind = "callback"  # forged, tampered or stale data on the user's last message, or none
                forged = rng.choice([random_text(rng)[:64], "t:claim:999999", "/affirm", "bind:x", "", "x" * 64])
                last = fake.last_message(user) if rng.random() < 0.5 else None
                update = build.callback_query(user, forged, last)
            elif roll < 0.96:
                kind, private = "group", False
                update = build.group_kind(-1001000000001, user, rng.choice(KINDS))
            else:
                kind, private = "channel", False
                update = build.channel_post(-1002000000002, rng.choice(KINDS))
            by_kind[kind] += 1
            before = len(fake.calls)
            try:
                app.bot.insert_callback_data(update)  # what polling does
                await app.process_update(update)
                await app.bot_data["services"].dispatch()
            except Exception as exc:  # noqa: BLE001 - counted, the fuzz goes on
                raised += 1
                if len(examples) < 10:
                    examples.append(f"raised {type(exc).__name__}: {str(exc)[:120]} on {kind}")
            if kind in {"text", "monospace", "message_kind", "photo", "location"}:
                sent_private[user] = update
            if private and kind != "edited":
                new = [c for c in fake.calls[before:] if c.ok and (
                    c.params.get("chat_id") == user or c.method.lower() == "answercallbackquery")]
                if not new:
                    unanswered += 1
                    if len(examples) < 10:
                        detail = forged if kind == "callback" else _text_of(update)
                        examples.append(f"unanswered {kind}: {str(detail)[:80]!r}")
    finally:
        assert app.post_shutdown is not None
        await app.post_shutdown(app)
        await app.shutdown()
    for error in errors[:5]:
        examples.append("error handler: " + error)
    return {"inputs": inputs, "unhandled_exceptions": raised + len(errors), "unanswered": unanswered,
            "seconds": round(time.monotonic() - started, 1), "by_kind": dict(by_kind), "examples": examples}


def _text_of(update: Any) -> str:
    message = getattr(update, "effective_message", None)
    return getattr(message, "text", None) or getattr(message, "caption", None) or type(update).__name__


if __name__ == "__main__":
    sys.exit(main())
