"""run(): a named tracker fixture → the action's events and messages; tickets(): what was filed."""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.config import PROJECT_ROOT
from core.db import read_scope
from core.models import Building, Grid, Landmark, Person, Ticket

TRACKERS = PROJECT_ROOT / "tests" / "fixtures" / "trackers"
DOMAIN_DIR = PROJECT_ROOT / "domain"
# Fixtures that refer to a ticket the test files first say TICKET; run(..., ticket=) fills it in.
PLACEHOLDER = "TICKET"


@cache
def domain() -> dict[str, Any]:
    """The domain as Rasa merges domain/*.yml: mappings merged, lists concatenated."""
    merged: dict[str, Any] = {}
    for path in sorted(DOMAIN_DIR.glob("*.yml")):
        for key, value in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
    return merged


# Slots of domain/report.yml that outlive one report: what became of earlier reports (for their
# stale buttons) and the last urgent ticket (取消 after it does not pretend to cancel it).
KEPT_ACROSS_REPORTS = ("closed_reports", "emergency_ticket")


def report_slots() -> list[str]:
    """The report's slots, as domain/report.yml declares them (those one report clears)."""
    data = yaml.safe_load((DOMAIN_DIR / "report.yml").read_text(encoding="utf-8"))
    return [name for name in data["slots"] if name not in KEPT_ACROSS_REPORTS]


@dataclass
class Ran:
    events: list[dict[str, Any]]
    messages: list[dict[str, Any]]

    @property
    def slots(self) -> dict[str, Any]:
        """The last value each returned SlotSet gives its slot."""
        return {e["name"]: e["value"] for e in self.events if e["event"] == "slot"}

    @property
    def texts(self) -> list[str | None]:
        return [m["text"] for m in self.messages]

    def payloads(self, message: int = 0) -> list[str]:
        return [b["payload"] for b in self.messages[message]["buttons"]]


def run(action: Action, fixture: str, *, ticket: str | None = None,
        slots: dict[str, Any] | None = None) -> Ran:
    """Run `action` on the tracker in tests/fixtures/trackers/<fixture>.json.

    `ticket` replaces the fixture's TICKET placeholder; `slots` are set on top of its slots.
    """
    text = (TRACKERS / f"{fixture}.json").read_text(encoding="utf-8")
    if ticket is not None:
        text = text.replace(PLACEHOLDER, ticket)
    state = json.loads(text)
    assert PLACEHOLDER not in json.dumps(state, ensure_ascii=False), f"{fixture}: pass ticket="
    state["slots"].update(slots or {})
    dispatcher = CollectingDispatcher()
    result = action.run(dispatcher, Tracker.from_dict(state), domain())
    events = asyncio.run(result) if inspect.isawaitable(result) else result
    return Ran(list(events), dispatcher.messages)


def tickets(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    """What is filed, oldest first, with registry codes instead of ids."""
    def code(model: Any, id_: int | None) -> str | None:
        return s.get(model, id_).code if id_ is not None else None

    with read_scope(factory) as s:
        return [{"number": x.number, "category": x.category_code, "status": x.status.value,
                 "urgent": x.urgent, "grid": code(Grid, x.grid_id), "building": code(Building, x.building_id),
                 "landmark": code(Landmark, x.landmark_id), "description": x.description,
                 "photos": list(x.photo_file_ids or []),
                 "reporter": s.get(Person, x.reporter_id).telegram_id if x.reporter_id else None}
                for x in s.scalars(select(Ticket).order_by(Ticket.id))]
