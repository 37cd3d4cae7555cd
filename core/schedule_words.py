"""Times and recurrences in everyday Chinese: "明早九点", "周五晚上8点", "12月6日 7:00",
"下周一上午", "今晚", "每月第一个周五晚上7点", "每季度一次".

The reading is jionlp's time parser (`jionlp.parse_time`); this module only turns its answer
into an aware datetime (or an RFC 5545 RRULE for core.duties), and says how sure the reading
is. A reading is *unsure* when the words leave something open that the bot filled in: a part
of the day without an hour ("下周一上午" is read as 09:00), a day without a time ("周三" is read
as 09:00), or an hour of 1-12 without 上午/下午 ("8点"). The caller shows an unsure reading
to the person for confirmation ("我理解为 12月7日（周一）09:00，对吗？") before acting on it.

jionlp is imported on first use (it loads dictionaries and prints a banner on import: both
kept out of the process's stdout), and its own error log (it logs a traceback with the words
it could not read at ERROR on the root logger) is dropped: people's words stay out of logs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from core.messages import t

DEFAULT_HOUR = 9  # a day named without a time ("周三"): 09:00, unsure
PART_HOURS = {7: 9, 8: 9, 6: 8, 11: 12, 12: 12, 13: 15, 14: 15, 18: 19, 19: 19}  # blur range start -> hour
# Colloquial contractions jionlp reads as the whole day ("今晚" -> 00:00-23:59) or the wrong day
# ("明早九点" -> today 09:00): spelt out before it reads them.
_SPELT_OUT = {"明早": "明天早上", "今早": "今天早上", "明晚": "明天晚上", "今晚": "今天晚上", "昨晚": "昨天晚上",
              "后晚": "后天晚上", "礼拜": "星期", "周日": "周日", "星期天": "星期日", "周天": "周日"}
_DAY_PARTS = ("早", "上午", "中午", "午", "下午", "晚", "夜", "凌晨", "傍晚", "黄昏")
_WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_ORDINALS = {"一": 1, "1": 1, "二": 2, "2": 2, "三": 3, "3": 3, "四": 4, "4": 4, "五": 5, "5": 5}

_lock = threading.Lock()
_parser: Any = None


class _DropJionlpLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "jionlp" not in (record.pathname or "")


def _jio() -> Any:
    """jionlp's parse_time, imported once (quietly)."""
    global _parser
    if _parser is None:
        with _lock:
            if _parser is None:
                logging.getLogger().addFilter(_DropJionlpLog())
                with contextlib.redirect_stdout(io.StringIO()):
                    import jionlp  # noqa: PLC0415 - heavy, and only for typed times
                _parser = jionlp.parse_time
    return _parser


def warm_up() -> None:
    """Import jionlp now (the bot does this at start, so the first typed time is not slow)."""
    _jio()


@dataclass(frozen=True)
class Reading:
    """What the bot read: `at` (aware), an `end` for spans ("9点到11点"), an RRULE body when
    the words repeat (with `at` the first time), and whether the reading is sure."""

    at: datetime
    end: datetime | None = None
    rule: str | None = None
    sure: bool = True

    def says(self, tz: ZoneInfo | None = None) -> str:
        """The reading in words: "12月11日（周五）20:00", "每月第1个周五 19:00（首次 12月4日（周五）19:00）"."""
        tz = tz or self.at.tzinfo  # type: ignore[assignment]
        assert isinstance(tz, ZoneInfo)
        when = at_text(self.at, tz)
        if self.end is not None:
            when = t("words.span", when=when, end=self.end.astimezone(tz).strftime("%H:%M"))
        if self.rule is None:
            return when
        return t("words.repeating", repeat=rule_text(self.rule, self.at, tz), first=when)


