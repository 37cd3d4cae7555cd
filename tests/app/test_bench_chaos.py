"""`make bench-chaos`'s own arithmetic: what counts as a duplicate and as unanswered, and how its
fake Telegram reads python-telegram-bot's request bodies. (The bench itself is the measurement:
a run takes minutes, so no test starts one.)"""

from __future__ import annotations

import json
from collections import Counter

from bot.offline import SentCall
from core.messages import t
from scripts.bench_chaos import Input, _template_regex, decode_body, tally

HOLDING = t("rasa_down")
APOLOGIES = {HOLDING, t("answer_failed"), t("button_invalid")}
CARD = {"inline_keyboard": [[{"text": "领单", "callback_data": "uuid-1"}]]}


def sent(at: float, chat: int, text: str, markup: dict | None = None) -> SentCall:  # type: ignore[type-arg]
    params: dict = {"chat_id": chat, "text": text}  # type: ignore[type-arg]
    if markup is not None:
        params["reply_markup"] = markup
    return SentCall("sendMessage", params, at, 200, {"message_id": int(at * 10)})


def test_a_duplicate_is_a_text_a_chat_received_more_often_than_the_outbox_queued_it() -> None:
    inputs = [Input(1, 1.0, "text"), Input(1, 5.0, "text"), Input(2, 1.0, "text")]
    calls = [
        sent(2.0, 1, "请核对一下"), sent(3.0, 1, "请核对一下"),  # delivered twice, queued once: one too many
        sent(6.0, 1, "好的。"), sent(7.0, 1, "好的。"),  # twice, and queued twice (two answers): fine
        sent(2.0, 2, "已提交✅"),
        sent(4.0, -100, "【工单】", markup=CARD), sent(9.0, -100, "【工单】", markup=CARD),  # a group: twice
        SentCall("sendMessage", {"chat_id": 2, "text": "已提交✅"}, 3.0, status=429),  # refused: never arrived
    ]
    queued = Counter({(1, "请核对一下"): 1, (1, "好的。"): 2, (2, "已提交✅"): 1, (-100, "【工单】"): 1})
    counted = tally(calls, inputs, APOLOGIES, queued)
    assert counted["duplicate_messages"] == 2
    assert counted["unanswered"] == 0
    assert counted["what"][0].startswith("chat 1 received 2 times, queued 1")


def test_an_input_answered_only_by_holding_messages_or_apologies_or_nothing_is_unanswered() -> None:
    inputs = [Input(1, 1.0, "text"), Input(1, 10.0, "text"), Input(2, 1.0, "text"), Input(3, 1.0, "press"),
              Input(4, 1.0, "text")]
    calls = [
        sent(1.5, 1, HOLDING), sent(8.0, 1, "请核对一下"),  # held, then answered: fine
        sent(10.5, 1, HOLDING),  # held and never answered
        sent(1.5, 2, HOLDING), sent(1.6, 2, t("answer_failed")),
        SentCall("answerCallbackQuery", {"callback_query_id": "3000001", "text": t("button_invalid")}, 1.5),
        # chat 4: nothing at all
    ]
    counted = tally(calls, inputs, APOLOGIES, Counter())
    assert counted["unanswered"] == 4
    assert counted["duplicate_messages"] == 0
    assert all(line.startswith("chat ") for line in counted["what"])


def test_request_bodies_decode_as_python_telegram_bot_sent_them() -> None:
    markup = json.dumps(CARD)
    form = decode_body("application/x-www-form-urlencoded",
                       f"chat_id=42&text=123&reply_markup={markup}".encode())
    assert form.parameters == {"chat_id": 42, "text": "123", "reply_markup": CARD}
    assert not form.contains_files
    body = (b"--b\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n7\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\nJPEG\r\n--b--\r\n")
    form = decode_body("multipart/form-data; boundary=b", body)
    assert form.parameters == {"chat_id": 7}
    assert form.multipart_data == {"photo": ("p.jpg", b"JPEG", "image/jpeg")}


def test_the_acknowledgement_is_read_from_the_catalogue_text() -> None:
    filed = _template_regex(t("report.filed"))
    text = t("report.filed", number="2026-000042", grid="和平里第一网格", resolve="7天")
    found = filed.search(text)
    assert found is not None and found.group("number") == "2026-000042"
    assert filed.search(t("rasa_down")) is None
