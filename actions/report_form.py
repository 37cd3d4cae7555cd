"""The reporting dialogue: start, form validation, asks, summary, photo, submit, cancel.

Rasa's report_form (domain/report.yml) asks for whatever is still missing of
category, place and description; this module decides what counts as filled.
The place is resolved to a grid by core.places.router, so a ticket is never filed
against a guessed grid.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions import common, followup
from actions.common import button, entities, entity, intent_name, message_text
from actions.deps import Deps, GridAction
from core.access import limits
from core.messages import t
from core.models import Building, Category, CategoryKind, Grid, Landmark
from core.people import residents
from core.places.router import RouteResult, RouteStatus, estate_of
from core.protocol import FRAGMENT, JOINED
from core.text import normalise
from core.tickets import lifecycle as tickets
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket

log = logging.getLogger("gridbot.actions.report")

COMPLAINT_PREFIX = "complaint_"
SURE_CONFIDENCE = 0.55  # below this the resident picks among the top categories
MIN_DESCRIPTION = 4  # characters left once places and fillers are removed
# Intents that interrupt the form instead of answering its question.
INTERRUPTIONS = {"cancel", "emergency", "change_category", "share_photo", "join_ticket", "check_status", "help", "request_callback", "community_contact"}
REPORT_SLOTS = ("category", "category_candidates", "place", "place_candidates", "building_code",
                "landmark_code", "grid_code", "latitude", "longitude", "description", "photo_ids",
                "duplicate_ticket", "form_failures", "report_id", "more_reports")
# What one report (a draft) is made of: the form's slots. A message naming several problems, or a
# new complaint while a summary waits, keeps the other drafts in `more_reports`; one 确认 files all.
DRAFT_SLOTS = ("category", "place", "grid_code", "building_code", "landmark_code", "latitude", "longitude",
               "description", "photo_ids")
CLOSED_KEPT = 20  # reports filed or cancelled that a stale button can still name
# Failed answers to the same question: after this many the question comes with buttons
# and a way out; one more and the form ends kindly instead of asking again.
BUTTONS_AFTER_FAILURES = 2
GIVE_UP_AFTER_FAILURES = 3
_COORDINATES = re.compile(r"@(-?\d{1,3}(?:\.\d+)?),(-?\d{1,3}(?:\.\d+)?)")
_FILLER = re.compile(r"[\s，。,.!！?？~～、…]+|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def reset_report() -> list[EventType]:
    return [SlotSet(name, None) for name in REPORT_SLOTS]


def pending(tracker: Tracker) -> bool:
    """A summary was shown and nothing was filed or cancelled since: the report waits for 确认."""
    return bool(tracker.get_slot("report_id")) and tracker.active_loop.get("name") != "report_form"


def draft_of(tracker: Tracker, **changes: Any) -> dict[str, Any]:
    """The report the form's slots hold, with `changes` made in this turn."""
    draft = {name: tracker.get_slot(name) for name in DRAFT_SLOTS}
    draft.update({k: v for k, v in changes.items() if k in DRAFT_SLOTS})
    return draft


def drafts_of(tracker: Tracker, **changes: Any) -> list[dict[str, Any]]:
    """Every report waiting for 确认: those held over first, then the one in the form's slots."""
    held = [d for d in tracker.get_slot("more_reports") or [] if isinstance(d, dict)]
    current = draft_of(tracker, **changes)
    return [*held, current] if current.get("category") else held


def closed(tracker: Tracker, report_id: str | None, outcome: str) -> list[EventType]:
    """Remember what became of `report_id` (filed as ..., or cancelled), for its stale buttons."""
    if not report_id:
        return []
    kept = dict(tracker.get_slot("closed_reports") or {})
    kept[str(report_id)] = outcome
    return [SlotSet("closed_reports", dict(list(kept.items())[-CLOSED_KEPT:]))]


def new_report_id() -> str:
    return secrets.token_hex(4)


