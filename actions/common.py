"""What every action reads off a tracker: the sender, the message, its entities and photos; buttons.

The database, the router and the settings come with the action (actions/deps.py)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker

from core.messaging.inbox import WARM_UP_SENDER
from core.protocol import INBOX_ID, intent_payload


def is_warm_up(tracker: Tracker) -> bool:
    """The bot's warm-up conversation (core.messaging.inbox.WARM_UP_SENDER): nothing is filed for it."""
    return tracker.sender_id == WARM_UP_SENDER


def sender_id(tracker: Tracker) -> int | None:
    """The Telegram user id the bot sends as Rasa's sender (None for other channels)."""
    try:
        return int(tracker.sender_id)
    except (TypeError, ValueError):
        return None


def metadata(tracker: Tracker) -> dict[str, Any]:
    return dict(tracker.latest_message.get("metadata") or {})


def submission_key(tracker: Tracker) -> str | None:
    """"<sender>:<inbox id>" of the message being handled: the same message submitted again
    (the action server died after filing, the bot retried) files nothing twice."""
    inbox_id, sender = metadata(tracker).get(INBOX_ID), sender_id(tracker)
    return f"{sender}:{inbox_id}" if inbox_id is not None and sender is not None else None


def message_text(tracker: Tracker) -> str:
    """What the resident wrote (the bot's copy, before any payload rewriting)."""
    meta = metadata(tracker)
    return str(meta.get("original_text") or tracker.latest_message.get("text") or "").strip()


def intent_name(tracker: Tracker) -> str:
    return str((tracker.latest_message.get("intent") or {}).get("name") or "")


def entity(tracker: Tracker, name: str) -> Any:
    for item in tracker.latest_message.get("entities") or []:
        if item.get("entity") == name:
            return item.get("value")
    return None


def entities(tracker: Tracker, *names: str) -> list[str]:
    return [str(e.get("value")) for e in tracker.latest_message.get("entities") or []
            if e.get("entity") in names and e.get("value")]


def photo_ids(tracker: Tracker) -> list[str]:
    """The report's photos so far, with the one this message carries (a photo's caption
    reaches Rasa as the text, the photo's file id as metadata `photo`)."""
    photos = [str(p) for p in tracker.get_slot("photo_ids") or []]
    attached = metadata(tracker).get("photo")
    if attached and str(attached) not in photos:
        photos.append(str(attached))
    return photos


def safety_first(dispatcher: Any, tracker: Tracker) -> None:
    """When the classifier is unsure whether a danger is happening now (EmergencyGuard's
    `emergency_possible`), the numbers to call come before anything else; the report
    goes on as a normal one (no urgent ticket, nobody paged)."""
    if tracker.latest_message.get("emergency_possible"):
        dispatcher.utter_message(response="utter_emergency")


def button(title: str, intent: str, **entities_: Any) -> dict[str, str]:
    """A Rasa button whose payload triggers `intent` with entities, e.g. /change_category{"category":"noise"}."""
    return {"title": title, "payload": intent_payload(intent, **entities_)}