def at_text(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return t("duty.at", month=local.month, day=local.day, weekday=t("duty.weekdays")[local.weekday()],
             time=local.strftime("%H:%M"))


def rule_text(rule: str, first: datetime, tz: ZoneInfo) -> str:
    """An RRULE this module writes, in words: 每周三 / 每月第1个周五 / 每月15日 / 每3个月 / 每年."""
    parts = dict(p.split("=", 1) for p in rule.split(";"))
    interval = int(parts.get("INTERVAL", "1"))
    local = first.astimezone(tz)
    weekdays = t("duty.weekdays")
    freq = parts["FREQ"]
    if freq == "DAILY":
        return t("words.every_day") if interval == 1 else t("words.every_n_days", n=interval)
    if freq == "WEEKLY":
        day = weekdays[_WEEKDAY_CODES.index(parts.get("BYDAY", _WEEKDAY_CODES[local.weekday()])[-2:])]
        return t("words.every_week", weekday=day) if interval == 1 else t("words.every_n_weeks", n=interval,
                                                                           weekday=day)
    if freq == "YEARLY":
        return t("words.every_year", month=local.month, day=local.day)
    span = t("words.month") if interval == 1 else t("words.n_months", n=interval)
    if "BYDAY" in parts:
        code = parts["BYDAY"]
        n, day = int(code[:-2]), weekdays[_WEEKDAY_CODES.index(code[-2:])]
        return t("words.monthly_last", span=span, weekday=day) if n < 0 else \
            t("words.monthly_nth", span=span, n="一二三四五"[n - 1] if 1 <= n <= 5 else n, weekday=day)
    return t("words.monthly_day", span=span, day=int(parts.get("BYMONTHDAY", local.day)))


# -- reading ------------------------------------------------------------------------------------

def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).strip()
    for short, long in _SPELT_OUT.items():
        text = text.replace(short, long)
    return text


def _call(text: str, base: datetime, **kwargs: Any) -> dict[str, Any] | None:
    try:
        result = _jio()(text, time_base=base, **kwargs)
    except Exception:  # jionlp raises ValueError and, on odd input, anything: not a time
        return None
    return result if isinstance(result, dict) else None


def _stamp(value: str | None) -> datetime | None:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S") if value else None


def _time_of_day(text: str, start: datetime, end: datetime, definition: str) -> tuple[datetime, bool]:
    """The start time and whether it is sure, from jionlp's [start, end] range."""
    if end - start >= timedelta(hours=23):  # a day without a time
        return start.replace(hour=DEFAULT_HOUR, minute=0), False
    if definition == "blur":  # 上午 / 下午 / 晚上 without an hour
        return start.replace(hour=PART_HOURS.get(start.hour, start.hour), minute=0), False
    clock = ":" in text or "：" in text
    if not clock and 1 <= start.hour <= 12 and not any(p in text for p in _DAY_PARTS) and "后" not in text:
        return start, False  # "8点": 8:00 or 20:00?
    return start, True


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> Reading | None:
    """One time (or a span) in words, from `now`, in zone `tz`: a Reading in the future, or None
    when the words are not a time or name one already past. Recurring words give None (see
    `parse_schedule`)."""
    reading = parse_schedule(text, now, tz)
    return reading if reading is not None and reading.rule is None else None


def parse_schedule(text: str, now: datetime, tz: ZoneInfo) -> Reading | None:
    """A time, a span or a recurrence with its time ("每月第一个周五晚上7点") in words."""
    words = _normal(text)
    if not words or len(words) > 60:
        return None
    local_now = now.astimezone(tz).replace(tzinfo=None, microsecond=0)
    result = _call(words, local_now)
    if result is None:
        return None
    kind, definition = result.get("type"), result.get("definition", "accurate")
    if kind == "time_period":
        return _period(words, result, local_now, tz)
    if kind not in ("time_point", "time_span"):
        return None
    start, end = (_stamp(v) for v in result["time"][:2])
    if start is None or end is None:
        return None
    if start <= local_now:  # "周五晚上8点" said on Saturday: the coming Friday
        future = _call(words, local_now, ret_future=True)
        if future is not None and future.get("type") == kind:
            f_start, f_end = (_stamp(v) for v in future["time"][:2])
            if f_start is not None and f_end is not None and f_start > local_now:
                start, end = f_start, f_end
    if start <= local_now and any(w in words for w in ("周", "星期")) and "上周" not in words:
        start, end = start + timedelta(days=7), end + timedelta(days=7)  # a weekday already past this week
    at, sure = _time_of_day(words, start, end, definition)
    if at <= local_now and at.date() == local_now.date() and not sure and end - start >= timedelta(hours=23):
        at += timedelta(days=1)  # "今天" after nine: not a time in the past either
    if at <= local_now:
        return None
    span_end = end.replace(tzinfo=tz) if kind == "time_span" and end > start else None
    return Reading(at.replace(tzinfo=tz), span_end, None, sure)


