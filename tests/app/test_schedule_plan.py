"""Times in everyday Chinese (core.schedule_words, read by jionlp) and `gridbot schedule` with a
YAML and a CSV plan (real process, real database file): FILE:LINE errors schedule nothing."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.schedule_words import parse_repeat, parse_schedule, parse_when
from tests.app.test_cli import run

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 5, 17, 40, tzinfo=TZ)  # a Saturday evening


@pytest.mark.parametrize(("words", "expected", "sure"), [
    ("明早九点", "2026-12-06 09:00", True),
    ("周五晚上8点", "2026-12-11 20:00", True),  # said on Saturday: the coming Friday
    ("12月6日 7:00", "2026-12-06 07:00", True),
    ("下周一上午", "2026-12-07 09:00", False),  # a part of the day without an hour
    ("今晚", "2026-12-05 19:00", False),
    ("今晚8点", "2026-12-05 20:00", True),
    ("8点", "2026-12-06 08:00", False),  # 8:00 or 20:00?
    ("周三", "2026-12-09 09:00", False),  # a day without a time
    ("两小时后", "2026-12-05 19:40", True),
])
def test_times_in_words(words: str, expected: str, sure: bool) -> None:
    reading = parse_when(words, NOW, TZ)
    assert reading is not None, words
    assert reading.at.strftime("%Y-%m-%d %H:%M") == expected and reading.sure is sure, reading
    assert reading.at > NOW and reading.at.tzinfo is TZ


@pytest.mark.parametrize("words", ["随便", "昨天", "", "每月第一个周五晚上7点"])
def test_not_a_time(words: str) -> None:
    assert parse_when(words, NOW, TZ) is None


@pytest.mark.parametrize(("words", "rule", "first"), [
    ("每月第一个周五晚上7点", "FREQ=MONTHLY;BYDAY=1FR", "2027-01-01 19:00"),
    ("每月最后一个周六下午2点", "FREQ=MONTHLY;BYDAY=-1SA", "2026-12-26 14:00"),
    ("每月第二个周三下午3点", "FREQ=MONTHLY;BYDAY=2WE", "2026-12-09 15:00"),
    ("每周三上午9点", "FREQ=WEEKLY;BYDAY=WE", "2026-12-09 09:00"),
    ("每月15号上午9点", "FREQ=MONTHLY;BYMONTHDAY=15", "2026-12-15 09:00"),
])
def test_recurrences_in_words(words: str, rule: str, first: str) -> None:
    reading = parse_schedule(words, NOW, TZ)
    assert reading is not None and reading.rule == rule, reading
    assert reading.at.strftime("%Y-%m-%d %H:%M") == first
    assert "首次" in reading.says(TZ)


def test_repeat_words_for_a_first_time() -> None:
    first = datetime(2026, 12, 11, 19, 0, tzinfo=TZ)
    assert parse_repeat("每季度一次", first, TZ) == "FREQ=MONTHLY;INTERVAL=3"
    assert parse_repeat("每月一次", first, TZ) == "FREQ=MONTHLY"
    assert parse_repeat("每月第二个周五", first, TZ) == "FREQ=MONTHLY;BYDAY=2FR"
    assert parse_repeat("不重复", first, TZ) is None


PLAN_YAML = """\
- kind: 党小组会
  title: 第一党小组学习（年度计划）
  place: 社区党群服务中心
  when: 每月第一个周五晚上7点
  checkin: [30, 60]
- kind: 党课
  title: 季度党课（年度计划）
  place: 社区党群服务中心
  when: 12月20日下午3点
  repeat: 每季度一次
- kind: 执勤
  title: 卡口执勤（年度计划）
  place: 东门
  when: 12月19日上午9点到11点
  places: 3
  cutoff_hours: 12
"""


def test_gridbot_schedule_yaml_plan(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    assert run(["demo"], db).returncode == 0
    plan = tmp_path / "plan.yml"
    plan.write_text(PLAN_YAML, encoding="utf-8")
    checked = run(["schedule", str(plan), "--branch", "BR-HPL-01", "--dry-run"], db)
    assert checked.returncode == 0, checked.stderr
    assert "checked: 3" in checked.stdout and "plan.yml:11:" in checked.stdout
    done = run(["schedule", str(plan), "--branch", "BR-HPL-01"], db)
    assert done.returncode == 0, done.stderr
    assert "scheduled: 3" in done.stdout
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT title, rrule FROM events WHERE title LIKE '%年度计划%'").fetchall())
        assert rows == {"第一党小组学习（年度计划）": "FREQ=MONTHLY;BYDAY=1FR",
                        "季度党课（年度计划）": "FREQ=MONTHLY;INTERVAL=3"}
        assert con.execute("SELECT capacity, cancel_cutoff_minutes FROM shifts WHERE title = '卡口执勤（年度计划）'"
                           ).fetchall() == [(3, 720)]
        told = con.execute("SELECT count(*) FROM outbox WHERE dedupe_key LIKE 'event-new:%'").fetchone()[0]
        assert told > 0  # the members were told


def test_gridbot_schedule_csv_error_names_file_and_line(tmp_path: Path) -> None:
    db = tmp_path / "gridbot.db"
    assert run(["demo"], db).returncode == 0
    plan = tmp_path / "plan.csv"
    plan.write_text("kind,title,place,when,places\n"
                    "支委会,支委会（CSV）,书记办公室,每月15号上午9点,\n"
                    "执勤,文明劝导（CSV）,南门,下个月的某天,2\n", encoding="utf-8")
    failed = run(["schedule", str(plan), "--branch", "BR-HPL-01"], db)
    assert failed.returncode == 1
    assert f"{plan}:3:" in failed.stderr and "下个月的某天" in failed.stderr
    with sqlite3.connect(db) as con:  # nothing scheduled, not even the good first line
        assert con.execute("SELECT count(*) FROM events WHERE title = '支委会（CSV）'").fetchone()[0] == 0
