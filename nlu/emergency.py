"""Rasa component: a rule safety net so that an emergency is never missed.

BRIEF: the bot must never miss an emergency (life or property in danger now).
A learned classifier alone cannot promise that, so this component runs after
DIET and, when the text names a danger that is happening now — fire, gas,
someone collapsed or injured, someone trapped, a fight with weapons, someone
about to jump, drowning, a collapse — puts `emergency` at the top of the
ranking. It also works the other way: when DIET says `emergency` but the text
describes something that is over ("被困了二十分钟才出来") or only a hazard
("有火灾隐患"), the emergency is demoted to the next intent.

How a message is judged (`assess`; the rule sets are data in nlu/danger_words.py):
1. The text is normalised (traditional → simplified, 著 → 着) and idioms that
   borrow danger words are blanked ("冷得我快不行了", "闷得喘不上气", "吵得人想
   跳楼"). A message whose only danger words were idioms, or a fire lit on
   purpose ("烧树叶", "烧烤"), is not now.
2. DANGER names the dangers by kind, including the ways residents write them
   (homophones 着活了/没气味, dialect 晕咗/昏起了, emoji 🔥, indirect "喊救命",
   "里面还有人", "快叫救护车"). "救命" alone is not a danger.
3. People-only kinds (collapsed, injured, trapped, water, fall) do not count
   when an animal or a thing is plainly the subject ("我家猫被困在…", "我的车被
   困…"), nor smoke from a barbecue, a smell from a sewer, a car that is only
   blocked in.
4. Time is judged for each danger on its own clause(s) (split at punctuation
   and spaces), because residents put the aftermath next to the event: in
   "上周被困在电梯里，物业到现在也没个说法" the "现在" belongs to the
   complaint. An ending in the danger's clause or after it ("已经被救出来了",
   "说没漏", "…原来是喝醉了") makes it over unless it goes on ("还在漏"); a
   risk word before it ("容易着火", "哪天真烧起来") makes it hypothetical; a
   now-word ("现在又是一股煤气味") makes it now; a past or habit word in its
   clause ("上周着火了", "天天拿棍子捅天花板") makes it past.
5. Any danger now → emergency. A danger with no time word → emergency, unless
   a past time before it dates the whole story and nobody cries for help.
   Otherwise not now, unless someone cries for help ("快来", "快救").

`settled` covers messages that name no danger rule but say the event is over,
a habit or a risk; the guard then demotes a DIET emergency as well.

The rules are data in nlu/danger_words.py; each one says what it is for. A false alarm costs
a resident one extra message; a missed emergency can cost a life.
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from core.text import normalise
from nlu.danger_words import (
    ANIMAL,
    BLOCKED,
    DANGER,
    GAS_WORD,
    HABITUAL,
    HAZARD,
    HEATING,
    HOUSEHOLD,
    HYPOTHETICAL_AFTER,
    IDIOM,
    NOTHING_THERE,
    NOW,
    NUISANCE_FIRE,
    ONGOING,
    PAST,
    PERSON,
    PINYIN,
    RESOLVED,
    REVEAL,
    SEWER,
    STUCK_HOME,
    THING,
    URGENT,
    URGENT_STRONG,
)

EMERGENCY = "emergency"
NOT_NOW = "not_now"


_DANGERS = {kind: re.compile(p) for kind, p in DANGER.items()}
_ANY_DANGER = re.compile("|".join(f"(?:{p})" for p in DANGER.values()))
_IDIOM = re.compile(IDIOM)
_PINYIN = re.compile(PINYIN)
_LATIN = re.compile(r"[^a-z]+")
_PAST = re.compile(PAST)
_RESOLVED = re.compile(RESOLVED)
_HAZARD = re.compile(HAZARD)
_HABITUAL = re.compile(HABITUAL)
_HYPOTHETICAL_AFTER = re.compile(HYPOTHETICAL_AFTER)
# Endings that end a fire, smoke, gas or a collapse itself; any other ending ("人都跑出来了",
# "还好没人受伤") says only that people got away, and the danger may go on.
_PUT_OUT = re.compile(r"灭|控制住|制服|抓|带走|处理|修好|关好|关掉|没味|散了|止住|说没漏|没漏|没有漏|看|查|虚惊|误报|没事了|过去|差点|差一点|险些|没了|拧紧")
_REVEAL = re.compile(REVEAL)
_ONGOING = re.compile(ONGOING)
_NOW = re.compile(NOW)
_URGENT = re.compile(URGENT)
_URGENT_STRONG = re.compile(URGENT_STRONG)
_BLOCKED = re.compile(BLOCKED)
_NUISANCE_FIRE = re.compile(NUISANCE_FIRE)
_NOTHING_THERE = re.compile(NOTHING_THERE)
_WONT_LIGHT = re.compile(r"(?:打|点)不着(?:火)?")  # a stove that will not light: utilities
# Smoke that blinds, chokes or traps is a danger whoever lit the fire ("烧东西…全是烟…出不去").
_SEVERE_SMOKE = re.compile(r"看不(?:清|见)|出不去|跑不出|逃不出|喘不|晕")
_SETTLED_RISK = re.compile(r"隐患|万一|迟早|早晚会|哪天|会不会|容易|怕.{0,6}(?:出事|掉|砸|着火|中毒)")
_HEATING = re.compile(HEATING)
_SEWER = re.compile(SEWER)
_STUCK_HOME = re.compile(STUCK_HOME)
_GAS_WORD = re.compile(GAS_WORD)
_PERSON = re.compile(PERSON)
_ANIMAL = re.compile(ANIMAL)
_THING = re.compile(THING)
_HOUSEHOLD = re.compile(HOUSEHOLD)
_AGENT = re.compile(rf"[被让给叫遭](?:一|这|那)?(?:条|只|辆|个)?(?:大|小|野|流浪|别)?(?:{ANIMAL}|车|人|{PERSON})")
_SENTENCE_END = re.compile(r"[。！？!?\n]")
_CLAUSE = re.compile(r"[^，,。.!！?？;；:：\s~～…]+")
# Kinds that are emergencies only when a person is in danger (a fire is one whoever is inside).
_PEOPLE_ONLY = {"carbon_monoxide", "collapsed", "injured", "trapped", "shut_in", "water", "fall", "stroke", "poison", "wound",
                "shock", "unconscious", "crushed"}  # see _subject
_HYPOTHETICAL, _RESOLVED_, _NOW_, _PAST_, _NEUTRAL = "hypothetical", "resolved", "now", "past", "neutral"


def fold(text: str) -> str:
    """The text as the rules read it: simplified, half-width, 著 → 着, idioms blanked."""
    return _IDIOM.sub("　", normalise(text).replace("著", "着"))


def _last(pattern: re.Pattern[str], text: str) -> int:
    found = [m.start() for m in pattern.finditer(text)]
    return found[-1] if found else -1


def _subject(text: str, match: re.Match[str]) -> str:
    """Who the danger befalls: 'person'; 'animal_or_thing' when an animal or a
    thing is the subject right before it ("我家猫被困在…", "我的车被困…"); 'unclear'
    when one is mentioned earlier and no person after it. An agent ("被车撞",
    "被狗咬伤") is not a subject."""
    named = _PERSON.match(match.group(0))
    if named and not _HOUSEHOLD.match(match.group(0)) and not match.group(0)[named.end():].startswith("的"):
        return "person"  # the danger's own words name a person ("孩子被邻居家的大狗咬了"; not "我的手机")
    before = _HOUSEHOLD.sub("〇〇", text[:match.end()])
    subject = max(_last(_THING, before), _last(_ANIMAL, _AGENT.sub("〇", before)))
    if subject <= _last(_PERSON, _AGENT.sub("〇", before)):
        return "person"
    return "animal_or_thing" if match.start() - subject <= 4 else "unclear"


def _dangers(text: str) -> tuple[list[tuple[str, re.Match[str]]], bool]:
    """The danger matches that concern people now, and whether any match was
    set aside because it plainly concerns only an animal, a thing, a blocked
    car, a sewer or a nuisance. A danger whose subject is unclear is neither."""
    found, set_aside = [], False
    for kind, pattern in _DANGERS.items():
        for match in pattern.finditer(text):
            subject = _subject(text, match) if kind in _PEOPLE_ONLY else "person"
            if subject == "unclear":
                continue
            if ((kind == "shut_in" and _BLOCKED.search(text))
                    or (kind == "gas" and (_HEATING.search(text) or _SEWER.search(text)) and not _GAS_WORD.search(text))
                    or (kind == "smoke" and _NUISANCE_FIRE.search(text) and not _SEVERE_SMOKE.search(text))
                    or (kind == "fire" and match.group(0).startswith("火星") and _NUISANCE_FIRE.search(text))
                    or (kind == "smoke_out" and _NUISANCE_FIRE.search(_context(text, match)[2]))
                    or (kind == "trapped" and match.group(0).startswith("车") and _BLOCKED.search(text))
                    or (kind == "trapped" and _STUCK_HOME.search(text))
                    or subject == "animal_or_thing"):
                set_aside = True
                continue
            found.append((kind, match))
    return found, set_aside


def _context(text: str, match: re.Match[str]) -> tuple[int, int, str]:
    """The clause(s) the danger `match` lies in: start, end and text."""
    inside = [c for c in _CLAUSE.finditer(text) if c.start() < match.end() and match.start() < c.end()]
    lo, hi = (inside[0].start(), inside[-1].end()) if inside else (match.start(), match.end())
    return lo, hi, text[lo:hi]


def _status(text: str, kind: str, match: re.Match[str]) -> str:
    """How the danger `match` of `kind` stands in time, judged on the clause(s) it lies in.
    People who got out end a danger to people, not a fire or a gas leak ("我们全家已经跑出来了"
    beside a kitchen fire that still burns)."""
    lo, _, context = _context(text, match)
    endings = [r for r in _RESOLVED.finditer(text)
               if kind in _PEOPLE_ONLY or _PUT_OUT.search(r.group(0))]
    ended = (any(r.start() >= lo for r in endings)
             or any(r.start() >= match.end() for r in _REVEAL.finditer(text)))
    if ended and not _ONGOING.search(text):
        return _RESOLVED_
    if any(h.start() < match.end() - lo for h in _HAZARD.finditer(context)) or _HYPOTHETICAL_AFTER.search(context):
        return _HYPOTHETICAL
    if _NOW.search(context):
        return _NOW_
    if _PAST.search(context) or _HABITUAL.search(context):
        return _PAST_
    return _NEUTRAL


def assess(text: str) -> str | None:
    """'emergency' if the text names a danger happening now, 'not_now' if it
    names one that is over or only a risk, None if it names no danger."""
    raw = normalise(text)
    if _PINYIN.search(_LATIN.sub("", raw.lower())):
        return EMERGENCY
    text = fold(text)
    if not _ANY_DANGER.search(text):
        # Danger words only in idioms ("冷得我快不行了") or a fire lit on purpose: not now.
        return NOT_NOW if _IDIOM.search(raw) or _NUISANCE_FIRE.search(text) else None
    dangers, set_aside = _dangers(text)
    if not dangers:
        return NOT_NOW if set_aside else None
    clauses = list(_CLAUSE.finditer(text))
    statuses = {_status(text, kind, match) for kind, match in dangers}
    crying = any(_URGENT.search(c.group(0)) and not _PAST.search(c.group(0)) for c in clauses)
    if _NOW_ in statuses:
        return EMERGENCY
    if _NEUTRAL in statuses:
        # A past time said before the danger dates it ("上周三晚上 我妈在电梯里被困了40分钟");
        # one said after it is a remark ("我被困在电梯里 之前也困过一次").
        first = min(m.start() for _, m in dangers)
        # ...unless a now-word comes between ("昨天说过的杂物，现在出事了！杂物着了").
        # The past time must be in the danger's own sentence: "上个月我就反映过…？…电动车烧起来了"
        # is a fire now, told after a complaint about last month.
        dated = any(p.start() < first and not _SENTENCE_END.search(text, p.end(), first)
                    and not any(p.start() < n.start() < first for n in _NOW.finditer(text))
                    for p in _PAST.finditer(text))
        crying = crying or bool(re.search(r"[!！]{2,}", text[first:]))  # "窗户冒火了！！"
        return EMERGENCY if crying or not dated else NOT_NOW
    return EMERGENCY if _URGENT_STRONG.search(text) else NOT_NOW


def settled(text: str) -> bool:
    """For a message that names no danger: True when it says the event is over
    ("已经被保安灭了", "前几天…幸好被捞上来了"), a habit or only a risk, and
    nobody cries for help. A DIET `emergency` is then demoted."""
    text = fold(text)
    if _URGENT_STRONG.search(text):
        return False
    if _RESOLVED.search(text) or _NOTHING_THERE.search(text) or _WONT_LIGHT.search(text):
        return True
    if _URGENT.search(text) or _NOW.search(text.replace("又", "")):
        return False
    return bool(_PAST.search(text) or _HABITUAL.search(text) or _SETTLED_RISK.search(text))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class EmergencyGuard(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # promote_confidence: when no rule fires, an emergency the classifier
        # gives at least this confidence still goes first (unless the message
        # says the event is over or only a risk: `settled`). Chosen on the dev
        # sets; a false alarm costs one message, a miss a life.
        # possible_confidence: below promote_confidence but at least this, the danger is
        # uncertain: the message is flagged `emergency_possible`, the resident gets the
        # numbers to call first and the normal report flow carries on (no urgent ticket).
        return {"confidence": 0.99, "promote_confidence": 0.5, "possible_confidence": 0.1}

    def __init__(self, config: dict[str, Any]) -> None:
        self._confidence = float(config["confidence"])
        self._promote = float(config.get("promote_confidence", 1.1))
        self._possible = float(config.get("possible_confidence", 1.1))

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmergencyGuard:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if text:
                verdict = assess(text)
                if verdict is None:
                    confidence = self._emergency_confidence(message)
                    if settled(text):
                        verdict = NOT_NOW
                    elif confidence >= self._promote:
                        verdict = EMERGENCY
                    else:
                        # Not sure enough to page anyone: the classifier's emergency alone, below
                        # promote_confidence, does not file an urgent ticket ("就在那边" 0.37).
                        verdict = NOT_NOW
                        if confidence >= self._possible:
                            message.set("emergency_possible", True, add_to_output=True)
                self._apply(message, verdict)
        return messages

    @staticmethod
    def _emergency_confidence(message: Message) -> float:
        for entry in message.get(INTENT_RANKING_KEY) or []:
            if entry.get(INTENT_NAME_KEY) == EMERGENCY:
                return float(entry.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
        return 0.0

    def _apply(self, message: Message, verdict: str | None) -> None:
        ranking: list[dict[str, Any]] = list(message.get(INTENT_RANKING_KEY) or [])
        current = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        if verdict == EMERGENCY and current != EMERGENCY:
            rest = [r for r in ranking if r.get(INTENT_NAME_KEY) != EMERGENCY]
            top = {INTENT_NAME_KEY: EMERGENCY, PREDICTED_CONFIDENCE_KEY: self._confidence}
            message.set(INTENT, top, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [top, *rest], add_to_output=True)
            message.set("emergency_rule", True, add_to_output=True)
        elif verdict == NOT_NOW and current == EMERGENCY:
            rest = [r for r in ranking if r.get(INTENT_NAME_KEY) != EMERGENCY]
            if rest:
                message.set(INTENT, rest[0], add_to_output=True)
                message.set(INTENT_RANKING_KEY, rest + [r for r in ranking if r not in rest], add_to_output=True)
                message.set("emergency_rule", False, add_to_output=True)