def _period(words: str, result: dict[str, Any], local_now: datetime, tz: ZoneInfo) -> Reading | None:
    delta, point = result["time"].get("delta") or {}, result["time"].get("point")
    times = point.get("time") if isinstance(point, dict) else None
    if not times or not times[0] or isinstance(times[0], list):
        return None  # "每季度一次": a recurrence without its time (see parse_repeat)
    start, end = _stamp(times[0]), _stamp(times[1])
    if start is None or end is None:
        return None
    at, sure = _time_of_day(words, start, end, result.get("definition", "accurate"))
    rule = _rule(delta, point.get("string", ""), at)
    if rule is None:
        return None
    first = _first(rule, at, local_now, tz)
    if first is None:
        return None
    span_end = None
    if end - start < timedelta(hours=23) and end - start > timedelta(hours=1):  # "9点到11点"
        span_end = first + (end - start)
    return Reading(first, span_end, rule, sure)


def _rule(delta: dict[str, Any], point_words: str, example: datetime) -> str | None:
    """An RRULE body from jionlp's period: its delta, and the day its point names."""
    days, months, years = (float(delta.get(k, 0)) for k in ("day", "month", "year"))
    weekday = _WEEKDAY_CODES[example.weekday()]
    if years and not (days or months):
        return f"FREQ=YEARLY;INTERVAL={int(years)}" if years > 1 else "FREQ=YEARLY"
    if months and not days:
        if months % 12 == 0:
            return "FREQ=YEARLY" + (f";INTERVAL={int(months // 12)}" if months > 12 else "")
        head = "FREQ=MONTHLY" + (f";INTERVAL={int(months)}" if months > 1 else "")
        if any(w in point_words for w in ("周", "星期")):
            # jionlp finds the weekday but not always the right week: the ordinal is in its words
            ordinal = -1 if "最后" in point_words else next(
                (n for word, n in _ORDINALS.items() if f"第{word}个" in point_words or f"第{word}" in point_words),
                (example.day - 1) // 7 + 1)
            return f"{head};BYDAY={ordinal}{weekday}"
        if point_words:
            return f"{head};BYMONTHDAY={example.day}"
        return head
    if days and not months:
        if days % 7 == 0:
            weeks = int(days // 7)
            return "FREQ=WEEKLY" + (f";INTERVAL={weeks}" if weeks > 1 else "") + f";BYDAY={weekday}"
        return "FREQ=DAILY" + (f";INTERVAL={int(days)}" if days > 1 else "")
    return None


def _first(rule: str, example: datetime, local_now: datetime, tz: ZoneInfo) -> datetime | None:
    """The first time of `rule` (at `example`'s time of day) after now, aware."""
    dtstart = local_now.replace(hour=example.hour, minute=example.minute, second=0).replace(tzinfo=tz)
    if "BYDAY" not in rule and "BYMONTHDAY" not in rule and "FREQ=DAILY" not in rule:
        dtstart = example.replace(tzinfo=tz)  # the day comes from the example itself
        while dtstart <= local_now.replace(tzinfo=tz):
            found = rrulestr(rule, dtstart=dtstart).after(dtstart)
            if found is None:
                return None
            dtstart = found
        return dtstart
    found = rrulestr(rule, dtstart=dtstart.replace(day=1) if "MONTHLY" in rule else dtstart).after(
        local_now.replace(tzinfo=tz))
    return found


def parse_repeat(text: str, first: datetime, tz: ZoneInfo) -> str | None:
    """How a meeting repeats ("每月一次", "每季度一次", "每月第一个周五", "每周"), as an RRULE
    body for a series whose first time is `first` (its day and time of day); None when the
    words are no recurrence."""
    words = _normal(text)
    if not words or "每" not in words and "一次" not in words:
        return None
    result = _call(words, first.astimezone(tz).replace(tzinfo=None) - timedelta(days=1))
    if result is None or result.get("type") != "time_period":
        return None
    point = result["time"].get("point")
    point_words = point.get("string", "") if isinstance(point, dict) else ""
    if point_words == "一次":
        point_words = ""
    local = first.astimezone(tz).replace(tzinfo=None)
    rule = _rule(result["time"].get("delta") or {}, point_words, local)
    if rule is None:
        return None
    return rule


def fits(rule: str, first: datetime, tz: ZoneInfo) -> bool:
    """Whether `first` is itself a time of `rule` (core.duties counts DTSTART only if it is)."""
    local = first.astimezone(tz)
    found = rrulestr(rule, dtstart=local).after(local - timedelta(seconds=1))
    return found == local


def first_fit(rule: str, first: datetime, tz: ZoneInfo) -> datetime | None:
    """The first time of `rule` at or after `first` (same time of day), aware."""
    local = first.astimezone(tz)
    start = local.replace(day=1) if "MONTHLY" in rule and "BYDAY" in rule else local
    found = rrulestr(rule, dtstart=start).after(local - timedelta(seconds=1))
    return found
