"""The reporting dialogue: start, form validation, asks, summary, photo, submit, cancel.

Rasa's report_form (domain/report.yml) asks for whatever is still missing of
category, place and description; this module decides what counts as filled.
The place is resolved to a grid by core.places.router, so a ticket is never filed
against a guessed grid.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions import common
from actions.common import button, entities, entity, intent_name, message_text
from actions.deps import Deps, GridAction
from core.access import limits
from core.messages import t
from core.models import Building, Category, CategoryKind, Grid, Landmark
from core.people import residents
from core.places.router import RouteResult, RouteStatus, estate_of
from core.text import normalise
from core.tickets import lifecycle as tickets
from core.tickets import service as ticket_service
from core.tickets.lifecycle import NewTicket

log = logging.getLogger("gridbot.actions.report")

COMPLAINT_PREFIX = "complaint_"
SURE_CONFIDENCE = 0.55  # below this the resident picks among the top categories
MIN_DESCRIPTION = 4  # characters left once places and fillers are removed
# Intents that interrupt the form instead of answering its question.
INTERRUPTIONS = {"cancel", "emergency", "change_category", "share_photo", "join_ticket", "check_status", "help"}
REPORT_SLOTS = ("category", "category_candidates", "place", "place_candidates", "building_code",
                "landmark_code", "grid_code", "latitude", "longitude", "description", "photo_ids",
                "duplicate_ticket", "form_failures")
# Failed answers to the same question: after this many the question comes with buttons
# and a way out; one more and the form ends kindly instead of asking again.
BUTTONS_AFTER_FAILURES = 2
GIVE_UP_AFTER_FAILURES = 3
_COORDINATES = re.compile(r"@(-?\d{1,3}(?:\.\d+)?),(-?\d{1,3}(?:\.\d+)?)")
_FILLER = re.compile(r"[\s，。,.!！?？~～、…]+|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def reset_report() -> list[EventType]:
    return [SlotSet(name, None) for name in REPORT_SLOTS]


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
        return events


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
        code = tracker.get_slot("category")
        photos = tracker.get_slot("photo_ids") or []
        if not tracker.get_slot("grid_code"):  # the form ended without a place (failed answers)
            dispatcher.utter_message(text=t("report.place_give_up"))
            return reset_report()
        with self.deps.reading() as s:
            category = s.get(Category, code)
            grid = _by_code(s, Grid, tracker.get_slot("grid_code"))
            building = _by_code(s, Building, tracker.get_slot("building_code"))
            dups = ticket_service.find_duplicates(s, code, grid.id, building.id if building else None) if grid else []
            text = t("report.summary", category=category.name if category else code,
                     place=tracker.get_slot("place"), grid=grid.name if grid else "",
                     description=tracker.get_slot("description"),
                     photos=t("report.summary_photos", n=len(photos)) if photos else t("report.summary_no_photo"),
                     limits=t("report.summary_limits", respond=_duration(category.respond_minutes),
                              resolve=_duration(category.resolve_minutes)) if category else "")
            buttons = [button(t("report.button_confirm"), "affirm")]
            events: list[EventType] = [SlotSet("duplicate_ticket", None)]
            if dups:
                dup = dups[0]
                text += "\n\n" + t("report.duplicate", number=dup.number,
                                   status=t(f"status.{dup.status.value}"), description=_short(dup.description))
                buttons.insert(0, button(t("report.button_me_too"), "join_ticket", ticket=dup.number))
                events = [SlotSet("duplicate_ticket", dup.number)]
        buttons += [button(t("report.button_change_category"), "change_category"),
                    button(t("report.button_cancel"), "cancel")]
        dispatcher.utter_message(text=text, buttons=buttons)
        return events


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
    def name(self) -> str:
        return "action_submit_report"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        code, description = tracker.get_slot("category"), tracker.get_slot("description")
        if common.is_warm_up(tracker):
            return reset_report()
        if not code or not description or not tracker.get_slot("grid_code"):
            dispatcher.utter_message(text=t("report.nothing_to_submit"))
            return reset_report()
        sender = common.sender_id(tracker)
        meta = common.metadata(tracker)
        with self.deps.session() as s:
            reporter = residents.reporter_for(s, sender, str(meta.get("display_name") or ""))
            verdict = limits.reports(s, reporter.id, settings=self.deps.settings) if reporter is not None else None
            if verdict is not None and not verdict.allowed:
                log.info("report not filed: the sender reached %d reports within an hour", verdict.limit)
                dispatcher.utter_message(text=t("limit.reports", limit=verdict.limit,
                                                at=verdict.retry_local(self.deps.tz)))
                return reset_report()
            grid_obj = _by_code(s, Grid, tracker.get_slot("grid_code"))
            building = _by_code(s, Building, tracker.get_slot("building_code"))
            landmark = _by_code(s, Landmark, tracker.get_slot("landmark_code"))
            ticket = ticket_service.submit_report(s, NewTicket(
                category_code=code, description=description,
                reporter_id=reporter.id if reporter else None,
                community_id=grid_obj.community_id if grid_obj else None,
                grid_id=grid_obj.id if grid_obj else None,
                building_id=building.id if building else None,
                landmark_id=landmark.id if landmark else None,
                location_text=tracker.get_slot("place"),
                lat=tracker.get_slot("latitude"), lon=tracker.get_slot("longitude"),
                photo_file_ids=list(tracker.get_slot("photo_ids") or []),
                anonymous=reporter is None or not reporter.contact_consent,
                submission_key=common.submission_key(tracker),
            ), tz=self.deps.tz, notify_reporter=False)
            number, grid_name = ticket.number, grid_obj.name if grid_obj else ""
            limit = _duration(ticket.category.resolve_minutes)
        log.info("ticket %s filed (category %s)", number, code)
        dispatcher.utter_message(text=t("report.filed", number=number, grid=grid_name, resolve=limit))
        return reset_report()


def _by_code(s: Session, model: Any, code: str | None) -> Any:
    return s.scalars(select(model).where(model.code == code)).first() if code else None


class ActionCancelReport(GridAction):
    def name(self) -> str:
        return "action_cancel_report"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(text=t("report.cancelled"))
        return reset_report()


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
    """The classifier is unsure: if it looks like a complaint, let the resident pick the category."""

    def name(self) -> str:
        return "action_triage"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        common.safety_first(dispatcher, tracker)
        text = message_text(tracker)
        ranking = complaint_ranking(tracker)
        photos = common.photo_ids(tracker)
        if len(_FILLER.sub("", text)) < MIN_DESCRIPTION or sum(c for _, c in ranking) < 0.5:
            if photos:  # a photo with words we could not place: keep the photo, ask what it is
                dispatcher.utter_message(text=t("report.photo_kept"))
                return [SlotSet("photo_ids", photos)]
            dispatcher.utter_message(text=t("default"))
            return []
        names = category_names(self.deps)
        codes = [c for c, _ in ranking if c in names][:3]
        if "other" not in codes:
            codes.append("other")
        buttons = [button(names[c], "change_category", category=c) for c in codes]
        buttons.append(button(t("report.button_cancel"), "cancel"))
        dispatcher.utter_message(text=t("report.ask_category_unsure"), buttons=buttons)
        return [*reset_report(), SlotSet("description", text), SlotSet("category_candidates", codes),
                SlotSet("photo_ids", photos or None)]