def stale_press(deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """A button of a report that is no longer waiting (filed, cancelled, or replaced): say so
    plainly, and what to do instead. True when the press was stale (and answered)."""
    named = entity(tracker, "report")
    if not named or named == tracker.get_slot("report_id"):
        return False
    outcome = str((tracker.get_slot("closed_reports") or {}).get(str(named)) or "")
    if outcome.startswith("filed:"):
        dispatcher.utter_message(text=t("report.stale_filed", numbers=outcome[len("filed:"):]))
    elif outcome == "cancelled":
        dispatcher.utter_message(text=t("report.stale_cancelled"))
    else:
        dispatcher.utter_message(text=t("report.stale"))
    if pending(tracker):  # another report does wait: show it again, with live buttons
        show_summary(deps, dispatcher, tracker, lead=t("report.pending"))
    return True


def category_names(deps: Deps) -> dict[str, str]:
    with deps.reading() as s:
        return {c.code: c.name for c in s.query(Category).filter(Category.active.is_(True))
                if c.kind is not CategoryKind.emergency}


def complaint_ranking(tracker: Tracker) -> list[tuple[str, float]]:
    ranking = tracker.latest_message.get("intent_ranking") or []
    return [(str(r["name"])[len(COMPLAINT_PREFIX):], float(r.get("confidence") or 0.0))
            for r in ranking if str(r.get("name", "")).startswith(COMPLAINT_PREFIX)]


def substantive(text: str, places: list[str]) -> bool:
    """Is there more to the message than a place and a category word?"""
    rest = text
    for place in places:
        rest = rest.replace(place, "")
    return len(_FILLER.sub("", rest)) >= MIN_DESCRIPTION


def resolve_place(deps: Deps, value: str, community_code: str | None,
                  home_address: str | None = None) -> tuple[dict[str, Any], RouteResult]:
    """Slots for a place the resident gave: text, a registry code, or '@lat,lon'."""
    router = deps.router()
    point = _COORDINATES.fullmatch(value)
    if point:
        lat, lon = float(point.group(1)), float(point.group(2))
        result = router.by_point(lat, lon)
        slots: dict[str, Any] = {"latitude": lat, "longitude": lon}
    elif re.fullmatch(r"[A-Z]{1,3}-[A-Z0-9-]+", value):
        result, slots = router.by_code(value), {}
    else:
        result, slots = router.by_text(value, community_code), {}
        if result.status is RouteStatus.ambiguous and community_code:
            # "7号楼" from a resident means the one in their own estate, else their community.
            top = result.candidates[0].score
            tied = [c for c in result.candidates if c.score == top]
            own = [c for c in tied if c.community_code == community_code]
            if home_address and len(own) > 1:
                own = [c for c in own if normalise(c.label).startswith(estate_of(home_address))]
            if len(own) == 1:
                result = RouteResult(RouteStatus.matched, own)
    best = result.best
    if best is None:
        return slots, result
    slots.update(place=best.label if best.kind != "grid" else t("report.place_location", grid=best.label),
                 grid_code=best.grid_code, place_candidates=None,
                 building_code=best.code if best.kind == "building" else None,
                 landmark_code=best.code if best.kind == "landmark" else None)
    return slots, result


def resident_home(deps: Deps, sender: int | None) -> tuple[str | None, str | None, str | None]:
    """(building code, its address, community code) of the resident's binding."""
    if sender is None:
        return None, None, None
    with deps.reading() as s:
        person = residents.person_by_telegram(s, sender)
        if person is None or person.building_id is None:
            return None, None, None
        building = s.get(Building, person.building_id)
        if building is None:
            return None, None, None
        grid = s.get(Grid, building.grid_id)
        community = grid.community.code if grid is not None else None
        return building.code, building.address, community


class ActionStartReport(GridAction):
    """A complaint (or a chosen category) starts a report; fill what the message already says."""

    def name(self) -> str:
        return "action_start_report"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = intent_name(tracker)
        if intent == "change_category":
            chosen = entity(tracker, "category")
            names = category_names(self.deps)
            current = tracker.get_slot("category")
            events: list[EventType] = [] if tracker.get_slot("grid_code") else _place_events(self.deps, tracker)
            if chosen in names:
                return [*events, SlotSet("category", chosen), SlotSet("category_candidates", None)]
            others = [c for c in (tracker.get_slot("category_candidates") or []) if c != current]
            others += [c for c in names if c not in others and c != current and c != "other"]
            return [*events, SlotSet("category", None), SlotSet("category_candidates", others[:5] + ["other"])]

        common.safety_first(dispatcher, tracker)
        if (followed_up := followup.attach_if_own(self.deps, dispatcher, tracker)) is not None:
            return followed_up  # her own ticket of this already took it (actions/followup.py)
        if tracker.latest_message.get("out_of_scope_also"):
            dispatcher.utter_message(text=t("report.also_out_of_scope"))
        events = reset_report()
        # A photo sent just before the words, or the photo these words are the caption of,
        # belongs to this report.
        photos = common.photo_ids(tracker) if not tracker.get_slot("category") else []
        if common.metadata(tracker).get("photo") and tracker.get_slot("category"):
            photos = [str(common.metadata(tracker)["photo"])]
        if photos:
            events.append(SlotSet("photo_ids", photos))
        text = message_text(tracker)
        code = intent[len(COMPLAINT_PREFIX):]
        confidence = float((tracker.latest_message.get("intent") or {}).get("confidence") or 0.0)
        top = [c for c, _ in complaint_ranking(tracker)][:3]
        if confidence >= SURE_CONFIDENCE:
            events.append(SlotSet("category", code))
        events.append(SlotSet("category_candidates", top or None))

        events += _place_events(self.deps, tracker)
        places = entities(tracker, "landmark", "gate", "building", "unit")
        if not text.startswith("/") and substantive(text, places):
            events.append(SlotSet("description", text))
        if pending(tracker):
            if _adds_to(tracker, code, confidence, text):
                # More about the report that waits ("不亮了", "一个礼拜了"): it goes into its description.
                dispatcher.utter_message(text=t("report.added"))
                return [SlotSet("description", _joined(tracker.get_slot("description"), text))]
            # A new problem: the one that waits is kept, and both are confirmed together.
            names = category_names(self.deps)
            held = drafts_of(tracker)
            dispatcher.utter_message(text=t("report.pending_kept", categories="、".join(
                names.get(str(d.get("category")), "") for d in held)))
            # the same report id: the waiting summary's buttons now stand for all of them
            events += [SlotSet("more_reports", held), SlotSet("report_id", tracker.get_slot("report_id"))]
        return events + _split(self.deps, tracker, events, code)


def _joined(before: str | None, more: str) -> str:
    before = (before or "").strip()
    if not before or more in before:
        return before or more
    return before + ("" if before[-1] in "，。！？,.!?" else "，") + more


def _adds_to(tracker: Tracker, code: str, confidence: float, text: str) -> bool:
    """Does a complaint typed while a report waits say more about that report (the same
    category, or a few unsure words without a place of their own)?"""
    if entity(tracker, "building") or tracker.latest_message.get("problems"):
        return False
    if code == tracker.get_slot("category"):
        return True
    return len(_FILLER.sub("", text)) <= 6 and confidence < SURE_CONFIDENCE


def _split(deps: Deps, tracker: Tracker, events: list[EventType], code: str) -> list[EventType]:
    """A message that lists several different problems becomes one report per problem: the last
    in the form's slots, the others held in `more_reports` (each with the message's place)."""
    found = [p for p in tracker.latest_message.get("problems") or []
             if str(p.get("intent", "")).startswith(COMPLAINT_PREFIX)]
    names = category_names(deps)
    found = [p for p in found if str(p["intent"])[len(COMPLAINT_PREFIX):] in names]
    if len(found) < 2 or message_text(tracker).startswith("/"):
        return []
    text = message_text(tracker)
    # The spans are in the classifier's normalised text (nlu/normalizer.py); the resident's own
    # words when normalising kept every character in place (三号楼 → 3号楼), else the normalised.
    normalised = normalise(text)
    source = text if len(normalised) == len(text) else normalised
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    place = {k: slots.get(k) for k in DRAFT_SLOTS if k not in ("category", "description")}
    drafts = [{**place, "category": str(p["intent"])[len(COMPLAINT_PREFIX):],
               "description": source[int(p["start"]):int(p["end"])].strip(" ，,、") or text} for p in found]
    held = list(slots.get("more_reports") or []) + drafts[:-1]
    last = drafts[-1]
    return [SlotSet("more_reports", held), SlotSet("category", last["category"]),
            SlotSet("description", last["description"]), SlotSet("category_candidates", None)]


def _place_events(deps: Deps, tracker: Tracker) -> list[EventType]:
    """The place named in the message, else the resident's own building."""
    places = entities(tracker, "landmark", "gate", "building", "unit")
    home, home_address, community = resident_home(deps, common.sender_id(tracker))
    events: list[EventType] = []
    lat, lon = entity(tracker, "latitude"), entity(tracker, "longitude")
    if lat is not None and lon is not None:
        slots, result = resolve_place(deps, f"@{float(lat)},{float(lon)}", community)
        events += [SlotSet(k, v) for k, v in slots.items()]
        if result.status is not RouteStatus.matched:
            events.append(SlotSet("place_candidates", _candidates(result)))
    elif places:
        # A building number is the surest; a named landmark (东门) next; generic words
        # such as 消防通道 resolve to nothing, and then the resident's home counts.
        named = _with_estate(deps, tracker, entities(tracker, "building")) or entities(tracker, "gate", "landmark")
        found = resolve_place(deps, named[0], community, home_address) if named else None
        if found is not None and (found[1].status is RouteStatus.matched or entities(tracker, "building")):
            events += [SlotSet(k, v) for k, v in found[0].items()]
            if found[1].status is not RouteStatus.matched:
                events.append(SlotSet("place_candidates", _candidates(found[1])))
        elif home is not None:
            slots, _ = resolve_place(deps, home, community)
            events += [SlotSet(k, v) for k, v in slots.items()]
    elif home is not None:
        slots, _ = resolve_place(deps, home, community)
        events += [SlotSet(k, v) for k, v in slots.items()]
    return events


def _with_estate(deps: Deps, tracker: Tracker, buildings: list[str]) -> list[str]:
    """Building numbers qualified by the estate the message names anywhere ("和平里…1号楼")."""
    estate = deps.router().estate_named(message_text(tracker)) if buildings else None
    return [f"{estate}{b}" for b in buildings] if estate else buildings


def _candidates(result: RouteResult) -> list[dict[str, str]] | None:
    return [{"code": c.code, "label": c.label} for c in result.candidates[:4]] or None


class ValidateReportForm(FormValidationAction):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def name(self) -> str:
        return "validate_report_form"

    # -- extraction: what in the latest message answers the question ---------------
    def _answering(self, tracker: Tracker, slot: str) -> bool:
        return tracker.get_slot("requested_slot") == slot and intent_name(tracker) not in INTERRUPTIONS

    async def extract_category(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        intent = intent_name(tracker)
        if intent == "change_category" and entity(tracker, "category"):
            return {"category": entity(tracker, "category")}
        if tracker.get_slot("requested_slot") == "category" and intent.startswith(COMPLAINT_PREFIX):
            text, description = message_text(tracker), tracker.get_slot("description")
            if description and text and not text.startswith("/"):  # typed words say more: keep them
                return {"category": intent[len(COMPLAINT_PREFIX):], "description": _joined(description, text)}
            return {"category": intent[len(COMPLAINT_PREFIX):]}
        return {}

    async def extract_place(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                            domain: DomainDict) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "place":
            return {}
        code = entity(tracker, "place_code")
        if code:
            return {"place": str(code)}
        lat, lon = entity(tracker, "latitude"), entity(tracker, "longitude")
        if lat is not None and lon is not None:
            return {"place": f"@{float(lat)},{float(lon)}"}
        if intent_name(tracker) in INTERRUPTIONS:
            return {}
        named = _with_estate(self.deps, tracker, entities(tracker, "building")) or entities(tracker, "gate", "landmark")
        if named:
            return {"place": named[0]}
        text = message_text(tracker)
        return {"place": text} if text and not text.startswith("/") else {}

    async def extract_description(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> dict[str, Any]:
        if not self._answering(tracker, "description"):
            return {}
        text = message_text(tracker)
        return {"description": text} if text and not text.startswith("/") else {}

    # -- validation ---------------------------------------------------------------
    def validate_category(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                          domain: DomainDict) -> dict[str, Any]:
        if value in category_names(self.deps):
            return {"category": value}
        return {"category": None}

    def validate_place(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        if not value:
            return {"place": None}
        if tracker.get_slot("grid_code") and value == tracker.get_slot("place"):
            return {"place": value}  # resolved when the report started
        home, home_address, community = resident_home(self.deps, common.sender_id(tracker))
        slots, result = resolve_place(self.deps, str(value), community, home_address)
        if result.status is RouteStatus.matched:
            return {**slots, "form_failures": None}
        candidates = _candidates(result)
        failures = dict(tracker.get_slot("form_failures") or {})
        if candidates and result.status is RouteStatus.ambiguous:
            return {"place": None, "place_candidates": candidates}  # a choice, not a failure
        failures["place"] = int(failures.get("place", 0)) + 1
        if failures["place"] >= GIVE_UP_AFTER_FAILURES:
            # Never loop: end the form; the summary says what to do instead.
            return {"place": None, "place_candidates": None, "form_failures": failures, "requested_slot": None}
        offers = list(candidates or [])
        if home and not any(c["code"] == home for c in offers):  # the resident's own building
            offers.insert(0, {"code": home, "label": t("report.place_home", address=home_address or home)})
        again = failures["place"] >= BUTTONS_AFTER_FAILURES
        dispatcher.utter_message(text=t("report.place_unknown_again" if again else "report.place_unknown"))
        return {"place": None, "place_candidates": offers[:4] or None, "form_failures": failures}

    def validate_description(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        if len(_FILLER.sub("", text)) >= 2:
            return {"description": text}
        failures = dict(tracker.get_slot("form_failures") or {})
        failures["description"] = int(failures.get("description", 0)) + 1
        if failures["description"] >= BUTTONS_AFTER_FAILURES and tracker.get_slot("category"):
            # Two empty answers: the category and place are enough to file; say so.
            names = category_names(self.deps)
            return {"description": t("report.description_none", category=names.get(
                tracker.get_slot("category"), "")), "form_failures": failures}
        return {"description": None, "form_failures": failures}

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> list[EventType]:
        events = await super().run(dispatcher, tracker, domain)
        photo = common.metadata(tracker).get("photo")  # a captioned photo sent mid-form
        if photo:
            events.append(SlotSet("photo_ids", common.photo_ids(tracker)))
        return events


class ActionAskCategory(GridAction):
    def name(self) -> str:
        return "action_ask_category"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        names = category_names(self.deps)
        codes = [c for c in (tracker.get_slot("category_candidates") or []) if c in names]
        if not codes:
            codes = ["parking", "noise", "sanitation", "property", "facilities"]
        if "other" not in codes:
            codes.append("other")
        buttons = [button(names[c], "change_category", category=c) for c in codes if c in names]
        buttons.append(button(t("report.button_cancel"), "cancel"))
        dispatcher.utter_message(text=t("report.ask_category"), buttons=buttons)
        return []


class ActionAskPlace(GridAction):
    def name(self) -> str:
        return "action_ask_place"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        candidates = tracker.get_slot("place_candidates") or []
        failed = int((tracker.get_slot("form_failures") or {}).get("place", 0))
        buttons = [button(c["label"], "inform", place_code=c["code"]) for c in candidates]
        if failed >= BUTTONS_AFTER_FAILURES:
            buttons.append(button(t("report.button_cancel"), "cancel"))  # a way out
            dispatcher.utter_message(text=t("report.ask_place_way_out"), buttons=buttons)
        elif buttons:
            dispatcher.utter_message(text=t("report.ask_place_choose"), buttons=buttons)
        else:
            dispatcher.utter_message(text=t("report.ask_place"))
        return []


class ActionAskDescription(GridAction):
    def name(self) -> str:
        return "action_ask_description"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(text=t("report.ask_description"))
        return []


class ActionReportSummary(GridAction):
    """One message with everything that will be filed, and the choices."""

    def name(self) -> str:
        return "action_report_summary"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if not tracker.get_slot("grid_code"):  # the form ended without a place (failed answers)
            dispatcher.utter_message(text=t("report.place_give_up"))
            held = tracker.get_slot("more_reports") or []
            if held:  # the other reports still wait: the first of them becomes the current one
                current, rest = dict(held[0]), held[1:]
                report_id = tracker.get_slot("report_id") or new_report_id()
                show_summary(self.deps, dispatcher, tracker, report_id=report_id, drafts=[*rest, current])
                return [*reset_report(), *[SlotSet(k, current.get(k)) for k in DRAFT_SLOTS],
                        SlotSet("more_reports", rest or None), SlotSet("report_id", report_id)]
            return reset_report()
        report_id = tracker.get_slot("report_id") or new_report_id()
        events: list[EventType] = [SlotSet("report_id", report_id)]
        held = [dict(d) for d in tracker.get_slot("more_reports") or []]
        if any(not d.get("grid_code") for d in held):  # reports of one message share the place asked for
            place = {k: tracker.get_slot(k) for k in DRAFT_SLOTS if k not in ("category", "description", "photo_ids")}
            held = [d if d.get("grid_code") else {**d, **place} for d in held]
            # the same report id: the waiting summary's buttons now stand for all of them
            events += [SlotSet("more_reports", held), SlotSet("report_id", tracker.get_slot("report_id"))]
        drafts = [*held, draft_of(tracker)]
        return [*events, *show_summary(self.deps, dispatcher, tracker, report_id=report_id, drafts=drafts)]


def show_summary(deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, *, lead: str | None = None,
                 report_id: str | None = None, drafts: list[dict[str, Any]] | None = None,
                 **changes: Any) -> list[EventType]:
    """The summary of the report(s) waiting for 确认, with buttons bound to `report_id` (so a
    press on an older summary is recognised as stale); `lead` goes before it."""
    report_id = report_id or tracker.get_slot("report_id")
    drafts = drafts if drafts is not None else drafts_of(tracker, **changes)
    if not drafts:
        return []
    if len(drafts) > 1:
        return _show_several(deps, dispatcher, drafts, report_id, lead)
    draft = drafts[0]
    code, photos = str(draft.get("category")), draft.get("photo_ids") or []
    with deps.reading() as s:
        category = s.get(Category, code)
        grid = _by_code(s, Grid, draft.get("grid_code"))
        building = _by_code(s, Building, draft.get("building_code"))
        dups = ticket_service.find_duplicates(s, code, grid.id, building.id if building else None) if grid else []
        text = t("report.summary", category=category.name if category else code,
                 place=draft.get("place"), grid=grid.name if grid else "",
                 description=draft.get("description"),
                 photos=t("report.summary_photos", n=len(photos)) if photos else t("report.summary_no_photo"),
                 limits=t("report.summary_limits", respond=_duration(category.respond_minutes),
                          resolve=_duration(category.resolve_minutes)) if category else "")
        buttons = [button(t("report.button_confirm"), "affirm", report=report_id)]
        events: list[EventType] = [SlotSet("duplicate_ticket", None)]
        if dups:
            dup = dups[0]
            text += "\n\n" + t("report.duplicate", number=dup.number,
                               status=t(f"status.{dup.status.value}"), description=_short(dup.description))
            buttons.insert(0, button(t("report.button_me_too"), "join_ticket", ticket=dup.number))
            events = [SlotSet("duplicate_ticket", dup.number)]
    buttons += [button(t("report.button_change_category"), "change_category"),
                button(t("report.button_cancel"), "cancel", report=report_id)]
    dispatcher.utter_message(text=f"{lead}\n{text}" if lead else text, buttons=buttons)
    return events


def _show_several(deps: Deps, dispatcher: CollectingDispatcher, drafts: list[dict[str, Any]], report_id: str | None,
                  lead: str | None) -> list[EventType]:
    names = category_names(deps)
    with deps.reading() as s:
        grids = {d.get("grid_code"): _by_code(s, Grid, d.get("grid_code")) for d in drafts}
        lines = [t("report.several_line", n=i, category=names.get(str(d.get("category")), str(d.get("category"))),
                   place=d.get("place"), grid=grids[d.get("grid_code")].name if grids.get(d.get("grid_code")) else "",
                   description=d.get("description"))
                 for i, d in enumerate(drafts, 1)]
    text = t("report.several", n=len(drafts), items="\n".join(lines))
    buttons = [button(t("report.button_confirm_all", n=len(drafts)), "affirm", report=report_id)]
    buttons += [button(t("report.button_drop", n=i), "cancel", report=report_id, draft=str(i))
                for i in range(1, len(drafts) + 1)]
    buttons.append(button(t("report.button_cancel_all"), "cancel", report=report_id))
    dispatcher.utter_message(text=f"{lead}\n{text}" if lead else text, buttons=buttons)
    return [SlotSet("duplicate_ticket", None)]


def _duration(minutes: int) -> str:
    if minutes % 1440 == 0:
        return t("time.days", n=minutes // 1440)
    if minutes % 60 == 0:
        return t("time.hours", n=minutes // 60)
    return t("time.minutes", n=minutes)


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class ActionAddPhoto(GridAction):
    def name(self) -> str:
        return "action_add_photo"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        photo = entity(tracker, "photo")
        if not photo:
            dispatcher.utter_message(text=t("report.photo_how"))
            return []
        photos = list(tracker.get_slot("photo_ids") or [])
        if photo not in photos:
            photos.append(str(photo))
        if not tracker.get_slot("category") and tracker.active_loop.get("name") != "report_form":
            dispatcher.utter_message(text=t("report.photo_kept"))
        return [SlotSet("photo_ids", photos)]


class ActionSubmitReport(GridAction):
    """确认 (a button or a typed 好的): file every report that waits, with one press. A 确认 of a
    report that no longer waits says so; a typed 好的 with nothing waiting is just an answer."""

    def name(self) -> str:
        return "action_submit_report"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if common.is_warm_up(tracker):
            return reset_report()
        if stale_press(self.deps, dispatcher, tracker):
            return []
        if tracker.active_loop.get("name") == "report_form":  # a waiting 确认 pressed mid-question
            dispatcher.utter_message(text=t("report.finish_first"))
            return []
        drafts = [d for d in drafts_of(tracker) if d.get("category") and d.get("description") and d.get("grid_code")]
        if not drafts:
            if entity(tracker, "report") or tracker.get_slot("category"):
                dispatcher.utter_message(text=t("report.nothing_to_submit"))
                return reset_report()
            dispatcher.utter_message(response="utter_affirm")
            return []
        sender = common.sender_id(tracker)
        meta = common.metadata(tracker)
        key = common.submission_key(tracker)
        filed: list[tuple[str, str, str, str]] = []  # number, category, grid, resolve limit
        with self.deps.session() as s:
            reporter = residents.reporter_for(s, sender, str(meta.get("display_name") or ""))
            for index, draft in enumerate(drafts):
                verdict = limits.reports(s, reporter.id, settings=self.deps.settings) if reporter is not None else None
                if verdict is not None and not verdict.allowed:
                    log.info("report not filed: the sender reached %d reports within an hour", verdict.limit)
                    dispatcher.utter_message(text=t("limit.reports", limit=verdict.limit,
                                                    at=verdict.retry_local(self.deps.tz)))
                    break
                grid_obj = _by_code(s, Grid, draft.get("grid_code"))
                building = _by_code(s, Building, draft.get("building_code"))
                landmark = _by_code(s, Landmark, draft.get("landmark_code"))
                ticket = ticket_service.submit_report(s, NewTicket(
                    category_code=str(draft["category"]), description=str(draft["description"]),
                    reporter_id=reporter.id if reporter else None,
                    community_id=grid_obj.community_id if grid_obj else None,
                    grid_id=grid_obj.id if grid_obj else None,
                    building_id=building.id if building else None,
                    landmark_id=landmark.id if landmark else None,
                    location_text=draft.get("place"),
                    lat=draft.get("latitude"), lon=draft.get("longitude"),
                    photo_file_ids=list(draft.get("photo_ids") or []),
                    anonymous=reporter is None or not reporter.contact_consent,
                    # one message may file several reports: each keeps a key of its own
                    submission_key=(key if index == 0 or key is None else f"{key}:{index}"),
                ), tz=self.deps.tz, notify_reporter=False)
                filed.append((ticket.number, ticket.category.name, grid_obj.name if grid_obj else "",
                              _duration(ticket.category.resolve_minutes)))
        for number, _, _, _ in filed:
            log.info("ticket %s filed", number)
        if len(filed) == 1:
            number, _, grid_name, limit = filed[0]
            dispatcher.utter_message(text=t("report.filed", number=number, grid=grid_name, resolve=limit))
        elif filed:
            dispatcher.utter_message(text=t("report.filed_several", n=len(filed), items="\n".join(
                t("report.filed_line", number=n, category=c, grid=g, resolve=r) for n, c, g, r in filed)))
        numbers = "、".join(n for n, _, _, _ in filed)
        return [*reset_report(), *closed(tracker, tracker.get_slot("report_id"), f"filed:{numbers}")]


def _by_code(s: Session, model: Any, code: str | None) -> Any:
    return s.scalars(select(model).where(model.code == code)).first() if code else None


class ActionCancelReport(GridAction):
    """取消: the report(s) waiting, or one of several ("去掉第2条"). A 取消 of a report that no longer
    waits says what became of it; right after an emergency, it says that the urgent ticket went
    out and cannot be taken back, and offers 危险已解除 / 是误报 instead."""

    def name(self) -> str:
        return "action_cancel_report"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if stale_press(self.deps, dispatcher, tracker):
            return []
        drop = entity(tracker, "draft")
        drafts = drafts_of(tracker)
        if drop and str(drop).isdigit() and len(drafts) > 1 and 1 <= int(drop) <= len(drafts):
            kept = [d for i, d in enumerate(drafts, 1) if i != int(drop)]
            current, held = kept[-1], kept[:-1]
            dispatcher.utter_message(text=t("report.dropped", n=int(drop)))
            show_summary(self.deps, dispatcher, tracker, drafts=kept)
            return [*[SlotSet(k, current.get(k)) for k in DRAFT_SLOTS], SlotSet("more_reports", held or None)]
        if not drafts and not tracker.get_slot("category") and emergency_told(self.deps, dispatcher, tracker):
            return []
        dispatcher.utter_message(text=t("report.cancelled_several", n=len(drafts)) if len(drafts) > 1
                                 else t("report.cancelled"))
        return [*reset_report(), *closed(tracker, tracker.get_slot("report_id"), "cancelled")]


def emergency_told(deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """After an urgent ticket went out: it cannot be cancelled; the resident may say the danger is
    over or was a mistake (core.remarks), which the handlers then see. True when said."""
    number = tracker.get_slot("emergency_ticket")
    if not number:
        return False
    with deps.reading() as s:
        ticket = tickets.get_by_number(s, str(number))
        if ticket is None or ticket.status.value in ("closed", "rejected", "duplicate"):
            return False
    dispatcher.utter_message(text=t("emergency.cannot_cancel", number=number), buttons=[
        button(t("emergency.button_over"), "emergency_over", ticket=str(number), outcome="over"),
        button(t("emergency.button_false_alarm"), "emergency_over", ticket=str(number), outcome="false_alarm")])
    return True


class ActionJoinTicket(GridAction):
    """我也遇到了: follow the open ticket instead of filing a duplicate."""

    def name(self) -> str:
        return "action_join_ticket"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        number = entity(tracker, "ticket") or tracker.get_slot("duplicate_ticket")
        sender = common.sender_id(tracker)
        if not number or sender is None:
            dispatcher.utter_message(text=t("report.join_nothing"))
            return []
        with self.deps.session() as s:
            ticket = tickets.get_by_number(s, str(number))
            reporter = residents.reporter_for(s, sender, str(common.metadata(tracker).get("display_name") or ""))
            if ticket is None or reporter is None:
                dispatcher.utter_message(text=t("report.join_nothing"))
                return []
            ticket_service.join(s, ticket.id, reporter)
        return reset_report()


class ActionTriage(GridAction):
    """Words the classifier could not place, or only a place ("我们三号楼").

    While a report waits for 确认 they say more about it ("一个礼拜了"): they go into its
    description and the summary is shown again. Otherwise they are a fragment: the answer says
    what was kept and carries the FRAGMENT marker, and the bot joins this message to the same
    person's next one (bot/conversation.py, core/fragments.py), so "我们三号楼", "楼道的灯",
    "不亮了" sent one after another are read as one report."""

    def name(self) -> str:
        return "action_triage"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        common.safety_first(dispatcher, tracker)
        text = message_text(tracker)
        if pending(tracker) and text and not text.startswith("/"):
            description = _joined(tracker.get_slot("description"), text)
            return [SlotSet("description", description),
                    *show_summary(self.deps, dispatcher, tracker, lead=t("report.added"), description=description)]
        ranking = complaint_ranking(tracker)
        photos = common.photo_ids(tracker)
        fragment = {FRAGMENT: True}
        if intent_name(tracker) == "inform" or len(_FILLER.sub("", text)) < MIN_DESCRIPTION \
                or sum(c for _, c in ranking) < 0.5:
            if photos:  # a photo with words we could not place: keep the photo, ask what it is
                dispatcher.utter_message(text=t("report.photo_kept"))
                return [SlotSet("photo_ids", photos)]
            places = entities(tracker, "building", "landmark", "gate", "unit")
            if common.metadata(tracker).get(JOINED):
                dispatcher.utter_message(text=t("report.fragment_more", text=text))
            elif intent_name(tracker) == "inform" and places:
                dispatcher.utter_message(text=t("report.fragment_place", place=places[0]))
            else:
                dispatcher.utter_message(text=t("default"))
            if not text.startswith("/"):  # a button's payload is never a fragment
                dispatcher.utter_message(json_message=fragment)
            return []
        names = category_names(self.deps)
        codes = [c for c, _ in ranking if c in names][:3]
        if "other" not in codes:
            codes.append("other")
        buttons = [button(names[c], "change_category", category=c) for c in codes]
        buttons.append(button(t("report.button_cancel"), "cancel"))
        dispatcher.utter_message(text=t("report.ask_category_unsure"), buttons=buttons)
        dispatcher.utter_message(json_message=fragment)  # typing on instead of pressing joins the words
        return [*reset_report(), SlotSet("description", text), SlotSet("category_candidates", codes),
                SlotSet("photo_ids", photos or None)]


class ActionReply(GridAction):
    """Thanks, a no, an out-of-scope question: the usual answer — but while a report waits for
    确认, the resident hears that it has not been filed yet, with its buttons again."""

    def name(self) -> str:
        return "action_reply"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = intent_name(tracker)
        if intent == "out_of_scope":
            dispatcher.utter_message(response="utter_out_of_scope")
        if pending(tracker):
            show_summary(self.deps, dispatcher, tracker, lead=t("report.pending"))
        elif intent in ("thank", "deny", "greet"):
            from actions.rating import visit_in_words  # here: actions.rating imports this module

            # "已经好了 太谢谢了" while a ticket waits for its return visit: the visit's answer
            if intent != "thank" or not visit_in_words(self.deps, dispatcher, tracker, thanks=True):
                dispatcher.utter_message(response=f"utter_{intent}")
        return []


class ActionRemindPending(GridAction):
    """After an answer to a side question (/my, /help, 你好): a report that waits is shown again."""

    def name(self) -> str:
        return "action_remind_pending"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if pending(tracker) and not common.is_warm_up(tracker):
            show_summary(self.deps, dispatcher, tracker, lead=t("report.pending"))
        return []
